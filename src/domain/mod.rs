//! Pure domain types, parsing and validation. Nothing here touches the database, the network
//! or the file system.

pub mod export;
pub mod export_input;
pub mod list;
pub mod naming;
pub mod ndjson;
pub mod nesting;
pub mod request_id;
pub mod result;
pub mod rng;
pub mod schema;
pub mod time;
pub mod webhook;
