//! Process 14, `workflows/access-request.yaml`: a partner's access request on the hub
//! starts the definition; legal writes the usage terms in the approval's form; the terms
//! are posted to the partner, who acknowledges them on the hub; only accepted terms open
//! the library group; the request is answered and closed in every case.
//!
//! - Atlantic Wine & Spirits asks for the Retailers (EN/FR) library; lea grants it with
//!   terms; the partner stays silent for 3 days (sandbox clock) and is reminded on the
//!   hub, then accepts: the group has Atlantic as a member, the hub holds the accepted
//!   acknowledgement (read back into the instance), the request is answered and closed.
//! - lea declines another partner's request: no terms post, no membership, the reason on
//!   the closed request.
//! - A partner declines the terms: the library stays closed, and the request says why.

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use gridflow_tests::on_every_database;
use gridflow_tests::process::Sandbox;

use super::p02_partner_media_request::{hub_request, posts_to};

const DEFINITION: &str = "access-request";
const RETAILERS: &str = "grp-retailers";
const ATLANTIC: (&str, &str) = ("GC00955577EF", "buyer@atlanticws.example");
const GREEN_MOUNTAIN: (&str, &str) = ("GC00912345AB", "buyer@greenmountain.example");
const TERMS: &str = "Use the assets only to promote Aurora Springs products in store and on the web; never alter labels.";

/// The terms legal writes in the approval's form.
fn terms_form() -> Value {
    json!({"group_id": RETAILERS, "terms": TERMS, "markets": "CA", "valid_until": "2027-06-30"})
}

fn group_members(sandbox: &Sandbox, group_id: &str) -> anyhow::Result<Vec<Value>> {
    let records = sandbox.records("trading_grid")?;
    records["state"]["groups"][group_id]["member_company_ids"]
        .as_array()
        .cloned()
        .with_context(|| format!("no group {group_id}"))
}

/// A partner user's acknowledgement of a post on the hub.
async fn acknowledge(
    sandbox: &Sandbox,
    login: &str,
    post_id: &str,
    ack_type: &str,
) -> anyhow::Result<()> {
    let path = format!("/partner/v1/posts/{post_id}/acknowledgements");
    let body = json!({"ack_type": ack_type, "comment": format!("{ack_type} by {login}")});
    let (status, answer) = sandbox
        .partner("trading_grid", Some(login), Method::POST, &path, Some(body))
        .await?;
    ensure!(status == 201, "acknowledgement answered {status}: {answer}");
    Ok(())
}

/// The terms post as the partner reads it on the hub.
async fn read_post(sandbox: &Sandbox, login: &str, post_id: &str) -> anyhow::Result<Value> {
    let path = format!("/partner/v1/posts/{post_id}");
    let (status, post) = sandbox
        .partner("trading_grid", Some(login), Method::GET, &path, None)
        .await?;
    ensure!(
        status == 200,
        "reading post {post_id} answered {status}: {post}"
    );
    Ok(post)
}

/// Starts an access request of `login` and has lea decide it; the instance id and the
/// request id.
async fn requested_and_decided(
    sandbox: &Sandbox,
    login: &str,
    decision: &str,
    comment: &str,
) -> anyhow::Result<(String, String)> {
    let request_id = sandbox
        .partner_request(
            login,
            json!({"type": "access", "market": "CA", "language": "fr-CA",
               "description": "Access to the Retailers (EN/FR) library for our Quebec stores"}),
        )
        .await?;
    let id = sandbox
        .started_instance(DEFINITION, |input| {
            input["request_id"] == request_id.as_str()
        })
        .await?;
    let approval = sandbox.approval("lea", &id, "review").await?;
    // A rejection sends no form data: the form's fields are needed only to grant.
    let data = if decision == "approve" {
        terms_form()
    } else {
        Value::Null
    };
    sandbox
        .decide("lea", &approval, decision, data, Some(comment))
        .await?;
    Ok((id, request_id))
}

fn post_id_of(instance: &Value) -> anyhow::Result<String> {
    Ok(instance["steps"]["terms"]["output"]["post_id"]
        .as_str()
        .context("the terms post")?
        .to_owned())
}

