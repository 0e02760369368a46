//! The `trading_grid` connector against the Trading Grid simulator over real HTTP.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use gridflow_connectors::config::TradingGridConfig;
use gridflow_connectors::content::{Artifact, ContentStore};
use gridflow_connectors::http::Secret;
use gridflow_connectors::simulator::trading_grid::SANDBOX_COMPANY_ID;
use gridflow_connectors::simulator::{self, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SimOptions};
use gridflow_connectors::trading_grid::{TradingGridConnector, TradingGridCredentials};
use gridflow_connectors::{Connector, Registry};
use serde_json::json;
use support::{Case, assert_error, invocation, invoke, run_contract};

fn config(base_url: &str, timeout: Duration) -> TradingGridConfig {
    TradingGridConfig {
        base_url: base_url.to_owned(),
        company_id: SANDBOX_COMPANY_ID.to_owned(),
        client_id_env: "TG_CONSUMER_KEY".to_owned(),
        client_secret_env: "TG_CONSUMER_SECRET".to_owned(),
        timeout,
        poll_interval: Duration::from_secs(60),
    }
}

fn credentials(secret: &str) -> TradingGridCredentials {
    TradingGridCredentials {
        client_id: Secret::new(SANDBOX_CLIENT_ID),
        client_secret: Secret::new(secret),
    }
}

fn registry(base_url: &str) -> Registry {
    registry_with(base_url, ContentStore::scratch())
}

fn registry_with(base_url: &str, content: ContentStore) -> Registry {
    let mut registry = Registry::new();
    let connector = TradingGridConnector::new(
        &config(base_url, Duration::from_secs(10)),
        credentials(SANDBOX_CLIENT_SECRET),
    )
    .unwrap()
    .with_content(content);
    registry.register(Arc::new(connector));
    registry
}

/// An artifact of `bytes` put into `content`.
async fn artifact(content: &ContentStore, bytes: &[u8], file_name: &str) -> serde_json::Value {
    let reference = content.put(bytes, "image/png", file_name).await.unwrap();
    serde_json::to_value(Artifact {
        system: "otmm".to_owned(),
        asset_id: "asset-1".to_owned(),
        version: "2".to_owned(),
        content: reference,
    })
    .unwrap()
}

