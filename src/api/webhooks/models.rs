//! The objects of `/v1/webhooks`: endpoints, the one answer that shows a secret, and
//! deliveries.

use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

use crate::api::list::{Meta, Sparse};
use crate::api::types::Text;
use crate::db::deliveries::DeliveryRow;
use crate::db::webhooks::EndpointRow;
use crate::domain::time::format_ms;

const EXAMPLE_ID: &str = "019760a0-0070-7000-8000-000000000070";
const EXAMPLE_URL: &str = "https://hooks.example.com/exports";
const EXAMPLE_TIME: &str = "2024-01-31T12:00:00.000Z";

fn example_events() -> Vec<String> {
    vec!["export.completed".into(), "export.failed".into()]
}

/// A new webhook endpoint.
#[derive(Object)]
#[oai(example, deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: an absolute `http` or `https` URL, at most 2048 characters.
    /// Redirects are not followed. A server started with `--webhook-allow-private false`
    /// refuses loopback, link-local and private addresses (and `localhost`), here and, after
    /// DNS resolution, at every delivery.
    pub url: Text,
    /// The events to receive: one or more of `export.completed` (the file is ready),
    /// `export.failed` (the export FAILED; its `error` says why) and `export.deleted` (deleted
    /// through the API or by retention), or `["*"]` for every event.
    #[oai(validator(min_items = 1, max_items = 10))]
    pub events: Vec<Text>,
    /// Free text to tell endpoints apart, at most 500 characters.
    #[oai(nullable)]
    pub description: Option<Text>,
}

impl Example for CreateWebhook {
    fn example() -> Self {
        CreateWebhook {
            url: EXAMPLE_URL.into(),
            events: vec!["export.completed".into(), "export.failed".into()],
            description: Some("Load finished exports into the warehouse".into()),
        }
    }
}

/// A webhook endpoint: where events of your team's exports are POSTed.
#[derive(Object, Clone)]
#[oai(example)]
pub struct Webhook {
    /// Webhook endpoint UUID.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events it receives: event types, or `["*"]` for every event.
    pub events: Vec<String>,
    /// Free text given when it was created.
    #[oai(nullable)]
    pub description: Option<String>,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// When it last changed (created, or its secret rotated).
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
}

impl Example for Webhook {
    fn example() -> Self {
        Webhook {
            id: EXAMPLE_ID.into(),
            url: EXAMPLE_URL.into(),
            events: example_events(),
            description: Some("Load finished exports into the warehouse".into()),
            created_at: EXAMPLE_TIME.into(),
            updated_at: EXAMPLE_TIME.into(),
        }
    }
}

/// A webhook endpoint with its signing secret, shown only in this answer (when the endpoint
/// is created, or its secret rotated): keep it where your receiver can read it.
#[derive(Object)]
#[oai(example)]
pub struct WebhookWithSecret {
    /// Webhook endpoint UUID.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events it receives: event types, or `["*"]` for every event.
    pub events: Vec<String>,
    /// Free text given when it was created.
    #[oai(nullable)]
    pub description: Option<String>,
    /// The signing secret: `whsec_` and 32 random bytes in base64url. Every delivery carries
    /// `x-exports-signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, keyed with this whole
    /// text over `<t>.<raw body>` (see the README). It is not shown again.
    pub secret: String,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// When it last changed (created, or its secret rotated).
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
}

impl Example for WebhookWithSecret {
    fn example() -> Self {
        WebhookWithSecret {
            id: EXAMPLE_ID.into(),
            url: EXAMPLE_URL.into(),
            events: example_events(),
            description: Some("Load finished exports into the warehouse".into()),
            secret: "whsec_q8c2oV3m0Jw4nR9yZ1tE5uK7hB6pL2sD0aF8gH3jX4I".into(),
            created_at: EXAMPLE_TIME.into(),
            updated_at: EXAMPLE_TIME.into(),
        }
    }
}

