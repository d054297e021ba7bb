//! Schemas: a team's field definitions.

use super::sql::{self, args, Arg, Sql};
use super::{list_page, DbError, DbResult, ListSource};
use crate::domain::list::ListQuery;
use crate::domain::schema::SchemaDef;

#[derive(Debug, Clone)]
pub struct SchemaRow {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub description: Option<String>,
    pub definition: SchemaDef,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, team_id, name, description, definition, created_at, updated_at";

/// The stored definition read back; one that does not is a corrupt row (`DbError::Corrupt`).
fn definition(id: &str, def: &str) -> DbResult<SchemaDef> {
    serde_json::from_str(def).map_err(|e| DbError::Corrupt {
        table: "schemas",
        id: id.to_string(),
        what: format!("unreadable definition: {e}"),
    })
}

/// Reads a row of `SELECT {COLUMNS}` on either database.
fn read(r: &sql::Row) -> DbResult<SchemaRow> {
    let id = r.text(0)?;
    let definition = definition(&id, &r.text(4)?)?;
    Ok(SchemaRow {
        id,
        team_id: r.text(1)?,
        name: r.text(2)?,
        description: r.opt_text(3)?,
        definition,
        created_at: r.int(5)?,
        updated_at: r.int(6)?,
    })
}

/// Whether `id` can be a stored id: on PostgreSQL ids are `uuid`s, and a text that is no
/// lowercase UUID (an operator's typo) finds nothing there, as on SQLite, instead of failing.
fn may_be_id(conn: &dyn Sql, id: &str) -> bool {
    conn.lite().is_some() || super::ids::key(id).is_some()
}

pub fn insert(conn: &dyn Sql, row: &SchemaRow) -> DbResult<()> {
    let definition = serde_json::to_string(&row.definition).expect("a schema serializes");
    conn.exec(
        "INSERT INTO schemas (id, team_id, name, description, definition, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![&row.id, &row.team_id, &row.name, &row.description, &definition, row.created_at, row.updated_at],
    )?;
    Ok(())
}

/// One schema of a team; another team's schema is `None`, as a missing one is.
pub fn get(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<Option<SchemaRow>> {
    if !may_be_id(conn, id) {
        return Ok(None);
    }
    conn.opt(&format!("SELECT {COLUMNS} FROM schemas WHERE id = ?1 AND team_id = ?2"), args![id, team_id], read)
}

/// A schema by id alone (command-line tools, which act for the operator).
pub fn get_any(conn: &dyn Sql, id: &str) -> DbResult<Option<SchemaRow>> {
    if !may_be_id(conn, id) {
        return Ok(None);
    }
    conn.opt(&format!("SELECT {COLUMNS} FROM schemas WHERE id = ?1"), args![id], read)
}

pub fn list(conn: &dyn Sql, team_id: &str, q: &ListQuery) -> DbResult<(Vec<SchemaRow>, u64)> {
    let src = ListSource {
        table: "schemas",
        from: "schemas",
        team_column: "team_id",
        columns: COLUMNS,
        prefix: "",
        search: &["name", "description"],
        moving: &["updated_at"],
        indexed: &["created_at"],
        binary_ids: false,
    };
    list_page(conn, &src, team_id, q, None, read)
}

/// Names of schemas by id, for `include=schema`.
pub fn names(conn: &dyn Sql, team_id: &str, ids: &[String]) -> DbResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for id in ids.iter().filter(|id| may_be_id(conn, id)) {
        let sql = "SELECT id, name FROM schemas WHERE id = ?1 AND team_id = ?2";
        if let Some(pair) = conn.opt(sql, args![id, team_id], |r| Ok((r.text(0)?, r.text(1)?)))? {
            out.push(pair);
        }
    }
    Ok(out)
}

/// Replaces a schema's name, description and fields; false when it does not exist in this
/// team.
pub fn update(conn: &dyn Sql, row: &SchemaRow) -> DbResult<bool> {
    let definition = serde_json::to_string(&row.definition).expect("a schema serializes");
    let n = conn.exec(
        "UPDATE schemas SET name = ?3, description = ?4, definition = ?5, updated_at = ?6
         WHERE id = ?1 AND team_id = ?2",
        args![&row.id, &row.team_id, &row.name, &row.description, &definition, row.updated_at],
    )?;
    Ok(n > 0)
}

/// What `delete` did.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// Results or exports still refer to it: (results, exports).
    InUse(i64, i64),
}

/// Deletes a schema unless results or exports still refer to it. Run it on the writer: the
/// checks and the delete then share one transaction.
pub fn delete(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<DeleteOutcome> {
    if !may_be_id(conn, id) {
        return Ok(DeleteOutcome::NotFound);
    }
    let exists = conn.opt("SELECT 1 FROM schemas WHERE id = ?1 AND team_id = ?2", args![id, team_id], |_| Ok(()))?;
    if exists.is_none() {
        return Ok(DeleteOutcome::NotFound);
    }
    // a result keeps its schema's id as the UUID's 16 bytes on SQLite (db/ids.rs), as a uuid
    // on PostgreSQL: `Arg::Key` binds either; a schema id that is no UUID has no results
    let results = match super::ids::key(id) {
        Some(_) => conn.one("SELECT COUNT(*) FROM results WHERE schema_id = ?1", &[Arg::Key(id)], |r| r.int(0))?,
        None => 0,
    };
    let exports = conn.one("SELECT COUNT(*) FROM exports WHERE schema_id = ?1", args![id], |r| r.int(0))?;
    if results > 0 || exports > 0 {
        return Ok(DeleteOutcome::InUse(results, exports));
    }
    conn.exec("DELETE FROM schemas WHERE id = ?1", args![id])?;
    Ok(DeleteOutcome::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A definition that does not read back is a corrupt row, named, not a SQLite error.
    #[test]
    fn an_unreadable_definition_is_a_corrupt_row() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("s.db"), 2, std::time::Duration::from_secs(5)).unwrap();
        let conn = pool.get().unwrap();
        let team = crate::db::keys::create_team(&conn, "t").unwrap().id;
        conn.execute(
            "INSERT INTO schemas (id, team_id, name, definition, created_at, updated_at)
             VALUES ('s', ?1, 's', '{\"fields\": 3}', 0, 0)",
            [&team],
        )
        .unwrap();
        match get_any(&conn, "s") {
            Err(DbError::Corrupt { table: "schemas", id, what }) => {
                assert_eq!(id, "s");
                assert!(what.contains("definition"), "{what}");
            }
            other => panic!("an unreadable definition read as {other:?}"),
        }
        assert!(matches!(get(&conn, &team, "s"), Err(DbError::Corrupt { .. })));
    }
}
