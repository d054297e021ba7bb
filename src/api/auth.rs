//! `x-api-key` authentication: every `/v1` route needs a key; the key's team scopes
//! everything the request can see.

use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::ApiKey;
use poem_openapi::SecurityScheme;

use super::request_log::RequestTeam;
use crate::db::keys::Team;
use crate::error::ApiError;
use crate::state::AppState;

/// Your API key, sent in the `x-api-key` header. Create one with
/// `exports-api keys create --team TEAM`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "x-api-key", key_in = "header", checker = "check_key")]
pub struct ApiKeyAuth(pub Team);

async fn check_key(req: &Request, key: ApiKey) -> poem::Result<Team> {
    let state = req.data::<Arc<AppState>>().ok_or_else(|| ApiError::internal("application state missing"))?.clone();
    let team = team_for_key(&state, &key.key).await?;
    super::rate_limit::record_key_check(req, team.is_some());
    if let (Some(team), Some(slot)) = (&team, req.extensions().get::<RequestTeam>()) {
        slot.set(&team.id);
    }
    team.ok_or_else(|| {
        ApiError::new(
            poem::http::StatusCode::UNAUTHORIZED,
            "Missing or invalid API key: send a valid key in the x-api-key header",
        )
        .into()
    })
}

/// The team of an API key (`None` for an unknown or revoked key), from the cache when it
/// was seen recently.
pub async fn team_for_key(state: &Arc<AppState>, key: &str) -> Result<Option<Team>, ApiError> {
    let digest = crate::db::keys::hash_key(key);
    let team = match state.key_cache.get(&digest) {
        Some(team) => Some(team),
        None => {
            let d = digest.clone();
            let team = super::with_db(state, move |c| Ok(crate::db::keys::team_for_digest(c, &d)?)).await?;
            if let Some(t) = &team {
                state.key_cache.put(digest, t.clone());
            }
            team
        }
    };
    Ok(team)
}
