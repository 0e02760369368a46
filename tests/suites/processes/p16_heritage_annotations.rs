//! Process 16, heritage collections (`workflows/heritage-annotations.yaml` and its child
//! `heritage-annotations-item.yaml`), under the real `serve --sandbox`: two archival
//! photographs of OTMM's Aurora Springs heritage collection are opened to the hub's heritage
//! researchers once a curator approves exactly these files; researchers read, download and
//! annotate them on the hub; when the round closes (14 days on the sandbox clock) a curator
//! reviews every annotation, writing the accepted corrections back to OTMM through the
//! review's form, and every researcher is answered, also when declined. Asserted where it
//! lands: OTMM's and the hub's simulator records, the distribution ledger, and the history
//! of the round and of each item's review, replayed.

use reqwest::Method;
use serde_json::{Value, json};

use anyhow::{Context, ensure};
use gridflow_tests::on_every_database;
use gridflow_tests::process::{DEADLINE, Sandbox};
use gridflow_tests::wait_until;

/// OTMM's seeded heritage photographs (`seeded_asset_id(1601)` and `(1602)`), "Archived".
const HALL: &str = "d864381e8c880dec136002035fc1e6f74157029a";
const TRUCK: &str = "ec42829ed94cfd1b4b612bc0ac20422176b55661";

/// The hub's heritage researchers (group grp-heritage-researchers): company and user.
const SOCIETY: (&str, &str) = ("GC00988811JK", "archivist@vtbevhistory.example");
const ARCHIVE: (&str, &str) = ("GC00988822KL", "research@neindustrialarchive.example");

const COLLECTION: &str = "Aurora Springs heritage";

const HALL_NOTE: &str = "This is the Waterbury plant, not Stowe: the 1952 annual report (our archive, box 12) shows the same hall.";
const TRUCK_YEAR: &str = "The truck is a 1972 Ford F-600, so the photograph cannot be from 1968.";
const TRUCK_DEPOT: &str = "The depot sign reads Montpelier Junction, which is in Berlin, Vermont.";

/// `login` acts on the hub at `path`.
async fn hub(
    sandbox: &Sandbox,
    login: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    sandbox
        .partner("trading_grid", Some(login), method, path, body)
        .await
}

async fn annotate(sandbox: &Sandbox, login: &str, post: &str, text: &str) -> anyhow::Result<()> {
    let (status, answer) = hub(
        sandbox,
        login,
        Method::POST,
        &format!("/partner/v1/posts/{post}/comments"),
        Some(json!({"body": text})),
    )
    .await?;
    ensure!(
        status == 201,
        "{login} annotating {post}: {status} {answer}"
    );
    Ok(())
}

/// cara's pending review of the annotation `text`.
async fn review_of(sandbox: &Sandbox, text: &str) -> anyhow::Result<Value> {
    wait_until(DEADLINE, &format!("cara's review of {text:?}"), || async {
        Ok(sandbox
            .approvals("cara")
            .await?
            .into_iter()
            .find(|approval| {
                approval["step"] == "curate"
                    && approval["title"]
                        .as_str()
                        .is_some_and(|title| title.contains(text))
            }))
    })
    .await
}

fn otmm_field(otmm: &Value, asset: &str, field: &str) -> Option<String> {
    otmm["state"]["assets"][asset]["metadata"][field][1]
        .as_str()
        .map(str::to_owned)
}