/// A page of webhook endpoints.
#[derive(Object)]
#[oai(example)]
pub struct WebhookList {
    pub data: Vec<Sparse<Webhook>>,
    pub meta: Meta,
}

impl Example for WebhookList {
    fn example() -> Self {
        WebhookList {
            data: vec![Sparse::new(&Webhook::example(), None)],
            meta: Meta { page: 1, limit: 20, total: 1, total_pages: 1 },
        }
    }
}

/// `sort_by` for webhook endpoints.
#[derive(Enum, Clone, Copy)]
pub enum WebhookSortBy {
    #[oai(rename = "createdAt")]
    CreatedAt,
    #[oai(rename = "updatedAt")]
    UpdatedAt,
}

/// Where a delivery is: `pending` (not yet answered with a 2xx; tried again at
/// `next_attempt_at`), `succeeded` (a 2xx answer) or `failed` (no 2xx within 24 hours of
/// retries; not tried again).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

/// One event sent (or being sent) to one endpoint.
#[derive(Object)]
#[oai(example)]
pub struct WebhookDelivery {
    /// The event's id: the body's `id` and the `x-exports-event-id` header, the same at every
    /// attempt (de-duplicate by it).
    pub event_id: String,
    /// The event type, e.g. `export.completed`.
    #[oai(rename = "type")]
    pub ty: String,
    /// The export the event is about.
    pub export_id: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// The HTTP status of the last answer; null when there was none (no connection, a
    /// timeout) or no attempt yet.
    #[oai(nullable)]
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed; null after a success or before the first attempt.
    #[oai(nullable)]
    pub last_error: Option<String>,
    /// When the next attempt is due; null once `succeeded` or `failed`.
    #[oai(nullable)]
    pub next_attempt_at: Option<String>,
    /// When the event happened and the delivery was queued.
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// When the last attempt ended (or `createdAt`).
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
}

impl Example for WebhookDelivery {
    fn example() -> Self {
        WebhookDelivery {
            event_id: "019760a0-0080-7000-8000-000000000080".into(),
            ty: "export.completed".into(),
            export_id: "019760a0-0050-7000-8000-000000000050".into(),
            status: DeliveryStatus::Pending,
            attempts: 1,
            last_status_code: Some(503),
            last_error: Some("the endpoint answered 503; only a 2xx status is a success".into()),
            next_attempt_at: Some("2024-01-31T12:01:30.000Z".into()),
            created_at: "2024-01-31T12:01:00.000Z".into(),
            updated_at: "2024-01-31T12:01:00.150Z".into(),
        }
    }
}

/// An endpoint's most recent deliveries, newest first.
#[derive(Object)]
#[oai(example)]
pub struct WebhookDeliveryList {
    pub data: Vec<WebhookDelivery>,
}

impl Example for WebhookDeliveryList {
    fn example() -> Self {
        WebhookDeliveryList { data: vec![WebhookDelivery::example()] }
    }
}

pub fn to_api(e: &EndpointRow) -> Webhook {
    Webhook {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.events.clone(),
        description: e.description.clone(),
        created_at: format_ms(e.created_at),
        updated_at: format_ms(e.updated_at),
    }
}

pub fn with_secret(e: &EndpointRow) -> WebhookWithSecret {
    WebhookWithSecret {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.events.clone(),
        description: e.description.clone(),
        secret: e.secret.clone(),
        created_at: format_ms(e.created_at),
        updated_at: format_ms(e.updated_at),
    }
}

pub fn delivery_to_api(d: &DeliveryRow) -> WebhookDelivery {
    WebhookDelivery {
        event_id: d.event_id.clone(),
        ty: d.event_type.clone(),
        export_id: d.export_id.clone(),
        status: match d.status.as_str() {
            crate::db::deliveries::SUCCEEDED => DeliveryStatus::Succeeded,
            crate::db::deliveries::FAILED => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        },
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        next_attempt_at: d.next_attempt_at.map(format_ms),
        created_at: format_ms(d.created_at),
        updated_at: format_ms(d.updated_at),
    }
}