#[tokio::test]
async fn accepted_terms_open_the_library_after_a_reminder() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        ensure!(!group_members(&sandbox, RETAILERS)?.contains(&json!(ATLANTIC.0)));
        let (id, request_id) =
            requested_and_decided(&sandbox, ATLANTIC.1, "approve", "Terms attached").await?;

        // The partner reads the terms legal wrote, and stays silent.
        let instance = sandbox.wait_step(&id, "ack", "waiting").await?;
        let post_id = post_id_of(&instance)?;
        let post = read_post(&sandbox, ATLANTIC.1, &post_id).await?;
        let body = post["body"].as_str().unwrap_or_default();
        ensure!(
            post["requires_ack"] == true && body.contains(TERMS) && body.contains("2027-06-30"),
            "{post}"
        );
        ensure!(!group_members(&sandbox, RETAILERS)?.contains(&json!(ATLANTIC.0)));

        // Three days later the hub reminds it.
        sandbox.advance("3d").await?;
        sandbox.wait_step(&id, "late_ack", "waiting").await?;
        let records = sandbox.records("trading_grid")?;
        let reminders: Vec<&Value> = records["state"]["notifications"]
            .as_object()
            .context("notifications")?
            .values()
            .filter(|notification| notification.to_string().contains(&post_id))
            .collect();
        ensure!(reminders.len() == 1, "{reminders:?}");
        ensure!(
            reminders[0].to_string().contains(ATLANTIC.0),
            "{reminders:?}"
        );

        // It accepts: the library opens, and the request is answered and closed.
        acknowledge(&sandbox, ATLANTIC.1, &post_id, "accepted").await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        let output = &instance["output"];
        ensure!(
            output["granted"] == true
                && output["acknowledgement"]["ack_type"] == "accepted"
                && output["acknowledgement"]["login_id"] == ATLANTIC.1
                && output["terms"] == terms_form(),
            "{output}"
        );
        ensure!(group_members(&sandbox, RETAILERS)?.contains(&json!(ATLANTIC.0)));
        let recorded = &instance["steps"]["recorded"]["output"]["acknowledgements"];
        ensure!(
            recorded.as_array().is_some_and(|acks| acks
                .iter()
                .any(|ack| ack["company_id"] == ATLANTIC.0 && ack["ack_type"] == "accepted")),
            "{recorded}"
        );
        let request = hub_request(&sandbox, &request_id)?;
        let answer = request["answers"][0]["message"]
            .as_str()
            .unwrap_or_default();
        ensure!(
            request["status"] == "closed"
                && request["resolution"] == "access granted"
                && answer.contains(RETAILERS)
                && answer.contains(&post_id),
            "{request}"
        );
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn legal_decline_answers_and_keeps_the_library_closed() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let members = group_members(&sandbox, RETAILERS)?;
        let seeded_posts = posts_to(&sandbox, GREEN_MOUNTAIN.0)?.len();
        let reason = "Distributors use the distributors' library";
        let (id, request_id) =
            requested_and_decided(&sandbox, GREEN_MOUNTAIN.1, "reject", reason).await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        ensure!(
            instance["steps"]["terms"]["status"] == "skipped"
                && instance["steps"]["grant"]["status"] == "skipped"
                && instance["output"]["granted"] == false,
            "{instance}"
        );
        ensure!(group_members(&sandbox, RETAILERS)? == members);
        ensure!(posts_to(&sandbox, GREEN_MOUNTAIN.0)?.len() == seeded_posts);
        let request = hub_request(&sandbox, &request_id)?;
        ensure!(
            request["status"] == "closed"
                && request["resolution"] == "declined by legal"
                && request["answers"][0]["message"]
                    .as_str()
                    .is_some_and(|message| message.contains(reason)),
            "{request}"
        );
        // An approver outside legal never saw it.
        let (_, pending) = sandbox
            .api("bob", Method::GET, "/approvals?status=pending", None)
            .await?;
        ensure!(pending["items"] == json!([]), "{pending}");
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn declined_terms_keep_the_library_closed() -> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy(DEFINITION).await?;
        let (id, request_id) =
            requested_and_decided(&sandbox, ATLANTIC.1, "approve", "Terms attached").await?;
        let instance = sandbox.wait_step(&id, "ack", "waiting").await?;
        let post_id = post_id_of(&instance)?;
        acknowledge(&sandbox, ATLANTIC.1, &post_id, "rejected").await?;
        let instance = sandbox.wait_status(&id, "completed").await?;
        ensure!(
            instance["steps"]["remind"]["status"] == "skipped"
                && instance["steps"]["grant"]["status"] == "skipped"
                && instance["output"]["acknowledgement"]["ack_type"] == "rejected",
            "{instance}"
        );
        ensure!(!group_members(&sandbox, RETAILERS)?.contains(&json!(ATLANTIC.0)));
        let request = hub_request(&sandbox, &request_id)?;
        ensure!(
            request["status"] == "closed"
                && request["resolution"] == "terms declined by the partner",
            "{request}"
        );
        sandbox.assert_replay(&id).await?;
        sandbox.stop().await?;
        Ok(())
    })
    .await
}
