//! exports-api: a self-hosted, single-binary service that turns extraction results into
//! downloadable CSV, Excel and JSON Lines files through asynchronous export jobs and signed
//! URLs.
//!
//! Dependencies point one way, down the layers (`layers_tests.rs` holds the table and
//! checks it): `cli` → `app` (wiring) → `api`, `server` → `error` → `state`, `services` → `jobs`,
//! `import`, `config`, `webhooks` → `db`, `signing`, `metrics`, `storage` → `data_dir` → `private` → `domain`.

pub mod api;
pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod import;
pub mod jobs;
pub mod metrics;
pub mod private;
pub mod server;
pub mod services;
pub mod signing;
pub mod state;
pub mod storage;
pub mod webhooks;

#[cfg(test)]
mod layers_tests;
