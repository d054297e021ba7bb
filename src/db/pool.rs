//! Connections for reads, on either database: SQLite's r2d2 pool over the data folder's file,
//! or PostgreSQL's. A connection from [`Pool::get`] is a `&dyn Sql` (it derefs to one).

use std::ops::Deref;

use super::pg::PgPool;
use super::sql::{Pg, Sql};
use super::{DbResult, LitePool};

/// Connections for reads; cheap to clone.
#[derive(Clone)]
pub enum Pool {
    Lite(LitePool),
    Pg(PgPool),
}

/// A connection from [`Pool::get`], back to its pool when dropped.
pub enum Conn {
    Lite(r2d2::PooledConnection<r2d2_sqlite::SqliteConnectionManager>),
    Pg(Box<Pg>),
}

impl Pool {
    /// A connection, waiting for one to be free up to the pool's timeout.
    pub fn get(&self) -> DbResult<Conn> {
        Ok(match self {
            Pool::Lite(p) => Conn::Lite(p.get()?),
            Pool::Pg(p) => Conn::Pg(Box::new(Pg::new(p.get()?))),
        })
    }

    /// Connections open and idle, for `/metrics`.
    pub fn state(&self) -> r2d2::State {
        match self {
            Pool::Lite(p) => p.state(),
            Pool::Pg(p) => p.state(),
        }
    }
}

impl Sql for Conn {
    fn lite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Lite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    fn pg(&self) -> Option<&Pg> {
        match self {
            Conn::Lite(_) => None,
            Conn::Pg(c) => Some(c),
        }
    }
}

impl Deref for Conn {
    type Target = dyn Sql;

    fn deref(&self) -> &(dyn Sql + 'static) {
        match self {
            Conn::Lite(c) => &**c,
            Conn::Pg(c) => &**c,
        }
    }
}
