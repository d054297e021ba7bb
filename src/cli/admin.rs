//! `teams` and `keys`: the operator's tools for tenants and API keys.

use std::path::Path;

use super::{open_db, KeysCommand, TeamsCommand};
use crate::db::keys;

pub fn teams(data_dir: &Path, cmd: TeamsCommand) -> Result<(), String> {
    let pool = open_db(data_dir)?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    match cmd {
        TeamsCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() {
                return Err("a team name cannot be empty".into());
            }
            if keys::team_exists_by_name(&conn, name).map_err(|e| e.to_string())? {
                return Err(format!("a team named '{name}' exists already"));
            }
            let team = keys::create_team(&conn, name).map_err(|e| e.to_string())?;
            println!("{}", team.id);
        }
        TeamsCommand::List => {
            let mut stmt =
                conn.prepare("SELECT id, name FROM teams ORDER BY created_at, id").map_err(|e| e.to_string())?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(|e| e.to_string())?;
            for r in rows {
                let (id, name) = r.map_err(|e| e.to_string())?;
                println!("{id}\t{name}");
            }
        }
    }
    Ok(())
}

pub fn keys(data_dir: &Path, cmd: KeysCommand) -> Result<(), String> {
    let pool = open_db(data_dir)?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    match cmd {
        KeysCommand::Create { team, name } => {
            let t =
                keys::find_team(&conn, &team).map_err(|e| e.to_string())?.ok_or_else(|| format!("no team '{team}'"))?;
            let secret = keys::generate_key();
            let id = keys::add_key(&conn, &t.id, name.as_deref(), &secret).map_err(|e| e.to_string())?;
            eprintln!("Created key {id} for team '{}' ({}). It is shown once:", t.name, t.id);
            println!("{secret}");
        }
        KeysCommand::List { team } => {
            let team_id = match team {
                Some(t) => Some(
                    keys::find_team(&conn, &t).map_err(|e| e.to_string())?.ok_or_else(|| format!("no team '{t}'"))?.id,
                ),
                None => None,
            };
            println!("KEY ID\tTEAM\tNAME\tPREFIX\tCREATED\tREVOKED");
            for k in keys::list_keys(&conn, team_id.as_deref()).map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}\t{}…\t{}\t{}",
                    k.id,
                    k.team_name,
                    k.name.unwrap_or_default(),
                    k.prefix,
                    crate::domain::time::format_ms(k.created_at),
                    k.revoked_at.map(crate::domain::time::format_ms).unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            if !keys::revoke_key(&conn, &key_id).map_err(|e| e.to_string())? {
                return Err(format!("no key with id '{key_id}' (see `exports-api keys list`)"));
            }
            eprintln!("Revoked key {key_id}");
        }
    }
    Ok(())
}
