//! `GET /api/v1/connectors`: the catalogue (DESIGN.md §5). Every connector the engine
//! invokes (the same registry that `validate` and deployment check definitions against),
//! with its actions (argument and output JSON Schemas) and the events its system emits
//! (payload JSON Schemas): what an analyst writes in `action:`, `with:`, a trigger's
//! `event:` and a wait's `signal:`. Every role may read it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use gridflow_connectors::Registry;

use crate::http::state::AppState;

/// `GET /connectors` → 200.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Catalogue {
    /// Every connector, by name.
    pub items: Vec<ConnectorEntry>,
}

/// One connector: a system (`iconik`) or the built-in `core`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectorEntry {
    /// The prefix of its actions and events (`trading_grid`).
    pub name: String,
    /// What system it speaks to.
    pub description: String,
    /// Its actions, by name; a definition calls one as `<connector>.<action>`.
    pub actions: Vec<ActionEntry>,
    /// The events its system emits, named `<connector>.<event>` in a trigger's `event:`
    /// or a wait's `signal:`; empty for a system that emits none.
    pub events: Vec<EventEntry>,
}

/// One action of a connector.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionEntry {
    /// The action's name without the connector (`search_assets`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema (2020-12) of its `with` arguments.
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// JSON Schema (2020-12) of its output.
    #[schema(value_type = Object)]
    pub output: Value,
}

/// One event a system emits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventEntry {
    /// The event's name without the connector (`post_acknowledged`).
    pub name: String,
    /// When it comes.
    pub description: String,
    /// JSON Schema (2020-12) of its payload, `event` in a trigger's templates and the
    /// signal's payload.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// The catalogue of `registry`, connectors and their actions and events in name order.
pub fn catalogue(registry: &Registry) -> Catalogue {
    let items = registry
        .connectors()
        .map(|connector| {
            let mut actions: Vec<ActionEntry> = connector
                .actions()
                .iter()
                .map(|spec| ActionEntry {
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    arguments: spec.arguments.clone(),
                    output: spec.output.clone(),
                })
                .collect();
            actions.sort_by(|left, right| left.name.cmp(&right.name));
            actions.dedup_by(|later, earlier| later.name == earlier.name);
            let events = registry
                .events(connector.name())
                .unwrap_or_default()
                .iter()
                .map(|spec| EventEntry {
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    payload: spec.payload.clone(),
                })
                .collect();
            ConnectorEntry {
                name: connector.name().to_owned(),
                description: connector.description().to_owned(),
                actions,
                events,
            }
        })
        .collect();
    Catalogue { items }
}

/// `GET /api/v1/connectors`.
#[utoipa::path(
    get,
    path = "/connectors",
    tag = "connectors",
    responses((status = 200, description = "Every connector with its actions (argument and output JSON Schemas) and the events its system emits (payload JSON Schemas)", body = Catalogue))
)]
pub(crate) async fn list_connectors(State(state): State<AppState>) -> Json<Catalogue> {
    Json(catalogue(state.engine.registry()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offline_catalogue_lists_every_system_with_actions_and_events() {
        let catalogue = catalogue(&gridflow_connectors::sandbox::offline_catalog());
        let names: Vec<&str> = catalogue
            .items
            .iter()
            .map(|item| item.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "canto",
                "core",
                "iconik",
                "ledger",
                "otmm",
                "smintio",
                "trading_grid",
                "vip"
            ]
        );
        for item in &catalogue.items {
            assert!(!item.description.is_empty(), "{}", item.name);
            assert!(!item.actions.is_empty(), "{}", item.name);
            for action in &item.actions {
                assert!(
                    !action.description.is_empty(),
                    "{}.{}",
                    item.name,
                    action.name
                );
            }
            for event in &item.events {
                assert!(
                    !event.description.is_empty(),
                    "{}.{}",
                    item.name,
                    event.name
                );
                jsonschema::draft202012::new(&event.payload)
                    .unwrap_or_else(|error| panic!("{}.{}: {error}", item.name, event.name));
            }
        }
        let events = |name: &str| -> Vec<String> {
            catalogue
                .items
                .iter()
                .find(|item| item.name == name)
                .map(|item| item.events.iter().map(|event| event.name.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            events("trading_grid"),
            [
                "issue_created",
                "issue_updated",
                "issue_commented",
                "post_acknowledged",
                "request_created",
                "request_updated",
                "post_commented",
                "document_downloaded",
                "partner_joined",
                "post_withdrawn"
            ]
        );
        assert_eq!(events("otmm"), ["asset_changed"]);
        assert_eq!(events("iconik"), ["asset_changed"]);
        assert_eq!(events("canto"), ["version_added", "metadata_updated"]);
        assert_eq!(
            events("vip"),
            [
                "package_published",
                "delivery_delivered",
                "delivery_downloaded",
                "delivery_acknowledged",
                "delivery_failed",
                "delivery_superseded",
                "delivery_revoked",
                "package_withdrawn"
            ]
        );
        assert_eq!(events("smintio"), ["asset_changed", "licence_changed"]);
    }
}
