//! The distribution ledger (DESIGN.md §5): `GET /ledger` lists deliveries, newest first,
//! filtered by asset, version, partner, status, system and channel; `GET
//! /ledger/{delivery_id}` is one delivery with its hash-chained entries. Analysts,
//! auditors and admins read it (`policy::RULES`).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use gridflow_core::audit::ledger::{Delivery, Entry, Status};
use gridflow_store::LedgerFilter;

use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::openapi::ErrorBody;
use crate::http::paging::{List, Page, present};
use crate::http::state::AppState;

/// The ledger's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_ledger))
        .routes(routes!(delivery))
}

/// A delivery's status (`delivered`, `downloaded`, `acknowledged`, `failed`,
/// `superseded`, `withdrawn`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatusView {
    /// Made available to the partner.
    Delivered,
    /// The partner downloaded it.
    Downloaded,
    /// The partner acknowledged it.
    Acknowledged,
    /// The channel could not deliver it.
    Failed,
    /// A newer version replaced it.
    Superseded,
    /// Withdrawn: the partner lost access.
    Withdrawn,
}

impl From<Status> for DeliveryStatusView {
    fn from(status: Status) -> Self {
        match status {
            Status::Delivered => Self::Delivered,
            Status::Downloaded => Self::Downloaded,
            Status::Acknowledged => Self::Acknowledged,
            Status::Failed => Self::Failed,
            Status::Superseded => Self::Superseded,
            Status::Withdrawn => Self::Withdrawn,
        }
    }
}

/// One delivery: what was delivered to whom, by which step, and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Deterministic id (`<instance>:<step>[:<item>]:<attempt>:<index>` for a step's).
    pub delivery_id: String,
    /// The asset system.
    pub system: String,
    /// The asset id there.
    pub asset_id: String,
    /// The version delivered.
    pub version: String,
    /// SHA-256 of the bytes delivered.
    pub sha256: String,
    /// The partner company.
    pub partner: String,
    /// The channel (`trading_grid`, `vip`).
    pub channel: String,
    /// The channel's reference of the share (post, package).
    pub reference: String,
    /// The channel's id of the partner's copy.
    pub receipt: Option<String>,
    /// The delivering instance (`null` for a delivery an event reported).
    pub instance_id: Option<String>,
    /// The delivering step.
    pub step: Option<String>,
    /// The fan-out item.
    pub item: Option<u32>,
    /// The step's attempt.
    pub attempt: Option<u32>,
    /// When it was delivered.
    pub delivered_at: DateTime<Utc>,
    /// Where it stands now.
    pub status: DeliveryStatusView,
    /// Since when.
    pub status_at: DateTime<Utc>,
    /// The first download.
    pub downloaded_at: Option<DateTime<Utc>>,
    /// The first acknowledgement.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The seq of its last entry.
    pub head_seq: u64,
    /// The hash of its last entry.
    pub head_hash: String,
}

impl From<Delivery> for DeliveryView {
    fn from(delivery: Delivery) -> Self {
        let facts = delivery.facts;
        Self {
            delivery_id: delivery.delivery_id,
            system: facts.system,
            asset_id: facts.asset_id,
            version: facts.version,
            sha256: facts.sha256,
            partner: facts.partner,
            channel: facts.channel,
            reference: facts.reference,
            receipt: facts.receipt,
            instance_id: facts.instance_id.map(|id| id.to_string()),
            step: facts.step,
            item: facts.item,
            attempt: facts.attempt,
            delivered_at: delivery.delivered_at,
            status: delivery.status.into(),
            status_at: delivery.status_at,
            downloaded_at: delivery.downloaded_at,
            acknowledged_at: delivery.acknowledged_at,
            head_seq: delivery.head_seq,
            head_hash: delivery.head_hash,
        }
    }
}

/// One entry of a delivery's chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    /// From 1.
    pub seq: u64,
    /// The status it reports.
    pub status: DeliveryStatusView,
    /// When.
    pub at: DateTime<Utc>,
    /// The first entry's: the delivery's facts; a later one's: the change's detail.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// What wrote it: the step attempt, or the event source and id.
    #[schema(value_type = Object)]
    pub origin: Value,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical JSON of the entry)`.
    pub hash: String,
}

impl From<Entry> for EntryView {
    fn from(entry: Entry) -> Self {
        Self {
            seq: entry.seq,
            status: entry.status.into(),
            at: entry.at,
            detail: entry.detail,
            origin: entry.origin,
            prev_hash: entry.prev_hash,
            hash: entry.hash,
        }
    }
}

/// `GET /ledger/{delivery_id}`: the delivery and its entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetailView {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// Its entries, in seq order.
    pub entries: Vec<EntryView>,
}

/// Query of `GET /ledger` besides its [`Page`].
#[derive(Debug, Deserialize)]
pub(crate) struct LedgerQuery {
    asset: Option<String>,
    version: Option<String>,
    partner: Option<String>,
    status: Option<String>,
    system: Option<String>,
    channel: Option<String>,
}

fn statuses(text: Option<String>) -> Result<Vec<Status>, ApiError> {
    let Some(text) = present(text) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|name| {
            Status::parse(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = Status::ALL.iter().map(|status| status.as_str()).collect();
                ApiError::bad_parameter(
                    "status",
                    format!(
                        "{name:?} is not a delivery status: use {}",
                        known.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// List deliveries, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/ledger",
    tag = "ledger",
    params(
        ("asset" = Option<String>, Query, description = "Only this asset id"),
        ("version" = Option<String>, Query, description = "Only this version of it"),
        ("partner" = Option<String>, Query, description = "Only deliveries to this partner"),
        ("status" = inline(Option<crate::http::openapi_params::DeliveryStatusFilter>), Query, description = "Only deliveries whose current status is one of these (comma-separated)"),
        ("system" = Option<String>, Query, description = "Only assets of this system"),
        ("channel" = Option<String>, Query, description = "Only deliveries through this channel"),
        ("cursor" = inline(Option<crate::http::openapi_params::LedgerCursor>), Query, description = "`next_cursor` of the previous page"),
        ("limit" = inline(Option<crate::http::openapi_params::PageSize>), Query, description = "Page size, 1 to `limits.max_page_size` (500 by default; default 50)"),
    ),
    responses(
        (status = 200, description = "One page of deliveries", body = List<DeliveryView>),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
    )
)]
pub(crate) async fn list_ledger(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LedgerQuery>,
    page: Page,
) -> Result<Json<List<DeliveryView>>, ApiError> {
    let filter = LedgerFilter {
        system: present(query.system),
        asset_id: present(query.asset),
        version: present(query.version),
        partner: present(query.partner),
        channel: present(query.channel),
        statuses: statuses(query.status)?,
    };
    let found = state
        .engine
        .ledger(&filter, page.cursor.as_deref(), page.limit)
        .await?;
    Ok(Json(List {
        items: found.items.into_iter().map(DeliveryView::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// One delivery with its hash-chained entries.
#[utoipa::path(
    get,
    path = "/ledger/{delivery_id}",
    tag = "ledger",
    params(("delivery_id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery and its entries", body = DeliveryDetailView),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
pub(crate) async fn delivery(
    State(state): State<AppState>,
    ApiPath(delivery_id): ApiPath<String>,
) -> Result<Json<DeliveryDetailView>, ApiError> {
    let detail = state.engine.delivery(&delivery_id).await?;
    Ok(Json(DeliveryDetailView {
        delivery: detail.delivery.into(),
        entries: detail.entries.into_iter().map(EntryView::from).collect(),
    }))
}
