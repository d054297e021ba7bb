//! exports-api: a self-hosted, single-binary service that turns extraction results into
//! downloadable CSV files through asynchronous export jobs and signed URLs.
//!
//! Dependencies point one way: `cli` → `app` → `server`, `api`/`files` → `db`/`jobs`/`signing` →
//! `domain`.

pub mod api;
pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod files;
pub mod import;
pub mod jobs;
pub mod private;
pub mod server;
pub mod signing;
