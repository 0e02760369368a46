//! Process 4, the campaign kit per partner and market (`workflows/campaign-kit.yaml`, its
//! children `campaign-kit-partner` and `campaign-kit-reminder`), end to end under
//! `serve --sandbox`: ana starts the Summer Refresh kit for three partners in two markets;
//! one child per partner asks the brand managers to approve that partner's files (bound to
//! their digests); bob approves the US kit of Green Mountain and the CA kit of Atlantic,
//! bea holds Metro Fresh's. Atlantic acknowledges at once; Green Mountain stays silent, is
//! reminded a day later and then acknowledges. Asserted: what each partner received in the
//! hub (which files, which digests, the reminder, the hold notice with bea's reason), the
//! ledger (delivered and acknowledged per partner, nothing for Metro Fresh), the campaign
//! recorded on the assets' latest versions in OTMM, and that every instance of the tree
//! (kit, three partners, three reminder rounds) replays to its stored state. A partner
//! that never confirms is reminded three times, one day apart, and reported silent.

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;
use gridflow_tests::process_campaign::{
    acknowledge, assert_replays, children, ledger_rows, notifications_to, otmm_field, posts_to,
    state,
};

const GREEN_MOUNTAIN: &str = "GC00912345AB";
const METRO_FRESH: &str = "GC00933311CD";
const ATLANTIC: &str = "GC00955577EF";
/// Citrus Spritz 12oz can, as OTMM names it across versions; version 2 is the latest.
const CAN: &str = "f9de6bb3e5c869aaba88bd7d5aded3f91c68c34b";
/// The can's latest version in OTMM.
const CAN_LATEST: &str = "9df3f341f9ddbf5d15998eb65c6c7363936490f9";
/// Citrus Spritz fr-CA label (one version).
const LABEL_FR_CA: &str = "9ed42740029b6e29a4b2cc5caceaf2b5aa27c9c0";
const CAMPAIGN: &str = "Summer Refresh 2027";
const HOLD_REASON: &str = "Metro Fresh gets its kit with the new price list";

fn kit_input() -> Value {
    json!({
        "campaign": CAMPAIGN,
        "instructions": "Place the Citrus Spritz shelf visuals in every store by June 1.",
        "deadline": "2027-05-15",
        "community_id": "cmty-aurora-partners",
        "assets": [
            {"asset_id": CAN, "markets": ["US", "CA"]},
            {"asset_id": LABEL_FR_CA, "markets": ["CA"]},
        ],
        "partners": [
            {"company_id": GREEN_MOUNTAIN, "name": "Green Mountain Beverage", "market": "US"},
            {"company_id": METRO_FRESH, "name": "Metro Fresh Markets", "market": "US"},
            {"company_id": ATLANTIC, "name": "Atlantic Wine & Spirits", "market": "CA"},
        ],
    })
}

