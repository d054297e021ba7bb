//! Schemas: a team's field definitions.

use super::sql::Sql;
use rusqlite::{params, OptionalExtension, Row};

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

/// Reads a row; the outer error is SQLite's, the inner one a definition that does not read
/// back (`DbError::Corrupt`).
fn from_row(r: &Row) -> rusqlite::Result<DbResult<SchemaRow>> {
    let id: String = r.get(0)?;
    let def: String = r.get(4)?;
    let definition = match serde_json::from_str(&def) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Err(DbError::Corrupt { table: "schemas", id, what: format!("unreadable definition: {e}") }))
        }
    };
    Ok(Ok(SchemaRow {
        id,
        team_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        definition,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    }))
}

/// Binds a row's seven columns, in table order, as `?1`…`?7` of `sql`.
fn execute_with_row(conn: &dyn Sql, sql: &str, row: &SchemaRow) -> DbResult<usize> {
    let conn = super::sql::lite(conn)?;
    let definition = serde_json::to_string(&row.definition).expect("a schema serializes");
    let p = params![row.id, row.team_id, row.name, row.description, definition, row.created_at, row.updated_at];
    Ok(super::execute_cached(conn, sql, p)?)
}

pub fn insert(conn: &dyn Sql, row: &SchemaRow) -> DbResult<()> {
    let conn = super::sql::lite(conn)?;
    execute_with_row(
        conn,
        "INSERT INTO schemas (id, team_id, name, description, definition, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        row,
    )?;
    Ok(())
}

/// One schema of a team; another team's schema is `None`, as a missing one is.
pub fn get(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<Option<SchemaRow>> {
    let conn = super::sql::lite(conn)?;
    super::query_row_cached(
        conn,
        &format!("SELECT {COLUMNS} FROM schemas WHERE id = ?1 AND team_id = ?2"),
        [id, team_id],
        from_row,
    )
    .optional()?
    .transpose()
}

/// A schema by id alone (command-line tools, which act for the operator).
pub fn get_any(conn: &dyn Sql, id: &str) -> DbResult<Option<SchemaRow>> {
    let Some(conn) = conn.lite() else {
        // PostgreSQL (the data tools on `--database-url`): its uuid column takes no other text
        if uuid::Uuid::try_parse(id).is_err() {
            return Ok(None);
        }
        let sql = format!("SELECT {COLUMNS} FROM schemas WHERE id = ?1");
        return conn.opt(&sql, super::sql::args![id], seam_row)?.transpose();
    };
    super::query_row_cached(conn, &format!("SELECT {COLUMNS} FROM schemas WHERE id = ?1"), [id], from_row)
        .optional()?
        .transpose()
}

/// [`from_row`] through the seam (either database).
fn seam_row(r: &super::sql::Row) -> DbResult<DbResult<SchemaRow>> {
    let id = r.text(0)?;
    let definition = match serde_json::from_str(&r.text(4)?) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Err(DbError::Corrupt { table: "schemas", id, what: format!("unreadable definition: {e}") }))
        }
    };
    Ok(Ok(SchemaRow {
        id,
        team_id: r.text(1)?,
        name: r.text(2)?,
        description: r.opt_text(3)?,
        definition,
        created_at: r.int(5)?,
        updated_at: r.int(6)?,
    }))
}

pub fn list(conn: &dyn Sql, team_id: &str, q: &ListQuery) -> DbResult<(Vec<SchemaRow>, u64)> {
    let conn = super::sql::lite(conn)?;
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
    let (rows, total) = list_page(conn, &src, team_id, q, None, from_row)?;
    Ok((rows.into_iter().collect::<DbResult<_>>()?, total))
}

/// Names of schemas by id, for `include=schema`.
pub fn names(conn: &dyn Sql, team_id: &str, ids: &[String]) -> DbResult<Vec<(String, String)>> {
    let conn = super::sql::lite(conn)?;
    let mut stmt = conn.prepare_cached("SELECT id, name FROM schemas WHERE id = ?1 AND team_id = ?2")?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(pair) = stmt.query_row([id, team_id], |r| Ok((r.get(0)?, r.get(1)?))).optional()? {
            out.push(pair);
        }
    }
    Ok(out)
}

/// Replaces a schema's name, description and fields; false when it does not exist in this
/// team.
pub fn update(conn: &dyn Sql, row: &SchemaRow) -> DbResult<bool> {
    let conn = super::sql::lite(conn)?;
    // created_at (?6) is bound but never changes
    let n = execute_with_row(
        conn,
        "UPDATE schemas SET name = ?3, description = ?4, definition = ?5, updated_at = ?7
         WHERE id = ?1 AND team_id = ?2",
        row,
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
    let conn = super::sql::lite(conn)?;
    let tx = conn;
    let exists = tx
        .query_row("SELECT 1 FROM schemas WHERE id = ?1 AND team_id = ?2", [id, team_id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Ok(DeleteOutcome::NotFound);
    }
    let results = super::results::count_for_schema(tx, id)?;
    let exports: i64 =
        super::query_row_cached(tx, "SELECT COUNT(*) FROM exports WHERE schema_id = ?1", [id], |r| r.get(0))?;
    if results > 0 || exports > 0 {
        return Ok(DeleteOutcome::InUse(results, exports));
    }
    super::execute_cached(tx, "DELETE FROM schemas WHERE id = ?1", [id])?;
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
