//! Process 7, segmented libraries (`workflows/segmented-libraries.yaml` and its child
//! `segmented-libraries-segment.yaml`): the hub's segment groups follow OTMM's approved
//! content and VIP's recipient segments.
//!
//! Seeded: OTMM holds approved, unexpired content for US-Northeast and CA-QC (none for DE);
//! VIP gives Green Mountain (US-Northeast, Spring Reset), Metro Fresh (US-Northeast, Key
//! Accounts), Atlantic Wine & Spirits (CA-QC, Spring Reset) and Harbor Liquors
//! (US-Northeast, Key Accounts), all Aurora Springs; Harbor's hub partnership is still
//! pending, so it is let into no segment. The hub already has a "Region US-Northeast"
//! group holding Green Mountain and Atlantic Wine & Spirits.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use gridflow_tests::process::Sandbox;
use gridflow_tests::{on_every_database, wait_until};

const COMMUNITY: &str = "cmty-aurora-partners";
const GREEN_MOUNTAIN: &str = "GC00912345AB";
const METRO_FRESH: &str = "GC00933311CD";
const ATLANTIC: &str = "GC00955577EF";
const HARBOR: &str = "GC00977799GH";

/// The access rules of the definition's nightly trigger.
fn rules() -> Value {
    json!([
        {"group": "Region US-Northeast", "dimension": "region", "value": "US-Northeast"},
        {"group": "Region CA-QC", "dimension": "region", "value": "CA-QC"},
        {"group": "Region DE", "dimension": "region", "value": "DE"},
        {"group": "Brand Aurora Springs", "dimension": "brand", "value": "Aurora Springs"},
        {"group": "Programme Key Accounts", "dimension": "programme", "value": "Key Accounts"},
    ])
}

/// The hub's group named `name`, from the simulator's records.
fn group<'a>(hub: &'a Value, name: &str) -> Option<&'a Value> {
    hub["state"]["groups"]
        .as_object()?
        .values()
        .find(|group| group["name"] == name)
}

fn members(hub: &Value, name: &str) -> anyhow::Result<Vec<String>> {
    let group = group(hub, name).with_context(|| format!("the hub has no group {name:?}"))?;
    Ok(group["member_company_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect())
}

/// How many of the hub's effects are group changes of kind `action`.
fn group_effects(hub: &Value, action: &str) -> usize {
    hub["effects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|effect| effect["action"] == action)
        .count()
}

async fn deploy(sandbox: &Sandbox) -> anyhow::Result<()> {
    sandbox.deploy("segmented-libraries-segment").await?;
    sandbox.deploy("segmented-libraries").await?;
    Ok(())
}

async fn segments_follow_dam_and_vip_metadata(url: &str) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(url).await?;
    deploy(&sandbox).await?;
    let id = sandbox
        .start_instance(
            "segmented-libraries",
            json!({"community_id": COMMUNITY, "rules": rules()}),
        )
        .await?;
    let instance = sandbox.wait_status(&id, "completed").await?;

    let hub = sandbox.records("trading_grid")?;
    // The existing region group keeps its id: Metro Fresh joins, Atlantic (CA-QC) leaves.
    let northeast = group(&hub, "Region US-Northeast").context("US-Northeast group")?;
    ensure!(
        northeast["group_id"] == "grp-region-us-northeast",
        "{northeast}"
    );
    ensure!(members(&hub, "Region US-Northeast")? == [GREEN_MOUNTAIN, METRO_FRESH]);
    // New segments are created with exactly the partners entitled to them.
    ensure!(members(&hub, "Region CA-QC")? == [ATLANTIC]);
    ensure!(members(&hub, "Brand Aurora Springs")? == [GREEN_MOUNTAIN, METRO_FRESH, ATLANTIC]);
    ensure!(members(&hub, "Programme Key Accounts")? == [METRO_FRESH]);
    // No approved DE content in the DAM: that segment stays closed.
    ensure!(group(&hub, "Region DE").is_none(), "a DE group was created");
    // The pending partner is in no segment (the access rule), whatever VIP says.
    let groups = hub["state"]["groups"].as_object().context("groups")?;
    ensure!(
        groups
            .values()
            .filter(|group| group["name"] != "Retailers (EN/FR)")
            .all(|group| !group["member_company_ids"].to_string().contains(HARBOR)),
        "Harbor Liquors was let into a segment: {groups:?}"
    );
    ensure!(group_effects(&hub, "group.created") == 3);
    ensure!(group_effects(&hub, "group.members_added") == 4);
    ensure!(group_effects(&hub, "group.members_removed") == 1);

    // The run's output says, per open segment, what changed.
    let segments = instance["output"]["segments"]
        .as_array()
        .context("segments output")?;
    let names: Vec<&str> = segments
        .iter()
        .filter_map(|s| s["group"].as_str())
        .collect();
    ensure!(
        names
            == [
                "Region US-Northeast",
                "Region CA-QC",
                "Brand Aurora Springs",
                "Programme Key Accounts"
            ],
        "{names:?}"
    );
    ensure!(
        segments[0]["added"] == json!([METRO_FRESH]),
        "{}",
        segments[0]
    );
    ensure!(
        segments[0]["removed"] == json!([ATLANTIC]),
        "{}",
        segments[0]
    );
    ensure!(segments[1]["created"] == json!(true), "{}", segments[1]);
    sandbox.assert_replay(&id).await?;
    for child in sandbox.instances("segmented-libraries-segment").await? {
        let child_id = child["id"].as_str().context("child id")?;
        sandbox.assert_replay(child_id).await?;
    }

    // The next night the schedule runs it again: everything is in line, nothing changes.
    let before = hub["effects"].as_array().map_or(0, Vec::len);
    sandbox.advance("1d").await?;
    let nightly = wait_until(Duration::from_secs(60), "the nightly run", || async {
        let runs = sandbox.instances("segmented-libraries").await?;
        Ok(runs
            .into_iter()
            .find(|run| run["id"] != id.as_str() && run["status"] == "completed"))
    })
    .await?;
    let nightly_id = nightly["id"].as_str().context("nightly id")?;
    let view = sandbox.wait_status(nightly_id, "completed").await?;
    ensure!(
        view["input"]["rules"] == rules(),
        "the trigger's rules: {}",
        view["input"]
    );
    let after = sandbox.records("trading_grid")?;
    ensure!(
        after["effects"].as_array().map_or(0, Vec::len) == before,
        "a run with nothing to change changed the hub"
    );
    sandbox.assert_replay(nightly_id).await?;
    sandbox.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_groups_follow_dam_content_and_vip_segments_and_the_nightly_run_is_idempotent() {
    on_every_database(|url| async move { segments_follow_dam_and_vip_metadata(&url).await })
        .await
        .unwrap();
}
