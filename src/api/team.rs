//! `GET /v1/team`: the team an API key belongs to.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::ApiKeyAuth;
use super::ApiTags;
use crate::{api_errors, api_ok};

pub struct TeamApi;

/// A team: every resource belongs to one, and a key sees only its own team's.
#[derive(Object)]
#[oai(example)]
pub struct TeamInfo {
    /// Team UUID.
    pub id: String,
    /// Team name, as given to `exports-api teams create NAME`.
    pub name: String,
}

impl poem_openapi::types::Example for TeamInfo {
    fn example() -> Self {
        TeamInfo { id: "019760a0-0000-7000-8000-000000000000".into(), name: "demo".into() }
    }
}

api_ok!(TeamOk::Ok = 200: TeamInfo, "The key's team.");

api_errors!(TeamErrors {});

#[OpenApi(prefix_path = "/v1")]
impl TeamApi {
    /// Get your team
    ///
    /// The team your API key belongs to: its id and name. A cheap way to check that a key
    /// works (401 when it does not) and to tell which team's data it shows.
    #[oai(path = "/team", method = "get", tag = "ApiTags::Team")]
    async fn get_team(&self, auth: ApiKeyAuth) -> Result<TeamOk, TeamErrors> {
        let team = auth.0;
        Ok(TeamOk::Ok(Json(TeamInfo { id: team.id, name: team.name })))
    }
}
