//! Process 5, external campaign review (`workflows/campaign-review.yaml`), under the real
//! `serve --sandbox`: the analyst sends OTMM's Mango Fizz sell sheet (in review) and a
//! licensed Smint.io stock photo to partners; a brand manager approves exactly these files
//! with the partners' instructions; each partner gets its own review post on the hub and
//! acknowledges it (`accepted`: approved, `rejected`: changes requested) with comments; a
//! brand manager signs off; the verdicts are written back to OTMM and every partner is
//! answered. Asserted where it lands: the hub's and OTMM's simulator records, the
//! distribution ledger, and history replayed.

use reqwest::Method;
use serde_json::{Value, json};

use anyhow::{Context, ensure};
use gridflow_tests::on_every_database;
use gridflow_tests::process::{DEADLINE, Sandbox};
use gridflow_tests::wait_until;

/// OTMM's Mango Fizz 16oz sell sheet, seeded "In Review".
const SELL_SHEET: &str = "57a8c2a5c1f612b34bbfe920510b32561e78be99";
/// OTMM's approved fr-CA Citrus Spritz label: the review the brand manager stops.
const FR_CA_LABEL: &str = "9ed42740029b6e29a4b2cc5caceaf2b5aa27c9c0";
/// Smint.io's licensed "Picnic with lemonade" (licence purchase transaction).
const PICNIC: &str = "5e0c1a2b-3c4d-4e5f-8a6b-7c8d9e0f0001";

/// A hub partner: company id, name, partner user.
struct Partner {
    company: &'static str,
    name: &'static str,
    login: &'static str,
}

const GREEN_MOUNTAIN: Partner = Partner {
    company: "GC00912345AB",
    name: "Green Mountain Beverage",
    login: "buyer@greenmountain.example",
};
const METRO_FRESH: Partner = Partner {
    company: "GC00933311CD",
    name: "Metro Fresh Markets",
    login: "media@metrofresh.example",
};
const ATLANTIC: Partner = Partner {
    company: "GC00955577EF",
    name: "Atlantic Wine & Spirits",
    login: "buyer@atlanticws.example",
};

const CAMPAIGN: &str = "Mango Fizz summer launch";
const INSTRUCTIONS: &str = "Check the sell sheet and the picnic key visual for your stores.";

fn input(assets: &[&str], partners: &[&Partner]) -> Value {
    json!({
        "campaign": CAMPAIGN,
        "assets": assets,
        "licensed": [PICNIC],
        "partners": partners.iter().map(|partner| json!({"company_id": partner.company, "name": partner.name})).collect::<Vec<_>>(),
    })
}

/// A brand manager approves sending the files out; answers the bound artifacts.
async fn send_out(sandbox: &Sandbox, id: &str) -> anyhow::Result<Vec<Value>> {
    let approval = sandbox.approval("bob", id, "send_out").await?;
    let artifacts = approval["artifacts"]
        .as_array()
        .cloned()
        .with_context(|| format!("the send-out approval binds no files: {approval:#}"))?;
    let systems: Vec<&str> = artifacts
        .iter()
        .filter_map(|artifact| artifact["system"].as_str())
        .collect();
    ensure!(systems == ["otmm", "smintio"], "{artifacts:#?}");
    sandbox
        .decide(
            "bob",
            &approval,
            "approve",
            json!({"instructions": INSTRUCTIONS}),
            Some("ok to share"),
        )
        .await?;
    Ok(artifacts)
}

/// The review posts, one per partner in input order, once the share step succeeded.
async fn review_posts(sandbox: &Sandbox, id: &str) -> anyhow::Result<Vec<String>> {
    let instance = sandbox.wait_step(id, "share", "succeeded").await?;
    instance["steps"]["share"]["output"]
        .as_array()
        .context("share has no output list")?
        .iter()
        .map(|post| {
            post["post_id"]
                .as_str()
                .map(str::to_owned)
                .context("a share without post")
        })
        .collect()
}

/// What `partner` sees of `post` on the hub.
async fn read_post(
    sandbox: &Sandbox,
    partner: &Partner,
    post: &str,
) -> anyhow::Result<(u16, Value)> {
    sandbox
        .partner(
            "trading_grid",
            Some(partner.login),
            Method::GET,
            &format!("/partner/v1/posts/{post}"),
            None,
        )
        .await
}

/// `partner` reviews `post`: comments, then acknowledges with `ack_type`.
async fn review(
    sandbox: &Sandbox,
    partner: &Partner,
    post: &str,
    comment: &str,
    ack_type: &str,
    ack_comment: &str,
) -> anyhow::Result<()> {
    let (status, answer) = sandbox
        .partner(
            "trading_grid",
            Some(partner.login),
            Method::POST,
            &format!("/partner/v1/posts/{post}/comments"),
            Some(json!({"body": comment})),
        )
        .await?;
    ensure!(
        status == 201,
        "{} commenting: {status} {answer}",
        partner.name
    );
    acknowledge(sandbox, partner, post, ack_type, ack_comment).await
}