/// Publishes `artifacts` to the retailers group as step `step`; the output.
async fn publish(
    registry: &Registry,
    artifacts: serde_json::Value,
    step: &str,
) -> serde_json::Value {
    invoke(
        registry,
        "trading_grid.publish_content",
        json!({"community_id": "cmty-aurora-partners", "group_ids": ["grp-retailers"],
               "title": "Spring pack shots", "body": "Approved images.", "content": artifacts}),
        step,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn every_action_meets_the_contract() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let content = ContentStore::new(store.path(), 1024 * 1024);
    let registry = registry_with(&simulator.base_url(), content.clone());
    let slow = TradingGridConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(1)),
        credentials(SANDBOX_CLIENT_SECRET),
    )
    .unwrap()
    .with_content(content.clone());
    let image = artifact(&content, b"\x89PNG spring", "spring.png").await;
    let first = publish(&registry, json!([image.clone()]), "setup-1").await;
    let second = publish(&registry, json!([image.clone()]), "setup-2").await;
    let (first_post, second_post) = (&first["post_id"], &second["post_id"]);
    let second_document = &second["documents"][0]["document_id"];
    let cases = [
        Case {
            action: "trading_grid.list_partners",
            arguments: json!({"name": "metro"}),
            missing: None,
        },
        Case {
            action: "trading_grid.list_communities",
            arguments: json!({}),
            missing: None,
        },
        Case {
            action: "trading_grid.list_groups",
            arguments: json!({"community_id": "cmty-aurora-partners"}),
            missing: Some(json!({"community_id": "cmty-nope"})),
        },
        Case {
            action: "trading_grid.list_group_members",
            arguments: json!({"group_id": "grp-retailers"}),
            missing: Some(json!({"group_id": "grp-nope"})),
        },
        Case {
            action: "trading_grid.post_message",
            arguments: json!({"community_id": "cmty-aurora-partners", "group_ids": ["grp-retailers"], "title": "New pack shots", "body": "See attached.",
                              "attachments": [{"name": "a.png", "content_type": "image/png", "url": "https://dam.example/a.png"}], "requires_ack": true}),
            missing: Some(json!({"community_id": "cmty-nope", "title": "x", "body": "y"})),
        },
        Case {
            action: "trading_grid.notify_partners",
            arguments: json!({"group_ids": ["grp-distributors"], "channel": "email", "subject": "New assets", "message": "Please review.", "post_id": "post-000001"}),
            missing: Some(
                json!({"company_ids": ["GC-NOPE"], "channel": "portal", "subject": "x", "message": "y"}),
            ),
        },
        Case {
            action: "trading_grid.open_issue",
            arguments: json!({"title": "Wrong UPC", "description": "UPC on the sell sheet is wrong", "partner_company_id": "GC00933311CD", "severity": "high"}),
            missing: Some(
                json!({"title": "x", "description": "y", "partner_company_id": "GC-NOPE", "severity": "low"}),
            ),
        },
        Case {
            action: "trading_grid.update_issue",
            arguments: json!({"issue_id": "iss-000003", "status": "in_progress"}),
            missing: Some(json!({"issue_id": "iss-nope", "status": "closed"})),
        },
        Case {
            action: "trading_grid.comment_on_issue",
            arguments: json!({"issue_id": "iss-000003", "comment": "Artwork requested from the studio."}),
            missing: Some(json!({"issue_id": "iss-nope", "comment": "x"})),
        },
        Case {
            action: "trading_grid.record_acknowledgement",
            arguments: json!({"post_id": "post-000001", "company_id": "GC00955577EF", "ack_type": "received"}),
            missing: Some(
                json!({"post_id": "post-nope", "company_id": "GC00955577EF", "ack_type": "received"}),
            ),
        },
        Case {
            action: "trading_grid.list_acknowledgements",
            arguments: json!({"post_id": "post-000001"}),
            missing: Some(json!({"post_id": "post-nope"})),
        },
        Case {
            action: "trading_grid.publish_content",
            arguments: json!({"community_id": "cmty-aurora-partners", "partner_company_ids": ["GC00933311CD"],
                              "title": "Pack shots", "body": "Approved.", "content": [image.clone()], "requires_ack": true}),
            missing: Some(
                json!({"community_id": "cmty-nope", "title": "x", "body": "y", "content": [image.clone()]}),
            ),
        },
        Case {
            action: "trading_grid.get_post",
            arguments: json!({"post_id": first_post}),
            missing: Some(json!({"post_id": "post-nope"})),
        },
        Case {
            action: "trading_grid.withdraw_document",
            arguments: json!({"post_id": second_post, "document_id": second_document, "reason": "wrong crop"}),
            missing: Some(json!({"post_id": second_post, "document_id": "doc-nope"})),
        },
        Case {
            action: "trading_grid.withdraw_post",
            arguments: json!({"post_id": first_post, "partner_company_ids": ["GC00933311CD"], "reason": "licence ended"}),
            missing: Some(json!({"post_id": "post-nope"})),
        },
        Case {
            action: "trading_grid.get_issue",
            arguments: json!({"issue_id": "iss-000003"}),
            missing: Some(json!({"issue_id": "iss-nope"})),
        },
        Case {
            action: "trading_grid.list_requests",
            arguments: json!({"status": "open", "type": "localisation"}),
            missing: None,
        },
        Case {
            action: "trading_grid.get_request",
            arguments: json!({"request_id": "req-000004"}),
            missing: Some(json!({"request_id": "req-nope"})),
        },
        Case {
            action: "trading_grid.answer_request",
            arguments: json!({"request_id": "req-000004", "message": "The fr-CA artwork is on its way."}),
            missing: Some(json!({"request_id": "req-nope", "message": "x"})),
        },
        Case {
            action: "trading_grid.close_request",
            arguments: json!({"request_id": "req-000004", "resolution": "Artwork delivered in post-000001."}),
            missing: Some(json!({"request_id": "req-nope", "resolution": "x"})),
        },
        Case {
            action: "trading_grid.create_group",
            arguments: json!({"community_id": "cmty-aurora-partners", "name": "Quebec retailers"}),
            missing: Some(json!({"community_id": "cmty-nope", "name": "x"})),
        },
        Case {
            action: "trading_grid.add_group_members",
            arguments: json!({"group_id": "grp-retailers", "company_ids": ["GC00955577EF"]}),
            missing: Some(json!({"group_id": "grp-nope", "company_ids": ["GC00955577EF"]})),
        },
        Case {
            action: "trading_grid.remove_group_members",
            arguments: json!({"group_id": "grp-distributors", "company_ids": ["GC00912345AB"]}),
            missing: Some(json!({"group_id": "grp-nope", "company_ids": ["GC00912345AB"]})),
        },
        Case {
            action: "trading_grid.put_library_entry",
            arguments: json!({"community_id": "cmty-aurora-partners", "entry_id": "otmm-a1",
                              "source": {"system": "otmm", "asset_id": "a1"}, "status": "approved",
                              "partner_company_ids": ["GC00912345AB"]}),
            missing: Some(json!({"community_id": "cmty-nope", "entry_id": "otmm-a1",
                                 "source": {"system": "otmm", "asset_id": "a1"}, "status": "approved",
                                 "partner_company_ids": []})),
        },
        Case {
            action: "trading_grid.list_library_entries",
            arguments: json!({"community_id": "cmty-aurora-partners"}),
            missing: Some(json!({"community_id": "cmty-nope"})),
        },
    ];
    run_contract(
        &simulator,
        &registry,
        &slow,
        &cases,
        &[SANDBOX_CLIENT_SECRET],
    )
    .await;
    simulator.shutdown().await;
}

