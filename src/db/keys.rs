//! Teams and API keys. A key is shown once when it is made; only its SHA-256 is stored.

use super::sql::Sql;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

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

pub fn create_team(conn: &dyn Sql, name: &str) -> DbResult<Team> {
    let conn = super::sql::lite(conn)?;
    create_team_with_id(conn, &uuid::Uuid::now_v7().to_string(), name)
}

/// Creates a team with a fixed id (the demo team).
pub fn create_team_with_id(conn: &dyn Sql, id: &str, name: &str) -> DbResult<Team> {
    let conn = super::sql::lite(conn)?;
    conn.execute("INSERT INTO teams (id, name, created_at) VALUES (?1, ?2, ?3)", params![id, name, now_ms()])?;
    Ok(Team { id: id.to_string(), name: name.to_string() })
}

/// A team by id or by name.
pub fn find_team(conn: &dyn Sql, id_or_name: &str) -> DbResult<Option<Team>> {
    let conn = super::sql::lite(conn)?;
    Ok(conn
        .query_row(
            "SELECT id, name FROM teams WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1",
            [id_or_name],
            |r| Ok(Team { id: r.get(0)?, name: r.get(1)? }),
        )
        .optional()?)
}

/// Every team, oldest first.
pub fn list_teams(conn: &dyn Sql) -> DbResult<Vec<Team>> {
    let conn = super::sql::lite(conn)?;
    let mut stmt = conn.prepare("SELECT id, name FROM teams ORDER BY created_at, id")?;
    let teams = stmt.query_map([], |r| Ok(Team { id: r.get(0)?, name: r.get(1)? }))?.collect::<Result<_, _>>()?;
    Ok(teams)
}

pub fn team_exists_by_name(conn: &dyn Sql, name: &str) -> DbResult<bool> {
    let conn = super::sql::lite(conn)?;
    Ok(find_team(conn, name)?.is_some_and(|t| t.name == name))
}

/// Stores the key `secret` (only its SHA-256 and first 8 characters) for a team, and
/// returns the new key's id.
pub fn add_key(conn: &dyn Sql, team_id: &str, name: Option<&str>, secret: &str) -> DbResult<String> {
    let conn = super::sql::lite(conn)?;
    let id = uuid::Uuid::now_v7().to_string();
    let prefix: String = secret.chars().take(8).collect();
    conn.execute(
        "INSERT INTO api_keys (id, team_id, name, key_hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, team_id, name, hash_key(secret), prefix, now_ms()],
    )?;
    Ok(id)
}

/// The team of the key with this digest (`hash_key` of the secret), unless the key is unknown
/// or revoked.
pub fn team_for_digest(conn: &dyn Sql, digest: &str) -> DbResult<Option<Team>> {
    let conn = super::sql::lite(conn)?;
    Ok(conn
        .query_row(
            "SELECT t.id, t.name FROM api_keys k JOIN teams t ON t.id = k.team_id
             WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
            [digest],
            |r| Ok(Team { id: r.get(0)?, name: r.get(1)? }),
        )
        .optional()?)
}

/// Whether this exact secret is stored (revoked or not).
pub fn key_exists(conn: &dyn Sql, secret: &str) -> DbResult<bool> {
    let conn = super::sql::lite(conn)?;
    Ok(conn
        .query_row("SELECT 1 FROM api_keys WHERE key_hash = ?1", [hash_key(secret)], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn count_keys(conn: &dyn Sql) -> DbResult<i64> {
    let conn = super::sql::lite(conn)?;
    Ok(conn.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?)
}

pub fn list_keys(conn: &dyn Sql, team_id: Option<&str>) -> DbResult<Vec<KeyInfo>> {
    let conn = super::sql::lite(conn)?;
    let mut stmt = conn.prepare(
        "SELECT k.id, k.team_id, t.name, k.name, k.prefix, k.created_at, k.revoked_at
         FROM api_keys k JOIN teams t ON t.id = k.team_id
         WHERE ?1 IS NULL OR k.team_id = ?1 ORDER BY k.created_at, k.id",
    )?;
    let rows = stmt.query_map([team_id], |r| {
        Ok(KeyInfo {
            id: r.get(0)?,
            team_id: r.get(1)?,
            team_name: r.get(2)?,
            name: r.get(3)?,
            prefix: r.get(4)?,
            created_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a key; false when there is no such key.
pub fn revoke_key(conn: &dyn Sql, key_id: &str) -> DbResult<bool> {
    let conn = super::sql::lite(conn)?;
    let n = conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![key_id, now_ms()],
    )?;
    Ok(n > 0)
}