async fn acknowledge(
    sandbox: &Sandbox,
    partner: &Partner,
    post: &str,
    ack_type: &str,
    comment: &str,
) -> anyhow::Result<()> {
    let (status, answer) = sandbox
        .partner(
            "trading_grid",
            Some(partner.login),
            Method::POST,
            &format!("/partner/v1/posts/{post}/acknowledgements"),
            Some(json!({"ack_type": ack_type, "comment": comment})),
        )
        .await?;
    ensure!(
        status == 201,
        "{} acknowledging: {status} {answer}",
        partner.name
    );
    Ok(())
}

/// Whether the wait item of `index` in step `feedback` succeeded (its verdict arrived).
async fn feedback_received(sandbox: &Sandbox, id: &str, index: usize) -> anyhow::Result<bool> {
    Ok(sandbox.history(id).await?.iter().any(|event| {
        event["type"] == "step_succeeded"
            && event["data"]["step"] == "feedback"
            && event["data"]["item"] == index
    }))
}

/// Waits until the verdict of the partner of `index` arrived.
async fn wait_feedback(sandbox: &Sandbox, id: &str, index: usize) -> anyhow::Result<()> {
    wait_until(DEADLINE, &format!("feedback {index} of {id}"), || async {
        Ok(feedback_received(sandbox, id, index).await?.then_some(()))
    })
    .await
}

/// OTMM's current value of `field` on `asset`.
fn otmm_field(otmm: &Value, asset: &str, field: &str) -> Option<String> {
    otmm["state"]["assets"][asset]["metadata"][field][1]
        .as_str()
        .map(str::to_owned)
}