#[tokio::test]
async fn partners_come_normalised_from_the_directory() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let output = invoke(
        &registry,
        "trading_grid.list_partners",
        json!({}),
        "partners",
    )
    .await
    .unwrap();
    let partners = output["partners"].as_array().unwrap();
    assert_eq!(partners.len(), 4);
    assert!(
        partners
            .iter()
            .any(|partner| partner["company_id"] == "GC00977799GH"
                && partner["status"] == "Pending Partner Approval")
    );
    let acks = invoke(
        &registry,
        "trading_grid.list_acknowledgements",
        json!({"post_id": "post-000001"}),
        "acks",
    )
    .await
    .unwrap();
    assert_eq!(acks["acknowledgements"][0]["ack_type"], "accepted");
    simulator.shutdown().await;
}

#[tokio::test]
async fn repeated_attempt_key_posts_once() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let (connector, _) = registry.action("trading_grid.post_message").unwrap();
    let arguments =
        json!({"community_id": "cmty-aurora-partners", "title": "Once", "body": "only once"});
    let first = connector
        .invoke(invocation("post_message", arguments.clone(), "post"))
        .await
        .unwrap();
    let second = connector
        .invoke(invocation("post_message", arguments, "post"))
        .await
        .unwrap();
    assert_eq!(first["post_id"], second["post_id"]);
    assert_eq!(
        simulator
            .effects()
            .iter()
            .filter(|effect| effect.action == "post.published")
            .count(),
        1
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn refused_consumer_secret_is_permanent_and_never_printed() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let wrong = "not-the-consumer-secret";
    let connector = TradingGridConnector::new(
        &config(&simulator.base_url(), Duration::from_secs(10)),
        credentials(wrong),
    )
    .unwrap();
    let error = assert_error(
        connector
            .invoke(invocation("list_communities", json!({}), "list"))
            .await,
        false,
        "unauthorized",
        "wrong secret",
    );
    assert!(error.message().contains("Invalid ApiKey"), "{error}");
    assert!(!error.to_string().contains(wrong), "{error}");
    simulator.shutdown().await;
}

#[tokio::test]
async fn validation_error_carries_the_hub_message() {
    let simulator = simulator::trading_grid::start(SimOptions::in_memory())
        .await
        .unwrap();
    let registry = registry(&simulator.base_url());
    let error = assert_error(
        invoke(
            &registry,
            "trading_grid.notify_partners",
            json!({"channel": "email", "subject": "x", "message": "y"}),
            "nobody",
        )
        .await,
        false,
        "invalid",
        "no recipients",
    );
    assert_eq!(
        error.message(),
        "recipients name nobody (TG-422-VALIDATION)"
    );
    simulator.shutdown().await;
}
