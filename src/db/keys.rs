//! Teams and API keys. A key is shown once when it is made; only its SHA-256 is stored.

use sha2::{Digest, Sha256};

use super::sql::{args, Row, Sql};
use super::DbResult;
use crate::domain::time::now_ms;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub team_id: String,
    pub team_name: String,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh secret: `exp_` and 43 base64url characters (32 random bytes).
pub fn generate_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    format!("exp_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn team(r: &Row) -> DbResult<Team> {
    Ok(Team { id: r.text(0)?, name: r.text(1)? })
}

pub fn create_team(conn: &dyn Sql, name: &str) -> DbResult<Team> {
    create_team_with_id(conn, &uuid::Uuid::now_v7().to_string(), name)
}

/// Creates a team with a fixed id (the demo team).
pub fn create_team_with_id(conn: &dyn Sql, id: &str, name: &str) -> DbResult<Team> {
    conn.exec("INSERT INTO teams (id, name, created_at) VALUES (?1, ?2, ?3)", args![id, name, now_ms()])?;
    Ok(Team { id: id.to_string(), name: name.to_string() })
}

/// A team by id or by name (an id wins over a name that spells it).
pub fn find_team(conn: &dyn Sql, id_or_name: &str) -> DbResult<Option<Team>> {
    // ids compared as text: on PostgreSQL the id is a uuid, and a name is no uuid (the few
    // teams are scanned; only the command-line tools and the first start look teams up)
    conn.opt(
        "SELECT id, name FROM teams WHERE CAST(id AS TEXT) = ?1 OR name = ?1
         ORDER BY CAST(id AS TEXT) = ?1 DESC LIMIT 1",
        args![id_or_name],
        team,
    )
}

/// Every team, oldest first.
pub fn list_teams(conn: &dyn Sql) -> DbResult<Vec<Team>> {
    conn.rows("SELECT id, name FROM teams ORDER BY created_at, id", &[], team)
}

pub fn team_exists_by_name(conn: &dyn Sql, name: &str) -> DbResult<bool> {
    Ok(find_team(conn, name)?.is_some_and(|t| t.name == name))
}

/// Stores the key `secret` (only its SHA-256 and first 8 characters) for a team, and
/// returns the new key's id.
pub fn add_key(conn: &dyn Sql, team_id: &str, name: Option<&str>, secret: &str) -> DbResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let prefix: String = secret.chars().take(8).collect();
    conn.exec(
        "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![&id, team_id, name, &hash_key(secret), &prefix, now_ms()],
    )?;
    Ok(id)
}

/// The team of the key with this digest (`hash_key` of the secret), unless the key is unknown
/// or revoked.
pub fn team_for_digest(conn: &dyn Sql, digest: &str) -> DbResult<Option<Team>> {
    conn.opt(
        "SELECT t.id, t.name FROM api_keys k JOIN teams t ON t.id = k.team_id
         WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
        args![digest],
        team,
    )
}

/// Whether this exact secret is stored (revoked or not).
pub fn key_exists(conn: &dyn Sql, secret: &str) -> DbResult<bool> {
    Ok(conn.opt("SELECT 1 FROM api_keys WHERE key_hash = ?1", args![&hash_key(secret)], |_| Ok(()))?.is_some())
}

pub fn count_keys(conn: &dyn Sql) -> DbResult<i64> {
    conn.one("SELECT COUNT(*) FROM api_keys", &[], |r| r.int(0))
}

pub fn list_keys(conn: &dyn Sql, team_id: Option<&str>) -> DbResult<Vec<KeyInfo>> {
    let read = |r: &Row| {
        Ok(KeyInfo {
            id: r.text(0)?,
            team_id: r.text(1)?,
            team_name: r.text(2)?,
            name: r.opt_text(3)?,
            prefix: r.text(4)?,
            created_at: r.int(5)?,
            revoked_at: r.opt_int(6)?,
        })
    };
    const SELECT: &str = "SELECT k.id, k.team_id, t.name, k.name, k.prefix, k.created_at, k.revoked_at
         FROM api_keys k JOIN teams t ON t.id = k.team_id";
    // two texts: PostgreSQL cannot type a parameter that is only tested for NULL
    match team_id {
        Some(team) => {
            conn.rows(&format!("{SELECT} WHERE k.team_id = ?1 ORDER BY k.created_at, k.id"), args![team], read)
        }
        None => conn.rows(&format!("{SELECT} ORDER BY k.created_at, k.id"), &[], read),
    }
}

/// Revokes a key; false when there is no such key.
pub fn revoke_key(conn: &dyn Sql, key_id: &str) -> DbResult<bool> {
    // the id compared as text: the operator may type anything, and on PostgreSQL a text that
    // is no uuid must find nothing, not fail (api_keys is small)
    let n = conn.exec(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE CAST(id AS TEXT) = ?1",
        args![key_id, now_ms()],
    )?;
    Ok(n > 0)
}
