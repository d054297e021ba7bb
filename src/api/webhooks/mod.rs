//! `/v1/webhooks`: endpoints that receive signed events of a team's exports, and what was
//! delivered to them.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::auth::ApiKeyAuth;
use super::body::JsonBody;
use super::list::{default_limit, default_page, Includes, ListParams, ListSpec, SortOrder, Sparse};
use super::{with_db, with_writer, ApiTags, Message};
use crate::db::webhooks::EndpointRow;
use crate::domain::time::now_ms;
use crate::domain::webhook::NewEndpoint;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{api_errors, api_list_ok, api_ok};

pub struct WebhooksApi;

mod models;

pub use models::*;

const WEBHOOK_FIELDS: &[&str] = &["id", "url", "events", "description", "createdAt", "updatedAt"];

api_ok!(WebhookCreated::Created = 201: WebhookWithSecret, "Webhook endpoint created; its secret is shown this once.");

api_ok!(WebhookOk::Ok = 200: Webhook, "The webhook endpoint.");

api_ok!(WebhookRotated::Ok = 200: WebhookWithSecret, "New secret made; it is shown this once.");

api_list_ok!(WebhookListOk::Ok = 200: WebhookList, "A page of webhook endpoints.");

api_ok!(WebhookDeleted::Ok = 200: Message, "Webhook endpoint deleted.");

api_ok!(DeliveriesOk::Ok = 200: WebhookDeliveryList, "The endpoint's recent deliveries, newest first.");

api_errors!(CreateWebhookErrors: keyed_json_body {
    BadRequest = 400: "Invalid request body: a URL that is not absolute http(s) (or, with --webhook-allow-private false, names a private address), an unknown event (the message lists the allowed ones), a description over 500 characters",
});
api_errors!(ListWebhooksErrors {
    BadRequest = 400: "Invalid query parameter (the message names it)",
});
api_errors!(GetWebhookErrors {
    BadRequest = 400: "Malformed webhook id or query parameter",
    NotFound = 404: "Webhook not found",
});
api_errors!(WriteWebhookErrors: writes {
    BadRequest = 400: "Malformed webhook id",
    NotFound = 404: "Webhook not found",
});
api_errors!(RotateWebhookErrors: keyed_writes {
    BadRequest = 400: "Malformed webhook id",
    NotFound = 404: "Webhook not found",
});

fn not_found() -> ApiError {
    ApiError::not_found("Webhook not found")
}

/// An endpoint of the team, or 404 (another team's answers as a missing one).
async fn find(state: &Arc<AppState>, team: String, id: uuid::Uuid) -> Result<EndpointRow, ApiError> {
    let id = id.to_string();
    with_db(state, move |c| Ok(crate::db::webhooks::get(c, &team, &id)?)).await?.ok_or_else(not_found)
}

#[OpenApi(prefix_path = "/v1")]
impl WebhooksApi {
    /// Create a webhook endpoint
    ///
    /// From now on, every event of your team's exports that the endpoint subscribes to is
    /// POSTed to `url` as JSON: `{"id": "<event id>", "type": "export.completed", "createdAt":
    /// "...", "data": {<the export object, as GET /v1/exports/{id} shows it>}}`, with the
    /// headers `Content-Type: application/json`, `x-exports-event-id` (the event id) and
    /// `x-exports-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
    ///
    /// A 2xx answer within 10 seconds is a success; anything else is tried again after about
    /// 30 s, 2 min, 10 min, 1 h, then every 3 h, for 24 hours (then the delivery is `failed`).
    /// Deliveries are queued in the server's database: they survive restarts, and an event is
    /// delivered at least once, so de-duplicate by event id. The answer is the only one that
    /// shows the endpoint's `secret`.
    #[oai(path = "/webhooks", method = "post", tag = "ApiTags::Webhooks")]
    async fn create_webhook(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Makes a retry safe: a repeat with the same key, method, path and body within 24
        /// hours gets the first answer again (with `Idempotent-Replayed: true`), secret
        /// included, and changes nothing; see "Safe retries" in the API description.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: poem_openapi::param::Header<Option<String>>,
        body: JsonBody<CreateWebhook>,
    ) -> Result<WebhookCreated, CreateWebhookErrors> {
        let body = body.0;
        let events: Vec<String> = body.events.into_iter().map(|t| t.0).collect();
        let new = NewEndpoint::check(&body.url, &events, body.description.map(|t| t.0), state.webhooks.allow_private())
            .map_err(ApiError::bad_request)?;
        crate::webhooks::check_new_endpoint_host(&new.url, state.webhooks.allow_private())
            .await
            .map_err(ApiError::bad_request)?;
        let now = now_ms();
        let row = EndpointRow {
            id: uuid::Uuid::now_v7().to_string(),
            team_id: auth.0.id,
            url: new.url,
            events: new.events,
            description: new.description,
            secret: crate::webhooks::new_secret(),
            created_at: now,
            updated_at: now,
        };
        let row = with_writer(&state, move |c| {
            crate::db::webhooks::insert(c, &row)?;
            Ok(row)
        })
        .await?;
        tracing::info!(webhook_id = %row.id, team_id = %row.team_id, "webhook endpoint created");
        Ok(WebhookCreated::Created(Json(with_secret(&row))))
    }