/// The hub's notifications to `company`.
fn notifications_to(hub: &Value, company: &str) -> Vec<Value> {
    hub["state"]["notifications"]
        .as_object()
        .into_iter()
        .flat_map(|all| all.values())
        .filter(|notification| {
            notification["recipients"]["company_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|id| id == company))
        })
        .cloned()
        .collect()
}

/// Waits until the ledger holds `count` deliveries to `partner` from `id`, all in `status`.
async fn wait_ledger(
    sandbox: &Sandbox,
    id: &str,
    partner: &str,
    count: usize,
    status: &str,
) -> anyhow::Result<Vec<Value>> {
    wait_until(
        DEADLINE,
        &format!("{count} {status} deliveries to {partner}"),
        || async {
            let rows: Vec<Value> = sandbox
                .ledger(&format!("?partner={partner}"))
                .await?
                .into_iter()
                .filter(|row| row["instance_id"] == id)
                .collect();
            Ok(
                (rows.len() == count && rows.iter().all(|row| row["status"] == status))
                    .then_some(rows),
            )
        },
    )
    .await
}

#[tokio::test]
async fn every_partner_reviews_on_the_hub_and_otmm_records_the_released_campaign()
-> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy("campaign-review").await?;
        let id = sandbox
            .start_instance(
                "campaign-review",
                input(&[SELL_SHEET], &[&GREEN_MOUNTAIN, &METRO_FRESH]),
            )
            .await?;
        let artifacts = send_out(&sandbox, &id).await?;
        let posts = review_posts(&sandbox, &id).await?;
        ensure!(posts.len() == 2 && posts[0] != posts[1], "{posts:?}");

        // Each partner sees its own post with exactly the approved files, and not the other's.
        for (partner, post) in [(&GREEN_MOUNTAIN, &posts[0]), (&METRO_FRESH, &posts[1])] {
            let (status, seen) = read_post(&sandbox, partner, post).await?;
            ensure!(status == 200, "{}: {status} {seen}", partner.name);
            let digests: Vec<&Value> = seen["documents"]
                .as_array()
                .context("no documents")?
                .iter()
                .map(|document| &document["sha256"])
                .collect();
            let approved: Vec<&Value> = artifacts
                .iter()
                .map(|artifact| &artifact["sha256"])
                .collect();
            ensure!(
                digests == approved,
                "{}: {digests:?} != {approved:?}",
                partner.name
            );
            ensure!(
                seen["body"].as_str().is_some_and(
                    |body| body.contains(INSTRUCTIONS) && body.contains("Picnic with lemonade")
                ),
                "{seen:#}"
            );
        }
        let (status, _) = read_post(&sandbox, &METRO_FRESH, &posts[0]).await?;
        ensure!(
            status == 404,
            "Metro Fresh reads Green Mountain's review post: {status}"
        );

        // Green Mountain downloads the sell sheet, comments and approves; Metro Fresh approves.
        let document =
            read_post(&sandbox, &GREEN_MOUNTAIN, &posts[0]).await?.1["documents"][0]["document_id"]
                .as_str()
                .context("no document id")?
                .to_owned();
        let (status, _) = sandbox
            .partner(
                "trading_grid",
                Some(GREEN_MOUNTAIN.login),
                Method::GET,
                &format!("/partner/v1/posts/{}/documents/{document}", posts[0]),
                None,
            )
            .await?;
        ensure!(status == 200, "download: {status}");
        review(
            &sandbox,
            &GREEN_MOUNTAIN,
            &posts[0],
            "Love the picnic visual; keep the price badge.",
            "accepted",
            "Approved for our stores",
        )
        .await?;
        acknowledge(&sandbox, &METRO_FRESH, &posts[1], "accepted", "Fine for us").await?;

        let signoff = sandbox.approval("bea", &id, "signoff").await?;
        ensure!(
            signoff["title"].as_str().is_some_and(
                |title| title.contains("2 of 2 partners approved, 0 asked for changes")
            ),
            "{signoff:#}"
        );
        sandbox
            .decide("bea", &signoff, "approve", Value::Null, Some("release it"))
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        let output = &instance["output"];
        ensure!(
            output["sent"] == true && output["released"] == true,
            "{output:#}"
        );
        let verdicts: Vec<&Value> = output["partners"]
            .as_array()
            .context("no partners")?
            .iter()
            .map(|partner| &partner["verdict"])
            .collect();
        ensure!(
            verdicts == [&json!("approved"), &json!("approved")],
            "{output:#}"
        );
        ensure!(
            output["partners"][0]["comments"]
                == json!(["Love the picnic visual; keep the price badge."]),
            "{output:#}"
        );

        // OTMM holds the outcome and each partner's verdict.
        let otmm = sandbox.records("otmm")?;
        ensure!(
            otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.STATUS").as_deref() == Some("Approved"),
            "{:#}",
            otmm["state"]["assets"][SELL_SHEET]
        );
        ensure!(
            otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.REVIEW_CAMPAIGN").as_deref()
                == Some(CAMPAIGN)
        );
        ensure!(
            otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.REVIEW_SIGNOFF").as_deref()
                == Some("approved by bea")
        );
        let review = otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.PARTNER_REVIEW")
            .context("no partner review in OTMM")?;
        for expected in [
            "Green Mountain Beverage: approved - Approved for our stores",
            "Metro Fresh Markets: approved - Fine for us",
        ] {
            ensure!(review.contains(expected), "{review}");
        }

        // The hub: one post per partner, each answered, none withdrawn.
        let hub = sandbox.records("trading_grid")?;
        for (partner, post) in [(&GREEN_MOUNTAIN, &posts[0]), (&METRO_FRESH, &posts[1])] {
            ensure!(
                hub["state"]["posts"][post]["recipients"] == json!([partner.company]),
                "{:#}",
                hub["state"]["posts"][post]
            );
            let answers = notifications_to(&hub, partner.company);
            ensure!(answers.len() == 1, "{}: {answers:#?}", partner.name);
            ensure!(
                answers[0]["post_id"] == json!(post)
                    && answers[0]["subject"] == json!(format!("Review of {CAMPAIGN} closed"))
            );
            let message = answers[0]["message"].as_str().unwrap_or_default();
            ensure!(
                message.contains("recorded your verdict, approved")
                    && message.contains("approved and goes live"),
                "{message}"
            );
        }

        // The ledger: both files to both partners, acknowledged, at the approved digests.
        for partner in [&GREEN_MOUNTAIN, &METRO_FRESH] {
            let rows = wait_ledger(&sandbox, &id, partner.company, 2, "acknowledged").await?;
            for artifact in &artifacts {
                ensure!(
                    rows.iter()
                        .any(|row| row["asset_id"] == artifact["asset_id"]
                            && row["sha256"] == artifact["sha256"]
                            && row["channel"] == "trading_grid"),
                    "{}: {artifact} not in {rows:#?}",
                    partner.name
                );
            }
        }
        let green = sandbox
            .ledger(&format!(
                "?partner={}&asset={SELL_SHEET}",
                GREEN_MOUNTAIN.company
            ))
            .await?;
        ensure!(
            green.iter().any(|row| row["downloaded_at"].is_string()),
            "{green:#?}"
        );

        sandbox.assert_replay(&id).await?;
        sandbox.stop().await
    })
    .await
}

