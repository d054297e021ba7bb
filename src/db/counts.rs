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
//!
//! On PostgreSQL, which has no rowid, a trigger counts the insert statements instead
//! (`row_inserts`), and the stamp is read in the list's `REPEATABLE READ` snapshot (see
//! [`stamp`]).
//!
//! Bookmarks of deep pages (db/bookmarks.rs) use the same stamp; for a sort column that
//! updates change (an export's `status`, `updated_at`), it also holds how many times such a
//! column was updated (`row_moves`, kept by a trigger since migration 4).

use super::sql::Sql;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rusqlite::OptionalExtension;

use super::bookmarks::Bookmarks;
use super::DbResult;

/// Totals remembered at most; past this the memory is cleared and refilled as lists are read.
const MAX_ENTRIES: usize = 4096;

/// Rows between two bookmarks of a list unless configured otherwise.
pub const DEFAULT_BOOKMARK_EVERY: u32 = 500;

/// What proves a table unchanged: its largest rowid (SQLite) or how many insert statements it
/// took (PostgreSQL), how many of its rows were ever deleted and, where it matters, how many
/// times a sort column of a row was updated (else 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stamp {
    added: i64,
    deletions: i64,
    moves: i64,
}

impl Stamp {
    /// The stamp without the updates count: what a total depends on.
    fn rows(self) -> Stamp {
        Stamp { moves: 0, ..self }
    }
}

/// The remembered totals and bookmarks, shared by the server's requests.
pub struct ListCounts {
    entries: Mutex<HashMap<String, (Stamp, u64)>>,
    hits: AtomicU64,
    pub(crate) marks: Bookmarks,
}

impl Default for ListCounts {
    fn default() -> Self {
        ListCounts::new(DEFAULT_BOOKMARK_EVERY)
    }
}

impl ListCounts {
    /// Remembers totals, and a bookmark every `bookmark_every` rows of deep lists.
    pub fn new(bookmark_every: u32) -> ListCounts {
        ListCounts { entries: Mutex::default(), hits: AtomicU64::default(), marks: Bookmarks::new(bookmark_every) }
    }

    /// The number of rows of the list `key` (its table, team and filters): remembered if the
    /// table is unchanged since it was counted (`stamp`, read in the same read transaction),
    /// else counted with `count` and remembered.
    pub(crate) fn total(&self, stamp: Stamp, key: &str, count: impl FnOnce() -> DbResult<u64>) -> DbResult<u64> {
        let stamp = stamp.rows();
        if let Some((s, n)) = self.lock().get(key) {
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
        entries.insert(key.to_string(), (stamp, n));
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

/// A table's count in a counter table kept by triggers (`row_deletions`, `row_moves`).
fn counter(conn: &rusqlite::Connection, counters: &str, table: &str) -> DbResult<Option<i64>> {
    Ok(conn
        .prepare_cached(&format!("SELECT n FROM {counters} WHERE tbl = ?1"))?
        .query_row([table], |r| r.get::<_, i64>(0))
        .optional()?)
}

/// The table's stamp, with its updates count when `moves`; `None` for a table whose
/// deletions (or, when `moves`, updates) are not tracked. The caller reads it in the same
/// read transaction (PostgreSQL: the same snapshot) as what it remembers under it.
pub(crate) fn stamp(conn: &dyn Sql, table: &str, moves: bool) -> DbResult<Option<Stamp>> {
    let Some(conn) = conn.lite() else { return pg_stamp(conn, table, moves) };
    let Some(deletions) = counter(conn, "row_deletions", table)? else {
        return Ok(None);
    };
    let max_rowid: Option<i64> =
        conn.prepare_cached(&format!("SELECT max(rowid) FROM {table}"))?.query_row([], |r| r.get(0))?;
    let moves = if moves {
        let Some(n) = counter(conn, "row_moves", table)? else {
            return Ok(None);
        };
        n
    } else {
        0
    };
    Ok(Some(Stamp { added: max_rowid.unwrap_or(0), deletions, moves }))
}

/// PostgreSQL's stamp: no rowid there, so the insert statements counted by a trigger
/// (`row_inserts`, see db/pg/migrations.rs) stand for the largest rowid. Sound only read in
/// the same snapshot as the count or bookmarks remembered under it (`list_page`'s `REPEATABLE
/// READ` transaction): two snapshots with equal counters hold the same rows, since every
/// insert, deletion and sort-column update of the table moves a counter in the writer's own
/// transaction.
fn pg_stamp(conn: &dyn Sql, table: &str, moves: bool) -> DbResult<Option<Stamp>> {
    let counters = conn.one(
        "SELECT (SELECT n FROM row_inserts WHERE tbl = ?1), (SELECT n FROM row_deletions WHERE tbl = ?1),
                (SELECT n FROM row_moves WHERE tbl = ?1)",
        super::sql::args![table],
        |r| Ok((r.opt_int(0)?, r.opt_int(1)?, r.opt_int(2)?)),
    )?;
    Ok(match counters {
        (Some(added), Some(deletions), _) if !moves => Some(Stamp { added, deletions, moves: 0 }),
        (Some(added), Some(deletions), Some(moves)) => Some(Stamp { added, deletions, moves }),
        _ => None,
    })
}
