//! Export jobs: the export engine (CSV, JSON Lines, workbooks) and the worker threads that
//! run it.

mod batches;
pub mod csv;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod json;
mod priority;
pub mod runner;

pub mod xlsx;
