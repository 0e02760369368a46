//! Process 15, metadata sync (`workflows/metadata-sync.yaml` and its children
//! `metadata-sync-otmm.yaml` and `metadata-sync-iconik.yaml`, one instance per page): the
//! hub's library entries follow the DAMs' metadata (status, language, market, region,
//! expiry, partner assignment), page by page, and the hub's entry is written back into
//! each DAM.
//!
//! Seeded: OTMM's eight latest asset versions (approved, pending, rejected, restricted, an
//! expired one and two archived heritage photographs; partner assignments on three of
//! them) and iconik's five assets (one
//! assigned to two partners, one whose rights ended in 2025); the hub already lists the
//! fr-CA label exactly as OTMM describes it, and the Citrus Spritz can at its first
//! version with one partner fewer than OTMM now assigns.

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_connectors::simulator::otmm::seeded_asset_id;
use gridflow_connectors::simulator::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};
use gridflow_tests::process::Sandbox;
use gridflow_tests::{on_every_database, wait_until};

const COMMUNITY: &str = "cmty-aurora-partners";
const GREEN_MOUNTAIN: &str = "GC00912345AB";
const METRO_FRESH: &str = "GC00933311CD";
const ATLANTIC: &str = "GC00955577EF";
const HARBOR: &str = "GC00977799GH";
/// iconik's seeded asset ids without their last digit (1 to 5).
const ICONIK_ASSET: &str = "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e5f60";

fn input(page_size: u64) -> Value {
    json!({"community_id": COMMUNITY, "page_size": page_size,
           "markets": {"US": "US", "US-Northeast": "US", "US-West": "US", "CA-QC": "CA", "DE": "DE", "EU": "EU", "Global": "GLOBAL"}})
}

/// The hub's library entry `entry_id`.
fn library_entry<'a>(hub: &'a Value, entry_id: &str) -> anyhow::Result<&'a Value> {
    hub["state"]["library"]
        .get(entry_id)
        .with_context(|| format!("no library entry {entry_id}"))
}

/// The hub's library entry of OTMM asset `original` (its first version's id).
fn entry<'a>(hub: &'a Value, original: &str) -> anyhow::Result<&'a Value> {
    library_entry(hub, &format!("otmm-{original}"))
}

