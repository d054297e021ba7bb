//! The integration tests: one binary, one harness (`helpers`). Each module tests one area
//! of the black-box contract through the real application (in-process or the real binary).

mod helpers;

mod api_auth_errors;
mod api_exports;
mod api_schemas_results;
mod binary_ids;
mod cli;
mod cli_export;
mod cli_help;
mod console;
mod container;
mod csv_export;
mod data_dir_lock;
mod downloads;
mod first_hour_api;
mod formats;
mod hardening_bodies;
mod hardening_connections;
mod hardening_errors;
mod hardening_limits;
mod http_edges;
mod idempotency;
mod import_streaming;
mod lifecycle;
mod list_deep_pages;
mod list_include_fields;
mod list_items;
mod logs;
mod metrics;
mod object_storage;
mod openapi_drift;
mod pg_jobs;
mod postgres_crud;
mod postgres_lists;
mod postgres_results;
mod postgres_schema;
mod progress;
mod replicas;
mod request_ids;
mod restart;
mod roles;
mod webhooks;
mod write_path;
