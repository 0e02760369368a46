//! The catalogue and the names validated against it, on the real binary under `gridflow
//! serve --sandbox` (every system's real connector, the registry `serve` builds), on
//! every backend: `GET /api/v1/connectors` lists the six systems and `core` with their
//! real actions and the events each system emits, to an analyst, an approver and an
//! auditor alike (never to a caller without a token); deploying refuses a misspelt wait
//! signal or trigger event of a known source with the real name, and accepts the real
//! names and names of sources gridflow has no connector for.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::{Body, Server, on_every_database};

/// The six systems and the built-in connectors, as the catalogue lists them (by name).
const CONNECTORS: [&str; 8] = [
    "canto",
    "core",
    "iconik",
    "ledger",
    "otmm",
    "smintio",
    "trading_grid",
    "vip",
];

/// Waits for a partner's acknowledgement, misspelt.
const MISSPELT: &str = r#"
id: launch-ack
triggers:
  - event: trading_grid.isue_created
steps:
  - id: announce
    action: core.noop
  - id: ack
    needs: [announce]
    wait: {signal: trading_grid.post_acknowlegded, timeout: 7d, on_timeout: continue}
"#;

/// The same, spelt right, plus a signal outside every known source.
const RIGHT: &str = r#"
id: launch-ack
triggers:
  - event: trading_grid.issue_created
    when: "${event.partner_company_id != 'GC00804444LX'}"
steps:
  - id: announce
    action: core.noop
  - id: ack
    needs: [announce]
    wait: {signal: trading_grid.post_acknowledged, timeout: 7d, on_timeout: continue}
  - id: reply
    needs: [ack]
    wait: {signal: partner_acknowledged, timeout: 1d, on_timeout: continue}
"#;

async fn token(server: &Server, user: &str, role: &str) -> anyhow::Result<String> {
    let created = server
        .post(
            "/tokens",
            Body::Json(json!({"user": user, "role": role, "groups": ["brand-managers"]})),
        )
        .await?;
    created["token"]
        .as_str()
        .map(str::to_owned)
        .context("a token")
}

/// `name → item` of a catalogue.
fn by_name(catalogue: &Value) -> anyhow::Result<BTreeMap<String, Value>> {
    let items = catalogue["items"].as_array().context("items")?;
    Ok(items
        .iter()
        .map(|item| {
            (
                item["name"].as_str().unwrap_or_default().to_owned(),
                item.clone(),
            )
        })
        .collect())
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["name"].as_str().map(str::to_owned))
        .collect()
}