    /// List webhook endpoints
    ///
    /// Your team's webhook endpoints, paginated, newest first by default; secrets are never
    /// listed. `search` matches url and description.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/webhooks", method = "get", tag = "ApiTags::Webhooks")]
    async fn list_webhooks(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Page number (min 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1–100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
        /// Field to sort by (default createdAt); ties break by id.
        sort_by: Query<Option<WebhookSortBy>>,
        /// Sort direction (default `desc`).
        sort_order: Query<Option<SortOrder>>,
        /// Case-insensitive substring of url or description; at most 200 characters.
        #[oai(validator(max_length = 200))]
        search: Query<Option<String>>,
        /// Only endpoints created at or after this ISO 8601 time (a bare date: its start).
        created_after: Query<Option<String>>,
        /// Only endpoints created at or before this ISO 8601 time (a bare date: its end).
        created_before: Query<Option<String>>,
        /// Comma-separated fields each item carries: id, url, events, description, createdAt, updatedAt.
        fields: Query<Option<String>>,
        /// Related resources to include; webhooks have none.
        include: Query<Option<String>>,
    ) -> Result<WebhookListOk, ListWebhooksErrors> {
        let col = match sort_by.0 {
            None | Some(WebhookSortBy::CreatedAt) => "created_at",
            Some(WebhookSortBy::UpdatedAt) => "updated_at",
        };
        let list = ListParams {
            page: page.0,
            limit: limit.0,
            sort_order: sort_order.0,
            search: search.0,
            created_after: created_after.0,
            created_before: created_before.0,
            fields: fields.0,
            include: include.0,
        }
        .check(ListSpec {
            sort_column: col,
            fields: WEBHOOK_FIELDS,
            includes: Includes::Nothing("webhooks"),
        })?;
        let team = auth.0.id;
        let page = list.fetch(&state, move |c, q, _| Ok(crate::db::webhooks::list(c, &team, q)?)).await?;
        Ok(WebhookListOk::Ok(
            page.json(|out, r, fields, _| out.serde(&Sparse::<Webhook>::new(&to_api(r), fields.names())))?,
        ))
    }

    /// Get a webhook endpoint
    ///
    /// The endpoint, without its secret.
    #[oai(path = "/webhooks/:id", method = "get", tag = "ApiTags::Webhooks")]
    async fn get_webhook(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Webhook endpoint UUID
        id: Path<uuid::Uuid>,
    ) -> Result<WebhookOk, GetWebhookErrors> {
        let row = find(&state, auth.0.id, id.0).await?;
        Ok(WebhookOk::Ok(Json(to_api(&row))))
    }

    /// Delete a webhook endpoint
    ///
    /// The endpoint receives nothing more: its pending deliveries are dropped with it (an
    /// attempt already under way may still arrive).
    #[oai(path = "/webhooks/:id", method = "delete", tag = "ApiTags::Webhooks")]
    async fn delete_webhook(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Webhook endpoint UUID
        id: Path<uuid::Uuid>,
    ) -> Result<WebhookDeleted, WriteWebhookErrors> {
        let (team, id) = (auth.0.id, id.0.to_string());
        let (t, i) = (team.clone(), id.clone());
        let deleted = with_writer(&state, move |c| Ok(crate::db::webhooks::delete(c, &t, &i)?)).await?;
        if !deleted {
            return Err(not_found().into());
        }
        tracing::info!(webhook_id = %id, team_id = %team, "webhook endpoint deleted");
        Ok(WebhookDeleted::Ok(Json(Message::new("Webhook deleted successfully"))))
    }

    /// Rotate a webhook endpoint's secret
    ///
    /// Makes a new secret and shows it this once; the old one stops at once: every delivery
    /// from now on, retries of earlier events included, is signed with the new secret.
    #[oai(path = "/webhooks/:id/rotate-secret", method = "post", tag = "ApiTags::Webhooks")]
    async fn rotate_secret(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Webhook endpoint UUID
        id: Path<uuid::Uuid>,
        /// Makes a retry safe: a repeat with the same key, method, path and body within 24
        /// hours gets the first answer again (with `Idempotent-Replayed: true`), secret
        /// included, and changes nothing; see "Safe retries" in the API description.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: poem_openapi::param::Header<Option<String>>,
    ) -> Result<WebhookRotated, RotateWebhookErrors> {
        let (team, id) = (auth.0.id, id.0.to_string());
        let secret = crate::webhooks::new_secret();
        let row = with_writer(&state, move |c| Ok(crate::db::webhooks::set_secret(c, &team, &id, &secret, now_ms())?))
            .await?
            .ok_or_else(not_found)?;
        tracing::info!(webhook_id = %row.id, team_id = %row.team_id, "webhook secret rotated");
        Ok(WebhookRotated::Ok(Json(with_secret(&row))))
    }

    /// List a webhook endpoint's deliveries
    ///
    /// The most recent deliveries to the endpoint, newest first: one per event it received
    /// or is to receive, with its status (`pending`, `succeeded`, `failed`), attempts so far,
    /// the last answer's status code and error, and when the next attempt is due. Finished
    /// deliveries are kept for 7 days.
    #[oai(path = "/webhooks/:id/deliveries", method = "get", tag = "ApiTags::Webhooks")]
    async fn list_deliveries(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Webhook endpoint UUID
        id: Path<uuid::Uuid>,
        /// Deliveries to return (1–100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<DeliveriesOk, GetWebhookErrors> {
        let row = find(&state, auth.0.id, id.0).await?;
        let n = limit.0;
        let rows = with_db(&state, move |c| Ok(crate::db::deliveries::recent(c, &row.id, n)?)).await?;
        Ok(DeliveriesOk::Ok(Json(WebhookDeliveryList { data: rows.iter().map(delivery_to_api).collect() })))
    }
}
