//! Bookmarks in long lists, remembered between requests, so that a deep page does not walk
//! the index entries of every page before it.
//!
//! For a list (table, team or schema, sort column and order, `created_after`/`created_before`)
//! the sort key `(value, id)` of the row at every `every`-th position is remembered, stamped
//! like the remembered totals (db/counts.rs). Page N seeks to the nearest bookmark at or before
//! its first row with a keyset condition on the covering index and skips fewer than `every`
//! entries from there. Bookmarks are made lazily, only as deep as a request reaches, by the
//! same index-only walk a plain `OFFSET` does (one `LIMIT 1 OFFSET every` per bookmark), so
//! the first visit of a depth costs what it always did and later visits do not. A list whose
//! stamp moved (a row added or deleted, or for a sort column that updates change, a row
//! updated) is walked again from the start when next asked for a deep page.
//!
//! Hand-written on a hot path: a deep page of a 1,000,000-row list costs what the first page
//! costs instead of walking 20,000 index entries (bench/bench.py `paging`).

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::types::Value;

use super::counts::Stamp;
use super::sql::{Row, Sql};
use super::DbResult;

/// Bookmarks remembered at most, over all lists (a bookmark is a sort value and a UUID, about
/// 100 bytes): past this the least recently used lists are forgotten.
pub(crate) const MAX_MARKS: usize = 65_536;
/// Lists remembered at most.
pub(crate) const MAX_LISTS: usize = 1024;

/// A sort key: the sort column's value and the row's id (text, or 16 bytes for a table whose
/// ids are stored so on SQLite: db/ids.rs; a `uuid`'s text on PostgreSQL).
pub(crate) type Mark = (Value, Value);

struct Entry {
    stamp: Stamp,
    used: u64,
    /// `marks[i]` is the key of the row at position `(i + 1) * every` (from 0).
    marks: Vec<Mark>,
    /// The walk found the end of the list: there is no further bookmark to make.
    complete: bool,
}

/// The remembered bookmarks of the server's lists.
pub(crate) struct Bookmarks {
    every: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lists: HashMap<String, Entry>,
    marks: usize,
    tick: u64,
}

/// How to read one list's keys: `walk_sql(bound)` is the statement that, given `args` and,
/// when `bound`, a mark as the two arguments after them, returns the key `every` rows after
/// the mark (or after the start).
pub(crate) struct Walk<'a> {
    pub conn: &'a dyn Sql,
    pub key: String,
    pub stamp: Stamp,
    pub args: &'a [Value],
    pub walk_sql: &'a dyn Fn(bool) -> String,
}

impl Bookmarks {
    pub(crate) fn new(every: u32) -> Bookmarks {
        Bookmarks { every: every.max(1) as u64, inner: Mutex::default() }
    }

    /// Rows between two bookmarks.
    pub(crate) fn every(&self) -> u64 {
        self.every
    }

    /// The nearest bookmark at or before position `offset` of the list, with its position;
    /// `None` when the page starts before the first bookmark. Makes the missing bookmarks up
    /// to `offset` first.
    pub(crate) fn seek(&self, walk: &Walk, offset: u64) -> DbResult<Option<(u64, Mark)>> {
        let want = (offset / self.every) as usize;
        if want == 0 {
            return Ok(None);
        }
        // what is known, copied out so that the walk runs without the lock
        let (mut made, mut last) = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            match inner.lists.get_mut(&walk.key).filter(|e| e.stamp == walk.stamp) {
                Some(e) => {
                    e.used = tick;
                    if e.marks.len() >= want || e.complete {
                        let i = want.min(e.marks.len());
                        return Ok((i > 0).then(|| (i as u64 * self.every, e.marks[i - 1].clone())));
                    }
                    (e.marks.len(), e.marks.last().cloned())
                }
                None => (0, None),
            }
        };
        let start = made;
        let mut fresh = Vec::new();
        let mut end = false;
        let cap = MAX_MARKS / 4;
        while made < want.min(cap) {
            let sql = (walk.walk_sql)(last.is_some());
            let mut args = walk.args.to_vec();
            if let Some((v, id)) = &last {
                args.push(v.clone());
                args.push(id.clone());
            }
            let mut next = None;
            super::list::query_each(walk.conn, &sql, &args, &mut |r| {
                next = Some((value(r, 0)?, value(r, 1)?));
                Ok(())
            })?;
            match next {
                Some(m) => {
                    fresh.push(m.clone());
                    last = Some(m);
                    made += 1;
                }
                None => {
                    end = true;
                    break;
                }
            }
        }
        self.store(walk, start, fresh, end);
        Ok((made > 0).then(|| (made as u64 * self.every, last.expect("a bookmark was made or known"))))
    }

    /// Adds bookmarks `start..` of a list made under `walk.stamp`, unless another request
    /// changed the list meanwhile.
    fn store(&self, walk: &Walk, start: usize, fresh: Vec<Mark>, end: bool) {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let added = fresh.len();
        match inner.lists.get_mut(&walk.key) {
            Some(e) if e.stamp == walk.stamp => {
                if e.marks.len() != start {
                    return; // another request made these meanwhile
                }
                e.marks.extend(fresh);
                e.complete = end;
                e.used = tick;
            }
            _ if start > 0 => return,
            _ => {
                let old = inner
                    .lists
                    .insert(walk.key.clone(), Entry { stamp: walk.stamp, used: tick, marks: fresh, complete: end });
                inner.marks -= old.map_or(0, |e| e.marks.len());
            }
        }
        inner.marks += added;
        while inner.marks > MAX_MARKS || inner.lists.len() > MAX_LISTS {
            let Some(oldest) = inner.lists.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            let gone = inner.lists.remove(&oldest).map_or(0, |e| e.marks.len());
            inner.marks -= gone;
        }
    }

    /// Bookmarks held now, over all lists (for tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.lock().marks
    }

    /// Lists with bookmarks now (for tests).
    #[cfg(test)]
    pub(crate) fn lists(&self) -> usize {
        self.lock().lists.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Column `i` of a walk's row (a sort value or an id) as a bookmark holds it: SQLite's value
/// as stored; PostgreSQL's integers as integers, its texts and `uuid`s as text (bound back
/// as a `uuid` where the column is one).
fn value(r: &Row, i: usize) -> DbResult<Value> {
    match r {
        Row::Lite(r) => Ok(r.get::<_, Value>(i)?),
        Row::Pg(p) => match *p.columns()[i].type_() {
            postgres::types::Type::INT2 | postgres::types::Type::INT4 | postgres::types::Type::INT8 => {
                Ok(r.opt_int(i)?.map_or(Value::Null, Value::Integer))
            }
            _ => Ok(r.opt_text(i)?.map_or(Value::Null, Value::Text)),
        },
    }
}