async fn catalogue_and_names(database_url: &str) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let config = directory.path().join("gridflow.toml");
    std::fs::write(
        &config,
        format!(
            "[sandbox]\nstate_dir = {:?}\n",
            directory.path().join("sandbox").display().to_string()
        ),
    )?;
    let config = config.display().to_string();
    let server = Server::start_captured(database_url, &["--sandbox", "--config", &config], &[])?;

    // Without a token, or with a wrong one: 401, and nothing of the catalogue.
    for token in ["", "not-a-token"] {
        let (status, body) = server
            .call_as(token, Method::GET, "/connectors", None)
            .await?;
        ensure!(status == 401, "token {token:?}: {status} {body}");
        ensure!(body.get("items").is_none(), "{body}");
    }

    let mut catalogues = Vec::new();
    for (user, role) in [("ana", "analyst"), ("bob", "approver"), ("otto", "auditor")] {
        let token = token(&server, user, role).await?;
        let (status, body) = server
            .call_as(&token, Method::GET, "/connectors", None)
            .await?;
        ensure!(status == 200, "{role}: {status} {body}");
        catalogues.push(body);
    }
    ensure!(
        catalogues
            .iter()
            .all(|catalogue| *catalogue == catalogues[0]),
        "every role reads the same catalogue"
    );
    let items = by_name(&catalogues[0])?;
    ensure!(
        items.keys().map(String::as_str).collect::<Vec<_>>() == CONNECTORS,
        "{:?}",
        items.keys()
    );

    // Each connector's actions are the real connector's, with their schemas.
    let real = gridflow_connectors::sandbox::offline_catalog();
    for connector in real.connectors() {
        let item = &items[connector.name()];
        ensure!(
            item["description"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{item}"
        );
        let mut expected: Vec<String> = connector
            .actions()
            .iter()
            .map(|action| action.name.clone())
            .collect();
        expected.sort();
        ensure!(
            names(&item["actions"]) == expected,
            "{}: {:?}",
            connector.name(),
            names(&item["actions"])
        );
        for (served, spec) in item["actions"]
            .as_array()
            .context("actions")?
            .iter()
            .filter_map(|served| {
                let spec = connector
                    .actions()
                    .iter()
                    .find(|spec| served["name"] == spec.name.as_str())?;
                Some((served, spec))
            })
        {
            ensure!(served["arguments"] == spec.arguments, "{served}");
            ensure!(served["output"] == spec.output, "{served}");
        }
    }
    for action in [
        ("core", "noop"),
        ("otmm", "search_assets"),
        ("iconik", "update_metadata"),
        ("canto", "create_version"),
        ("smintio", "get_download_link"),
        ("vip", "publish_package"),
        ("trading_grid", "open_issue"),
    ] {
        ensure!(
            names(&items[action.0]["actions"]).contains(&action.1.to_owned()),
            "{action:?}"
        );
    }

    // The events each system emits: webhooks (iconik, Canto) and change feeds (OTMM, the
    // Trading Grid hub, Smint.io), each with a payload schema.
    let events: BTreeMap<&str, Vec<String>> = CONNECTORS
        .iter()
        .map(|name| (*name, names(&items[*name]["events"])))
        .collect();
    ensure!(
        events["trading_grid"]
            == [
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
            ],
        "{events:?}"
    );
    ensure!(events["otmm"] == ["asset_changed"], "{events:?}");
    ensure!(events["iconik"] == ["asset_changed"], "{events:?}");
    ensure!(
        events["canto"] == ["version_added", "metadata_updated"],
        "{events:?}"
    );
    ensure!(
        events["smintio"] == ["asset_changed", "licence_changed"],
        "{events:?}"
    );
    ensure!(
        events["vip"]
            == [
                "package_published",
                "delivery_delivered",
                "delivery_downloaded",
                "delivery_acknowledged",
                "delivery_failed",
                "delivery_superseded",
                "delivery_revoked",
                "package_withdrawn"
            ],
        "{events:?}"
    );
    ensure!(events["core"].is_empty(), "{events:?}");
    for item in items.values() {
        for event in item["events"].as_array().into_iter().flatten() {
            ensure!(event["payload"]["type"] == "object", "{event}");
            ensure!(
                event["description"]
                    .as_str()
                    .is_some_and(|text| !text.is_empty()),
                "{event}"
            );
        }
    }

    // Deploying checks names against the same registry.
    let (status, body) = server
        .call(
            Method::POST,
            "/definitions",
            Some(Body::Text(MISSPELT.to_owned())),
        )
        .await?;
    ensure!(status == 422, "{status} {body}");
    let details: Vec<(String, String)> = body["error"]["details"]
        .as_array()
        .context("details")?
        .iter()
        .map(|detail| {
            (
                detail["path"].as_str().unwrap_or_default().to_owned(),
                detail["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ensure!(
        details
            == [
                (
                    "steps[1].wait.signal".to_owned(),
                    "unknown signal \"trading_grid.post_acknowlegded\": trading_grid does not emit it (did you mean \"trading_grid.post_acknowledged\"?)".to_owned()
                ),
                (
                    "triggers[0].event".to_owned(),
                    "unknown event \"trading_grid.isue_created\": trading_grid does not emit it (did you mean \"trading_grid.issue_created\"?)".to_owned()
                ),
            ],
        "{details:#?}"
    );
    let deployed = server
        .post("/definitions", Body::Text(RIGHT.to_owned()))
        .await?;
    ensure!(deployed["version"] == 1, "{deployed}");
    Ok(())
}

#[tokio::test]
async fn every_role_reads_the_catalogue_of_the_real_connectors_and_deploy_checks_names_against_it()
{
    on_every_database(|url| async move { catalogue_and_names(&url).await })
        .await
        .unwrap();
}
