//! What a request does once its input is parsed: the steps that need the database, the
//! workers or the data folder, below the API. Each returns a typed error that the API maps
//! to HTTP (`api/…`, `From<…> for ApiError`); the command line could call them as well.

pub mod exports;