fn puts(hub: &Value) -> Vec<String> {
    hub["effects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|effect| effect["action"] == "library.entry_put")
        .filter_map(|effect| effect["object_id"].as_str().map(str::to_owned))
        .collect()
}

/// What a partner user sees in the hub library.
async fn partner_library(sandbox: &Sandbox, login: &str) -> anyhow::Result<Vec<Value>> {
    let (status, seen) = sandbox
        .partner(
            "trading_grid",
            Some(login),
            Method::GET,
            "/partner/v1/library",
            None,
        )
        .await?;
    ensure!(status == 200, "{login}'s library: {status} {seen}");
    Ok(seen["entries"].as_array().cloned().unwrap_or_default())
}

/// A DAM user edits an asset's metadata in OTMM (bulk edit, as the OTMM client does).
async fn edit_in_otmm(
    sandbox: &Sandbox,
    asset_id: &str,
    fields: &[(&str, &str)],
) -> anyhow::Result<()> {
    let base = format!("{}/otmmapi/v6", sandbox.simulator_url("otmm"));
    let client = reqwest::Client::new();
    let session: Value = client
        .post(format!("{base}/sessions/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", SANDBOX_USERNAME),
            ("password", SANDBOX_PASSWORD),
            ("client_id", SANDBOX_CLIENT_ID),
            ("client_secret", SANDBOX_CLIENT_SECRET),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = session["token_info"]["oauth_token"]["accessToken"]
        .as_str()
        .context("an OTMM token")?;
    let entries: Vec<Value> = fields
        .iter()
        .map(|(field, value)| json!({"metadata_field_id": field, "metadata_value": {"value": {"type": "string", "value": value}}}))
        .collect();
    let body = json!({"bulk_edit_request_param": {"bulk_edit_request": {
        "context": {"type": "com.artesia.asset.selection.AssetIdsSelectionContext", "asset_ids": [asset_id], "include_descendants": "NONE"},
        "metadata_values": {"metadata_edit_id_value_list": [{"metadata_section_id": "ARTESIA.CATEGORY.GENERAL", "field_id_value_entries": entries}]}}}});
    client
        .patch(format!("{base}/assets"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The child instances of `definition` that step `step` of instance `parent` started.
async fn children(
    sandbox: &Sandbox,
    definition: &str,
    parent: &str,
    step: &str,
) -> anyhow::Result<Vec<Value>> {
    Ok(sandbox
        .instances(definition)
        .await?
        .into_iter()
        .filter(|child| child["parent"]["instance_id"] == parent && child["parent"]["step"] == step)
        .collect())
}

/// iconik's broadcast clips (process 17's), synced like every other asset.
const BROADCAST_CLIPS: [&str; 2] = [
    "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e51701",
    "a1f0c3d2-5b6e-4f70-8a91-b2c3d4e51702",
];

async fn hub_library_follows_the_dam(url: &str) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(url).await?;
    sandbox.deploy("metadata-sync-otmm").await?;
    sandbox.deploy("metadata-sync-iconik").await?;
    sandbox.deploy("metadata-sync").await?;
    let citrus_v1 = seeded_asset_id(1);
    let citrus_v2 = seeded_asset_id(2);
    let shelf_talker = seeded_asset_id(3);
    let sell_sheet = seeded_asset_id(4);
    let logo = seeded_asset_id(5);
    let label = seeded_asset_id(6);
    let film = seeded_asset_id(7);
    let heritage = [seeded_asset_id(1601), seeded_asset_id(1602)];

    // Pages of two: OTMM's eight latest versions make four pages and iconik's seven assets
    // (five, and the two broadcast clips of process 17) four, one child instance per page.
    let id = sandbox.start_instance("metadata-sync", input(2)).await?;
    let instance = sandbox.wait_status(&id, "completed").await?;
    let output = &instance["output"];
    ensure!(
        output["otmm_pages"] == json!(4) && output["iconik_pages"] == json!(4),
        "{output}"
    );
    let mut pages = children(&sandbox, "metadata-sync-otmm", &id, "otmm_pages").await?;
    ensure!(pages.len() == 4, "{} OTMM page instances", pages.len());
    let iconik_pages = children(&sandbox, "metadata-sync-iconik", &id, "iconik_pages").await?;
    ensure!(
        iconik_pages.len() == 4,
        "{} iconik page instances",
        iconik_pages.len()
    );
    pages.extend(iconik_pages);

    let hub = sandbox.records("trading_grid")?;
    // The stale entry moved to the current version with OTMM's partner assignment.
    let citrus = entry(&hub, &citrus_v1)?;
    ensure!(
        citrus["source"]["asset_id"] == citrus_v2.as_str(),
        "{citrus}"
    );
    ensure!(
        citrus["partner_company_ids"] == json!([GREEN_MOUNTAIN, METRO_FRESH]),
        "{citrus}"
    );
    ensure!(
        citrus["revision"] == json!(2) && citrus["market"] == "US",
        "{citrus}"
    );
    ensure!(
        citrus["expires_at"] == "2027-03-31T23:59:59.999999Z",
        "{citrus}"
    );
    // The entry already in line was not written again.
    ensure!(entry(&hub, &label)?["revision"] == json!(1));
    // Every other asset got its entry: status (expired wins over approval), language,
    // market from the region, expiry, partners.
    let expired = entry(&hub, &shelf_talker)?;
    ensure!(expired["status"] == "expired", "{expired}");
    ensure!(
        expired["partner_company_ids"] == json!([METRO_FRESH, HARBOR]),
        "{expired}"
    );
    let pending = entry(&hub, &sell_sheet)?;
    ensure!(
        pending["status"] == "pending" && pending["market"] == "US",
        "{pending}"
    );
    ensure!(pending["partner_company_ids"] == json!([]), "{pending}");
    let rejected = entry(&hub, &logo)?;
    ensure!(rejected["status"] == "rejected", "{rejected}");
    ensure!(
        rejected["language"].is_null() && rejected["market"].is_null(),
        "{rejected}"
    );
    let restricted = entry(&hub, &film)?;
    ensure!(
        restricted["status"] == "restricted" && restricted["market"] == "GLOBAL",
        "{restricted}"
    );
    let mut written = puts(&hub);
    written.sort();
    let mut expected: Vec<String> = [&citrus_v1, &shelf_talker, &sell_sheet, &logo, &film]
        .into_iter()
        .chain(&heritage)
        .map(|asset| format!("otmm-{asset}"))
        .chain((1..=5).map(|n| format!("iconik-{ICONIK_ASSET}{n}")))
        .chain(BROADCAST_CLIPS.map(|clip| format!("iconik-{clip}")))
        .collect();
    expected.sort();
    ensure!(written == expected, "entries written: {written:?}");

    // iconik's assets: approval, or expired once the rights ended; its partner assignment.
    let hero = library_entry(&hub, &format!("iconik-{ICONIK_ASSET}1"))?;
    ensure!(
        hero["status"] == "approved" && hero["region"] == "US-Northeast",
        "{hero}"
    );
    ensure!(
        hero["partner_company_ids"] == json!([GREEN_MOUNTAIN, ATLANTIC]),
        "{hero}"
    );
    let holiday = library_entry(&hub, &format!("iconik-{ICONIK_ASSET}3"))?;
    ensure!(holiday["status"] == "expired", "{holiday}");
    let cold_brew = library_entry(&hub, &format!("iconik-{ICONIK_ASSET}4"))?;
    ensure!(
        cold_brew["status"] == "rejected" && cold_brew["market"] == "DE",
        "{cold_brew}"
    );

    // The DAMs now hold the hub's entry and revision of what changed, and only of that.
    let dam = sandbox.records("otmm")?;
    let metadata = |asset: &str| dam["state"]["assets"][asset]["metadata"].clone();
    ensure!(
        metadata(&citrus_v2)["CUSTOM.FIELD.HUB_ENTRY"][1]
            == format!("{COMMUNITY}/otmm-{citrus_v1}").as_str(),
        "{}",
        metadata(&citrus_v2)
    );
    ensure!(metadata(&citrus_v2)["CUSTOM.FIELD.HUB_REVISION"][1] == "2");
    ensure!(metadata(&label).get("CUSTOM.FIELD.HUB_ENTRY").is_none());
    let iconik = sandbox.records("iconik")?;
    let hero_values = iconik["state"]["metadata"][format!("{ICONIK_ASSET}1")]
        .as_object()
        .and_then(|views| views.values().next())
        .map(|view| view["metadata_values"].clone())
        .context("the hero can's iconik metadata")?;
    ensure!(
        hero_values["hub_entry"]["field_values"][0]["value"]
            == format!("{COMMUNITY}/iconik-{ICONIK_ASSET}1").as_str(),
        "{hero_values}"
    );

    // Partners read the synced metadata: Metro Fresh sees the expired talker and the can.
    let metro = partner_library(&sandbox, "media@metrofresh.example").await?;
    let statuses: Vec<(String, String)> = metro
        .iter()
        .map(|e| {
            (
                e["title"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ensure!(
        statuses
            == [
                (
                    "winter-berry-750ml-shelf-talker.pdf".to_owned(),
                    "expired".to_owned()
                ),
                (
                    "citrus-spritz-can-12oz.png".to_owned(),
                    "approved".to_owned()
                )
            ],
        "{statuses:?}"
    );
    sandbox.assert_replay(&id).await?;
    for page in &pages {
        sandbox
            .assert_replay(page["id"].as_str().context("page id")?)
            .await?;
    }

    // A DAM user approves the Mango Fizz sell sheet for Metro Fresh; the next hourly run
    // writes that one entry and nothing else.
    edit_in_otmm(
        &sandbox,
        &sell_sheet,
        &[
            ("CUSTOM.FIELD.STATUS", "Approved"),
            ("CUSTOM.FIELD.PARTNERS", METRO_FRESH),
        ],
    )
    .await?;
    sandbox.advance("1h").await?;
    let hourly = wait_until(Duration::from_secs(60), "the hourly run", || async {
        let runs = sandbox.instances("metadata-sync").await?;
        Ok(runs
            .into_iter()
            .find(|run| run["id"] != id.as_str() && run["status"] == "completed"))
    })
    .await?;
    let hourly_id = hourly["id"].as_str().context("hourly id")?;
    // The schedule ran with the analyst's table, the one this test's first run used.
    ensure!(
        hourly["input"]["markets"] == input(2)["markets"],
        "{}",
        hourly["input"]
    );
    let hub = sandbox.records("trading_grid")?;
    let written_again: Vec<String> = puts(&hub).split_off(written.len());
    ensure!(
        written_again == [format!("otmm-{sell_sheet}")],
        "entries written by the hourly run: {written_again:?}"
    );
    let approved = entry(&hub, &sell_sheet)?;
    ensure!(
        approved["status"] == "approved" && approved["revision"] == json!(2),
        "{approved}"
    );
    ensure!(
        approved["partner_company_ids"] == json!([METRO_FRESH]),
        "{approved}"
    );
    let metro = partner_library(&sandbox, "media@metrofresh.example").await?;
    ensure!(
        metro
            .iter()
            .any(|e| e["title"] == "mango-fizz-sell-sheet.pdf"),
        "{metro:?}"
    );
    sandbox.assert_replay(hourly_id).await?;
    sandbox.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_library_follows_dam_metadata_page_by_page_and_only_changes_are_written() {
    on_every_database(|url| async move { hub_library_follows_the_dam(&url).await })
        .await
        .unwrap();
}
