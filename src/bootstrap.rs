//! First-start key setup: `EXPORTS_API_KEY` guarantees team `default` with that key; with no
//! key at all, `serve` creates one and prints it once.

use crate::db::Sql;

use crate::db::{keys, DbResult};

/// Makes sure a key exists as configured. Returns the key it created and printed, if any.
pub fn ensure_keys(conn: &dyn Sql, api_key: Option<&str>) -> DbResult<Option<String>> {
    if let Some(secret) = api_key {
        let team = default_team(conn)?;
        if !keys::key_exists(conn, secret)? {
            keys::add_key(conn, &team.id, Some("EXPORTS_API_KEY"), secret)?;
            tracing::info!(team = %team.id, "added EXPORTS_API_KEY to team default");
        }
        return Ok(None);
    }
    if keys::count_keys(conn)? > 0 {
        return Ok(None);
    }
    let team = default_team(conn)?;
    let secret = keys::generate_key();
    keys::add_key(conn, &team.id, Some("bootstrap"), &secret)?;
    println!("Created team 'default' ({}) with API key (shown once, keep it):\n\n    {secret}\n", team.id);
    Ok(Some(secret))
}

/// Team `default`, created if missing.
fn default_team(conn: &dyn Sql) -> DbResult<keys::Team> {
    match keys::find_team(conn, "default")?.filter(|t| t.name == "default") {
        Some(t) => Ok(t),
        None => keys::create_team(conn, "default"),
    }
}
