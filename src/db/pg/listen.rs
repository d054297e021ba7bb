//! `LISTEN` on a connection of its own: how an idle export worker hears of a job created on
//! another replica (the insert's transaction sends `NOTIFY`, delivered at its commit).

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::NoTls;

use crate::db::DbResult;

/// How long a wait for a notification lasts before `go_on` is asked again.
const WAIT: Duration = Duration::from_millis(500);

/// Connects to the database at `url`, `LISTEN`s on `channel` and calls `heard` at each
/// notification, until `go_on` says stop (asked at least every half second). Returns an error
/// when the connection fails (the caller reconnects); notifications sent meanwhile are lost,
/// so the listener is a wake-up, never the only way a job is found.
pub fn listen(url: &str, channel: &str, go_on: &dyn Fn() -> bool, heard: &dyn Fn()) -> DbResult<()> {
    let mut config: postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(super::CONNECT_TIMEOUT);
    }
    config.application_name("exports-api listener");
    let mut client = config.connect(NoTls)?;
    // the channel is one of the code's names, never a user's: no quoting needed
    client.batch_execute(&format!("LISTEN {channel}"))?;
    while go_on() {
        // one at a time, so that `go_on` is asked between them
        if client.notifications().timeout_iter(WAIT).next()?.is_some() {
            heard();
        }
        if client.is_closed() {
            // (what closed it was already returned as an error, or is lost: reconnect)
            return Err(crate::db::DbError::Interrupted("the listening connection to PostgreSQL closed"));
        }
    }
    Ok(())
}
