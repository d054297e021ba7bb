//! `GET /healthz`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::state::AppState;

pub struct HealthApi;

/// Service health.
#[derive(Object)]
pub struct Health {
    /// `ok` when the database answers.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The service and its database answer.
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// The database does not answer.
    #[oai(status = 503)]
    Unavailable(Json<crate::error::ErrorBody>),
}

#[OpenApi]
impl HealthApi {
    /// Health check
    ///
    /// 200 `{"status":"ok"}` when the database answers, else 503. Needs no API key and is
    /// never rate limited; meant for container health checks and load balancers.
    #[oai(path = "/healthz", method = "get", tag = "ApiTags::Health")]
    async fn healthz(&self, state: Data<&Arc<AppState>>) -> HealthResponse {
        match super::with_db(&state, |c| Ok(crate::db::ping(c)?)).await {
            Ok(()) => HealthResponse::Ok(Json(Health { status: "ok".into() })),
            Err(e) => HealthResponse::Unavailable(Json(crate::error::ErrorBody::new(
                poem::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("The database does not answer: {}", e.message),
            ))),
        }
    }
}
