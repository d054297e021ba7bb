//! Exact totals of unfiltered lists, remembered between requests, so that a page of a team's
//! exports or results does not count the team's whole history every time.
//!
//! A remembered total is used only while its table is unchanged, which a stamp read in the
//! same read transaction proves: the table's largest rowid and how many rows were ever
//! deleted from it (`row_deletions`, kept by triggers since migration 2). SQLite gives a new
//! row a rowid above the largest one (these tables have no AUTOINCREMENT), so no row can be
//! added without raising the largest rowid or, when rows were deleted, without the deletion
//! count having moved. Inserts pay nothing for this. (A manual `VACUUM` may renumber rowids:
//! restart the server after one.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};

use super::DbResult;

/// Totals remembered at most; past this the memory is cleared and refilled as lists are read.
const MAX_ENTRIES: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    max_rowid: i64,
    deletions: i64,
}

/// The remembered totals, shared by the server's requests.
#[derive(Default)]
pub struct ListCounts {
    entries: Mutex<HashMap<String, (Stamp, u64)>>,
    hits: AtomicU64,
}

impl ListCounts {
    /// The number of rows of `table` whose `column` is `value`: remembered if `table` is
    /// unchanged since it was counted, else counted with `count` and remembered. Must run
    /// inside a read transaction that also covers `count`.
    pub(crate) fn total(
        &self,
        conn: &Connection,
        table: &str,
        column: &str,
        value: &str,
        count: impl FnOnce() -> DbResult<u64>,
    ) -> DbResult<u64> {
        let Some(stamp) = stamp(conn, table)? else { return count() };
        let key = format!("{table}\0{column}\0{value}");
        if let Some((s, n)) = self.lock().get(&key) {
            if *s == stamp {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(*n);
            }
        }
        let n = count()?;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (stamp, n));
        Ok(n)
    }

    /// How many totals were answered from memory (for tests and diagnostics).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Stamp, u64)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The table's stamp; `None` for a table whose deletions are not tracked.
fn stamp(conn: &Connection, table: &str) -> DbResult<Option<Stamp>> {
    let Some(deletions) = conn
        .prepare_cached("SELECT n FROM row_deletions WHERE tbl = ?1")?
        .query_row([table], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let max_rowid: Option<i64> =
        conn.prepare_cached(&format!("SELECT max(rowid) FROM {table}"))?.query_row([], |r| r.get(0))?;
    Ok(Some(Stamp { max_rowid: max_rowid.unwrap_or(0), deletions }))
}