#[tokio::test]
async fn changes_requested_send_the_campaign_back_and_every_partner_is_answered()
-> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy("campaign-review").await?;

        // A review the brand manager stops: nothing leaves, OTMM is untouched.
        let stopped = sandbox
            .start_instance("campaign-review", input(&[FR_CA_LABEL], &[&ATLANTIC]))
            .await?;
        let approval = sandbox.approval("bob", &stopped, "send_out").await?;
        sandbox
            .decide(
                "bob",
                &approval,
                "reject",
                Value::Null,
                Some("the fr-CA label is final"),
            )
            .await?;
        let instance = sandbox.wait_status(&stopped, "completed").await?;
        ensure!(
            instance["output"]["sent"] == false
                && instance["steps"]["share"]["status"] == "skipped",
            "{instance:#}"
        );

        let id = sandbox
            .start_instance(
                "campaign-review",
                input(&[SELL_SHEET], &[&GREEN_MOUNTAIN, &METRO_FRESH, &ATLANTIC]),
            )
            .await?;
        send_out(&sandbox, &id).await?;
        let posts = review_posts(&sandbox, &id).await?;

        // Metro Fresh asks for changes; Atlantic only confirms receipt, which is no verdict;
        // Green Mountain stays silent. Five days later the review closes.
        review(
            &sandbox,
            &METRO_FRESH,
            &posts[1],
            "Our shelf strip needs a bigger logo.",
            "rejected",
            "The logo is too small",
        )
        .await?;
        wait_feedback(&sandbox, &id, 1).await?;
        acknowledge(&sandbox, &ATLANTIC, &posts[2], "received", "Got it").await?;
        wait_ledger(&sandbox, &id, ATLANTIC.company, 2, "acknowledged").await?;
        ensure!(
            !feedback_received(&sandbox, &id, 2).await?,
            "a receipt was taken for a verdict"
        );
        sandbox.advance("5d").await?;

        let signoff = sandbox.approval("bea", &id, "signoff").await?;
        ensure!(
            signoff["title"].as_str().is_some_and(
                |title| title.contains("0 of 3 partners approved, 1 asked for changes")
            ),
            "{signoff:#}"
        );
        sandbox
            .decide(
                "bea",
                &signoff,
                "reject",
                Value::Null,
                Some("bigger logo first"),
            )
            .await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        let verdicts: Vec<&Value> = instance["output"]["partners"]
            .as_array()
            .context("no partners")?
            .iter()
            .map(|partner| &partner["verdict"])
            .collect();
        ensure!(
            verdicts
                == [
                    &json!("no answer"),
                    &json!("changes requested"),
                    &json!("no answer")
                ],
            "{:#}",
            instance["output"]
        );
        ensure!(instance["output"]["released"] == false);

        // OTMM: sent back, with each partner's verdict; the stopped review left its asset alone.
        let otmm = sandbox.records("otmm")?;
        ensure!(
            otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.STATUS").as_deref() == Some("Rejected")
        );
        ensure!(
            otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.REVIEW_SIGNOFF").as_deref()
                == Some("rejected by bea")
        );
        let review = otmm_field(&otmm, SELL_SHEET, "CUSTOM.FIELD.PARTNER_REVIEW")
            .context("no partner review in OTMM")?;
        for expected in [
            "Green Mountain Beverage: no answer",
            "Metro Fresh Markets: changes requested - The logo is too small",
            "Atlantic Wine & Spirits: no answer",
        ] {
            ensure!(review.contains(expected), "{review}");
        }
        ensure!(
            otmm_field(&otmm, FR_CA_LABEL, "CUSTOM.FIELD.STATUS").as_deref() == Some("Approved")
        );
        ensure!(otmm_field(&otmm, FR_CA_LABEL, "CUSTOM.FIELD.REVIEW_CAMPAIGN").is_none());

        // The hub: the review copies are withdrawn, and every partner is answered.
        let hub = sandbox.records("trading_grid")?;
        let stopped_posts = hub["state"]["posts"]
            .as_object()
            .context("no posts")?
            .values()
            .filter(|post| post["correlation_id"] == json!(stopped))
            .count();
        ensure!(stopped_posts == 0, "the stopped review posted");
        for (partner, post, expected) in [
            (
                &GREEN_MOUNTAIN,
                &posts[0],
                "did not receive your review in time",
            ),
            (
                &METRO_FRESH,
                &posts[1],
                "recorded your verdict, changes requested",
            ),
            (&ATLANTIC, &posts[2], "did not receive your review in time"),
        ] {
            let (status, _) = read_post(&sandbox, partner, post).await?;
            ensure!(
                status == 410,
                "{} still reads its review copy: {status}",
                partner.name
            );
            let answers = notifications_to(&hub, partner.company);
            ensure!(answers.len() == 1, "{}: {answers:#?}", partner.name);
            let message = answers[0]["message"].as_str().unwrap_or_default();
            ensure!(
                message.contains(expected) && message.contains("goes back for changes"),
                "{}: {message}",
                partner.name
            );
            wait_ledger(&sandbox, &id, partner.company, 2, "withdrawn").await?;
        }

        sandbox.assert_replay(&id).await?;
        sandbox.assert_replay(&stopped).await?;
        sandbox.stop().await
    })
    .await
}