/// The hub's notifications to the researcher `login`.
fn answers_to(hub: &Value, login: &str) -> Vec<String> {
    hub["state"]["notifications"]
        .as_object()
        .into_iter()
        .flat_map(|all| all.values())
        .filter(|notification| notification["recipients"]["login_ids"] == json!([login]))
        .filter_map(|notification| notification["message"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_curator_writes_accepted_annotations_back_to_otmm_and_answers_every_researcher()
-> anyhow::Result<()> {
    on_every_database(|url| async move {
        let sandbox = Sandbox::start(&url).await?;
        sandbox.deploy("heritage-annotations-item").await?;
        sandbox.deploy("heritage-annotations").await?;
        let input = json!({"collection": COLLECTION, "assets": [HALL, TRUCK]});

        // A round the curator does not open: nothing reaches the researchers.
        let closed = sandbox
            .start_instance("heritage-annotations", input.clone())
            .await?;
        let approval = sandbox.approval("cara", &closed, "open").await?;
        sandbox
            .decide(
                "cara",
                &approval,
                "reject",
                Value::Null,
                Some("rights to the 1968 photograph are unclear"),
            )
            .await?;
        let instance = sandbox.wait_status(&closed, "completed").await?;
        ensure!(
            instance["output"]["opened"] == false
                && instance["steps"]["publish"]["status"] == "skipped",
            "{instance:#}"
        );

        let id = sandbox
            .start_instance("heritage-annotations", input)
            .await?;
        let approval = sandbox.approval("cara", &id, "open").await?;
        let bound: Vec<&Value> = approval["artifacts"]
            .as_array()
            .context("the opening binds no files")?
            .iter()
            .map(|artifact| &artifact["asset_id"])
            .collect();
        ensure!(bound == [&json!(HALL), &json!(TRUCK)], "{approval:#}");
        sandbox
            .decide(
                "cara",
                &approval,
                "approve",
                Value::Null,
                Some("open for the round"),
            )
            .await?;
        let instance = sandbox.wait_step(&id, "publish", "succeeded").await?;
        let posts: Vec<String> = instance["steps"]["publish"]["output"]
            .as_array()
            .context("publish has no output list")?
            .iter()
            .filter_map(|post| post["post_id"].as_str().map(str::to_owned))
            .collect();
        ensure!(posts.len() == 2, "{posts:?}");
        let (hall_post, truck_post) = (&posts[0], &posts[1]);

        // Researchers read the record, download the scan and annotate; a trading partner
        // outside the researchers' group sees nothing.
        let (status, post) = hub(
            &sandbox,
            SOCIETY.1,
            Method::GET,
            &format!("/partner/v1/posts/{hall_post}"),
            None,
        )
        .await?;
        ensure!(status == 200, "{status} {post}");
        ensure!(
            post["body"]
                .as_str()
                .is_some_and(|body| body.contains("Stowe, Vermont")),
            "{post:#}"
        );
        ensure!(
            post["documents"][0]["sha256"] == approval["artifacts"][0]["sha256"],
            "{post:#}"
        );
        let document = post["documents"][0]["document_id"]
            .as_str()
            .context("no document")?;
        let (status, _) = hub(
            &sandbox,
            SOCIETY.1,
            Method::GET,
            &format!("/partner/v1/posts/{hall_post}/documents/{document}"),
            None,
        )
        .await?;
        ensure!(status == 200, "download: {status}");
        let (status, _) = hub(
            &sandbox,
            "buyer@greenmountain.example",
            Method::GET,
            &format!("/partner/v1/posts/{hall_post}"),
            None,
        )
        .await?;
        ensure!(
            status == 404,
            "a trading partner reads the heritage post: {status}"
        );
        annotate(&sandbox, SOCIETY.1, hall_post, HALL_NOTE).await?;
        annotate(&sandbox, ARCHIVE.1, truck_post, TRUCK_YEAR).await?;
        annotate(&sandbox, SOCIETY.1, truck_post, TRUCK_DEPOT).await?;

        // The round closes after 14 days; each item's annotations go to the curator.
        sandbox.advance("14d").await?;
        let hall_review = review_of(&sandbox, HALL_NOTE).await?;
        let (status, refused) = sandbox
            .api(
                "cara",
                Method::POST,
                &format!(
                    "/approvals/{}/decision",
                    hall_review["id"].as_str().unwrap_or_default()
                ),
                Some(json!({"decision": "approve", "data": {}})),
            )
            .await?;
        ensure!(
            status == 422,
            "accepting without the metadata to write: {status} {refused}"
        );
        let hall_fields = json!({
            "CUSTOM.FIELD.PLACE": "Waterbury, Vermont",
            "CUSTOM.FIELD.CAPTION": "Bottling hall of the Aurora Springs works, Waterbury, Vermont",
            "CUSTOM.FIELD.SOURCE": "Vermont Beverage History Society, 1952 annual report (box 12)",
        });
        sandbox
            .decide(
                "cara",
                &hall_review,
                "approve",
                json!({"fields": hall_fields}),
                Some("Matches our copy of the report."),
            )
            .await?;
        let year_review = review_of(&sandbox, TRUCK_YEAR).await?;
        sandbox
            .decide(
                "cara",
                &year_review,
                "reject",
                Value::Null,
                Some("The registration plate reads 1968; that body style was built from 1967."),
            )
            .await?;
        let depot_review = review_of(&sandbox, TRUCK_DEPOT).await?;
        sandbox
            .decide(
                "cara",
                &depot_review,
                "approve",
                json!({"fields": {"CUSTOM.FIELD.PLACE": "Montpelier Junction, Berlin, Vermont"}}),
                None,
            )
            .await?;

        let instance = sandbox.wait_status(&id, "completed").await?;
        let items = &instance["output"]["items"];
        ensure!(
            items[0]["asset_id"] == HALL
                && items[0]["annotations"] == 1
                && items[0]["accepted"] == 1,
            "{items:#}"
        );
        ensure!(
            items[1]["asset_id"] == TRUCK
                && items[1]["annotations"] == 2
                && items[1]["accepted"] == 1,
            "{items:#}"
        );

        // OTMM holds the accepted corrections, and only those.
        let otmm = sandbox.records("otmm")?;
        for (field, value) in hall_fields.as_object().context("fields")? {
            ensure!(
                otmm_field(&otmm, HALL, field).as_deref() == value.as_str(),
                "{field}: {:#}",
                otmm["state"]["assets"][HALL]
            );
        }
        ensure!(
            otmm_field(&otmm, TRUCK, "CUSTOM.FIELD.PLACE").as_deref()
                == Some("Montpelier Junction, Berlin, Vermont")
        );
        ensure!(
            otmm_field(&otmm, TRUCK, "CUSTOM.FIELD.DATE_CREATED").as_deref() == Some("1968"),
            "the declined correction was written"
        );
        ensure!(
            otmm_field(&otmm, TRUCK, "CUSTOM.FIELD.CAPTION").as_deref()
                == Some("Aurora Springs delivery truck at the Montpelier depot")
        );

        // Every researcher is answered, the declined one with the curator's reason.
        let hub_records = sandbox.records("trading_grid")?;
        let society = answers_to(&hub_records, SOCIETY.1);
        ensure!(
            society.len() == 2
                && society
                    .iter()
                    .all(|message| message.starts_with("Accepted by the curator")),
            "{society:#?}"
        );
        ensure!(
            society
                .iter()
                .any(|message| message.contains("Waterbury, Vermont")
                    && message.contains("Matches our copy")),
            "{society:#?}"
        );
        let archive = answers_to(&hub_records, ARCHIVE.1);
        ensure!(
            archive.len() == 1
                && archive[0].starts_with("Not taken into the archive record")
                && archive[0].contains("registration plate reads 1968"),
            "{archive:#?}"
        );
        for post in &posts {
            ensure!(
                hub_records["state"]["posts"][post]["recipients"] == json!([SOCIETY.0, ARCHIVE.0]),
                "{:#}",
                hub_records["state"]["posts"][post]
            );
        }
        let never_posted = hub_records["state"]["posts"]
            .as_object()
            .context("posts")?
            .values()
            .all(|post| post["correlation_id"] != json!(closed));
        ensure!(never_posted, "the round that was not opened posted");

        // The ledger: both scans reached both researchers; the society downloaded the hall.
        for (company, _) in [SOCIETY, ARCHIVE] {
            let rows: Vec<Value> = sandbox
                .ledger(&format!("?partner={company}"))
                .await?
                .into_iter()
                .filter(|row| row["instance_id"] == json!(id))
                .collect();
            let mut assets: Vec<&str> = rows
                .iter()
                .filter_map(|row| row["asset_id"].as_str())
                .collect();
            assets.sort_unstable();
            let mut wanted = vec![HALL, TRUCK];
            wanted.sort_unstable();
            ensure!(assets == wanted, "{company}: {rows:#?}");
        }
        wait_until(DEADLINE, "the society's download in the ledger", || async {
            let rows = sandbox
                .ledger(&format!("?partner={}&asset={HALL}", SOCIETY.0))
                .await?;
            Ok(rows
                .iter()
                .any(|row| row["status"] == "downloaded")
                .then_some(()))
        })
        .await?;

        // History: the round and each item's review replay to their stored state.
        let children: Vec<String> = instance["steps"]["review"]["children"]
            .as_array()
            .context("review has no children")?
            .iter()
            .filter_map(|child| child["instance_id"].as_str().map(str::to_owned))
            .collect();
        ensure!(children.len() == 2, "{:#}", instance["steps"]["review"]);
        for instance in children.iter().chain([&id, &closed]) {
            sandbox.assert_replay(instance).await?;
        }
        sandbox.stop().await
    })
    .await
}