/// The asset ids and digests an approval is bound to.
fn bound(approval: &Value) -> Vec<(String, String)> {
    approval["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|artifact| {
            (
                artifact["asset_id"].as_str().unwrap_or_default().to_owned(),
                artifact["sha256"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The `(file name, digest)` of a hub post's documents.
fn documents(post: &Value) -> Vec<(String, String)> {
    post["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|document| {
            (
                document["file_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                document["sha256"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn post_of(sandbox: &Sandbox, child: &str) -> anyhow::Result<String> {
    let view = sandbox.wait_step(child, "publish", "succeeded").await?;
    view["steps"]["publish"]["output"]["post_id"]
        .as_str()
        .map(str::to_owned)
        .context("publish gave no post id")
}

async fn campaign_kit(sandbox: &Sandbox) -> anyhow::Result<()> {
    for definition in [
        "campaign-kit-reminder",
        "campaign-kit-partner",
        "campaign-kit",
    ] {
        sandbox.deploy(definition).await?;
    }
    let kit = sandbox.start_instance("campaign-kit", kit_input()).await?;
    let partners = children(sandbox, &kit, "partners", 3).await?;
    let [green_mountain, metro_fresh, atlantic] = partners.as_slice() else {
        anyhow::bail!("{partners:?}");
    };

    // Each partner's kit holds its market's files, and its approval is bound to them.
    let approval = sandbox.approval("bob", green_mountain, "approve").await?;
    let us_kit = bound(&approval);
    ensure!(us_kit.len() == 1 && us_kit[0].0 == CAN, "{approval}");
    sandbox
        .decide(
            "bob",
            &approval,
            "approve",
            json!({}),
            Some("US kit checked"),
        )
        .await?;
    let approval = sandbox.approval("bob", atlantic, "approve").await?;
    let ca_kit = bound(&approval);
    ensure!(ca_kit.len() == 2, "{approval}");
    ensure!(
        ca_kit.iter().any(|(asset, _)| asset == LABEL_FR_CA),
        "{approval}"
    );
    sandbox
        .decide(
            "bob",
            &approval,
            "approve",
            json!({}),
            Some("CA kit checked"),
        )
        .await?;
    let approval = sandbox.approval("bea", metro_fresh, "approve").await?;
    sandbox
        .decide("bea", &approval, "reject", json!({}), Some(HOLD_REASON))
        .await?;
    sandbox.wait_status(metro_fresh, "completed").await?;

    // Atlantic acknowledges in the first round.
    let atlantic_post = post_of(sandbox, atlantic).await?;
    let atlantic_rounds = children(sandbox, atlantic, "follow_up", 1).await?;
    sandbox
        .wait_step(&atlantic_rounds[0], "confirmation", "waiting")
        .await?;
    acknowledge(
        sandbox,
        &atlantic_post,
        "buyer@atlanticws.example",
        "accepted",
    )
    .await?;
    sandbox.wait_status(atlantic, "completed").await?;

    // Green Mountain stays silent a day, is reminded, then acknowledges.
    let green_post = post_of(sandbox, green_mountain).await?;
    let first = children(sandbox, green_mountain, "follow_up", 1).await?;
    sandbox
        .wait_step(&first[0], "confirmation", "waiting")
        .await?;
    sandbox.advance("25h").await?;
    sandbox.wait_status(&first[0], "completed").await?;
    let green_rounds = children(sandbox, green_mountain, "follow_up", 2).await?;
    sandbox
        .wait_step(&green_rounds[1], "confirmation", "waiting")
        .await?;
    acknowledge(
        sandbox,
        &green_post,
        "buyer@greenmountain.example",
        "received",
    )
    .await?;

    let done = sandbox.wait_status(&kit, "completed").await?;
    let output = &done["output"];
    ensure!(
        output["confirmed"] == json!([GREEN_MOUNTAIN, ATLANTIC]),
        "{output}"
    );
    ensure!(output["on_hold"] == json!([METRO_FRESH]), "{output}");
    ensure!(output["silent"] == json!([]), "{output}");
    ensure!(output["partners"][0]["reminders"] == 1, "{output}");
    ensure!(output["partners"][2]["reminders"] == 0, "{output}");

    assert_hub(sandbox, &green_post, &atlantic_post, &us_kit, &ca_kit)?;
    assert_ledger(sandbox, green_mountain, metro_fresh, atlantic, &us_kit).await?;

    // OTMM holds the campaign on the latest version of each asset.
    let otmm = state(sandbox, "otmm")?;
    ensure!(
        otmm_field(&otmm, CAN_LATEST, "CUSTOM.FIELD.CAMPAIGN").as_deref() == Some(CAMPAIGN),
        "{}",
        otmm["assets"][CAN_LATEST]
    );
    ensure!(
        otmm_field(&otmm, CAN_LATEST, "CUSTOM.FIELD.CAMPAIGN_STATUS").as_deref()
            == Some("partners sent 2, confirmed 2")
    );
    ensure!(
        otmm_field(&otmm, LABEL_FR_CA, "CUSTOM.FIELD.CAMPAIGN_STATUS").as_deref()
            == Some("partners sent 1, confirmed 1")
    );
    ensure!(otmm_field(&otmm, CAN, "CUSTOM.FIELD.CAMPAIGN").is_none());

    let mut tree = vec![kit.clone()];
    tree.extend(partners.iter().cloned());
    tree.extend(atlantic_rounds);
    tree.extend(green_rounds);
    ensure!(tree.len() == 7, "{tree:?}");
    assert_replays(sandbox, &tree).await
}

/// What each partner holds in the hub: Green Mountain the US kit (the can) and one
/// reminder, Atlantic the CA kit (the can and the fr-CA label) and no reminder, Metro Fresh
/// no post but the hold notice with bea's reason.
fn assert_hub(
    sandbox: &Sandbox,
    green_post: &str,
    atlantic_post: &str,
    us_kit: &[(String, String)],
    ca_kit: &[(String, String)],
) -> anyhow::Result<()> {
    let hub = state(sandbox, "trading_grid")?;
    let post = &hub["posts"][green_post];
    ensure!(post["recipients"] == json!([GREEN_MOUNTAIN]), "{post}");
    ensure!(post["requires_ack"] == true, "{post}");
    let files = documents(post);
    ensure!(
        files == [("citrus-spritz-can-12oz.png".to_owned(), us_kit[0].1.clone())],
        "{files:?}"
    );
    let post = &hub["posts"][atlantic_post];
    ensure!(post["recipients"] == json!([ATLANTIC]), "{post}");
    let mut received: Vec<String> = documents(post).into_iter().map(|(_, sha)| sha).collect();
    let mut approved: Vec<String> = ca_kit.iter().map(|(_, sha)| sha.clone()).collect();
    received.sort();
    approved.sort();
    ensure!(received == approved, "{received:?} {approved:?}");
    ensure!(
        posts_to(&hub, METRO_FRESH).is_empty(),
        "Metro Fresh got a post"
    );

    let reminders = notifications_to(&hub, &[GREEN_MOUNTAIN]);
    ensure!(reminders.len() == 1, "{reminders:?}");
    ensure!(reminders[0]["post_id"] == green_post, "{reminders:?}");
    ensure!(notifications_to(&hub, &[ATLANTIC]).is_empty());
    let hold = notifications_to(&hub, &[METRO_FRESH]);
    ensure!(hold.len() == 1, "{hold:?}");
    ensure!(
        hold[0]["message"]
            .as_str()
            .is_some_and(|message| message.contains(HOLD_REASON)),
        "{hold:?}"
    );
    for (post, company) in [(green_post, GREEN_MOUNTAIN), (atlantic_post, ATLANTIC)] {
        let acknowledged = hub["acknowledgements"][post]
            .as_array()
            .is_some_and(|acks| acks.iter().any(|ack| ack["company_id"] == company));
        ensure!(acknowledged, "{post} not acknowledged by {company}");
    }
    Ok(())
}

/// The ledger: the exact version delivered to each partner, acknowledged; nothing held.
async fn assert_ledger(
    sandbox: &Sandbox,
    green_mountain: &str,
    metro_fresh: &str,
    atlantic: &str,
    us_kit: &[(String, String)],
) -> anyhow::Result<()> {
    let rows = ledger_rows(sandbox, GREEN_MOUNTAIN, green_mountain, 1, "acknowledged").await?;
    ensure!(rows[0]["asset_id"] == CAN, "{rows:?}");
    ensure!(rows[0]["version"] == "2", "{rows:?}");
    ensure!(rows[0]["sha256"] == us_kit[0].1.as_str(), "{rows:?}");
    ledger_rows(sandbox, ATLANTIC, atlantic, 2, "acknowledged").await?;
    let held = sandbox.ledger(&format!("?partner={METRO_FRESH}")).await?;
    ensure!(
        held.iter().all(|row| row["instance_id"] != metro_fresh),
        "{held:?}"
    );
    let view = sandbox.instance(metro_fresh).await?;
    ensure!(view["output"]["decision"] == "rejected", "{view}");
    Ok(())
}

/// A partner that never acknowledges: reminded daily three times, then reported silent;
/// the kit it holds stays delivered but unacknowledged in the ledger.
async fn silent_partner(sandbox: &Sandbox) -> anyhow::Result<()> {
    for definition in [
        "campaign-kit-reminder",
        "campaign-kit-partner",
        "campaign-kit",
    ] {
        sandbox.deploy(definition).await?;
    }
    let mut input = kit_input();
    input["partners"] = json!([
        {"company_id": GREEN_MOUNTAIN, "name": "Green Mountain Beverage", "market": "US"},
    ]);
    let kit = sandbox.start_instance("campaign-kit", input).await?;
    let partner = children(sandbox, &kit, "partners", 1).await?.remove(0);
    let approval = sandbox.approval("bea", &partner, "approve").await?;
    sandbox
        .decide("bea", &approval, "approve", json!({}), None)
        .await?;
    let post = post_of(sandbox, &partner).await?;
    let mut rounds = Vec::new();
    for round in 1..=4 {
        rounds = children(sandbox, &partner, "follow_up", round).await?;
        sandbox
            .wait_step(&rounds[round - 1], "confirmation", "waiting")
            .await?;
        sandbox.advance("25h").await?;
    }
    let done = sandbox.wait_status(&kit, "completed").await?;
    let output = &done["output"];
    ensure!(output["silent"] == json!([GREEN_MOUNTAIN]), "{output}");
    ensure!(output["confirmed"] == json!([]), "{output}");
    ensure!(output["partners"][0]["reminders"] == 3, "{output}");

    let hub = state(sandbox, "trading_grid")?;
    let reminders = notifications_to(&hub, &[GREEN_MOUNTAIN]);
    ensure!(reminders.len() == 3, "{reminders:?}");
    ensure!(
        reminders
            .iter()
            .all(|reminder| reminder["post_id"] == post.as_str()),
        "{reminders:?}"
    );
    ledger_rows(sandbox, GREEN_MOUNTAIN, &partner, 1, "delivered").await?;
    let otmm = state(sandbox, "otmm")?;
    ensure!(
        otmm_field(&otmm, CAN_LATEST, "CUSTOM.FIELD.CAMPAIGN_STATUS").as_deref()
            == Some("partners sent 1, confirmed 0")
    );
    let mut tree = vec![kit, partner];
    tree.extend(rounds);
    assert_replays(sandbox, &tree).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partner_gets_its_markets_kit_and_is_reminded_until_it_confirms() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let outcome = campaign_kit(&sandbox).await;
        let stopped = sandbox.stop().await;
        outcome.and(stopped)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_never_confirms_is_reminded_three_times_then_reported_silent() {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        let outcome = silent_partner(&sandbox).await;
        let stopped = sandbox.stop().await;
        outcome.and(stopped)
    })
    .await
    .unwrap();
}
