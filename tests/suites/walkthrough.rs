//! The README's walkthrough, followed word for word: every command line of its `sh`
//! blocks runs in bash, in order, against a real `serve --sandbox`, as a person would
//! type it. What a person fills in, the test fills in the same way:
//!
//! - `<NAME's token>` is the token the banner printed for that demo user, and
//!   `<the hub's address>` the address it printed after `sandbox trading_grid`;
//! - a line ending `# again until it lists one; its id is <ID>` is run again until its
//!   output holds such an id (an instance id, or an approval id `<instance>:<step>:<n>`),
//!   which later lines use; `# again until it says WORD` until the output holds WORD.
//!
//! The only departures: the server is the test's own (started as the walkthrough's first
//! block says, with its state in a temporary folder, on a free port that the CLI reads
//! from `GRIDFLOW_SERVER`), and `cargo run --release --` is the debug binary the tests
//! built, so the suite needs no release build. Each command must exit 0. Afterwards the
//! outcome is checked where it lands: the instance completed, the partner's post holds
//! the approved file, the ledger has its delivery, and replay matches.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use gridflow_tests::process::Sandbox;
use gridflow_tests::{gridflow_binary, on_every_database};

const DEADLINE: Duration = Duration::from_secs(60);

/// The command lines of the `sh` blocks under `## Walkthrough`, continuation lines
/// joined, comments kept.
fn walkthrough_lines(readme: &str) -> anyhow::Result<Vec<String>> {
    let start = readme
        .find("\n## Walkthrough")
        .context("the README has no `## Walkthrough` section")?;
    let section = &readme[start + 1..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let mut lines = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = trimmed == "```sh" && !in_block;
            continue;
        }
        if !in_block || trimmed.is_empty() || (pending.is_empty() && trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
        } else {
            pending.push_str(trimmed);
            lines.push(std::mem::take(&mut pending));
        }
    }
    ensure!(!lines.is_empty(), "the walkthrough has no commands");
    Ok(lines)
}

/// What a line asks for besides running it: `(command, again-until condition)`.
enum Until {
    Once,
    Says(String),
    ListsId(String),
}

fn split_comment(line: &str) -> (String, Until) {
    let Some((command, comment)) = line.split_once("  # ") else {
        return (line.to_owned(), Until::Once);
    };
    let comment = comment.trim();
    let until = if let Some(name) = comment
        .strip_prefix("again until it lists one; its id is ")
        .and_then(|rest| rest.strip_prefix('<'))
        .and_then(|rest| rest.strip_suffix('>'))
    {
        Until::ListsId(name.to_owned())
    } else if let Some(word) = comment.strip_prefix("again until it says ") {
        Until::Says(word.to_owned())
    } else {
        Until::Once
    };
    (command.trim_end().to_owned(), until)
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(index, c)| {
            if matches!(index, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The first id of the kind `name` asks for in `output`.
fn find_id(name: &str, output: &str) -> Option<String> {
    let words = output
        .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .filter(|word| !word.is_empty());
    for word in words {
        let found = if name.starts_with("approval") {
            let mut parts = word.split(':');
            parts.next().is_some_and(is_uuid) && parts.count() >= 2
        } else {
            is_uuid(word)
        };
        if found {
            return Some(word.to_owned());
        }
    }
    None
}

/// Fills in the placeholders a person fills in.
fn fill(
    command: &str,
    sandbox: &Sandbox,
    ids: &BTreeMap<String, String>,
    binary: &str,
) -> anyhow::Result<String> {
    let mut filled = command.replace("cargo run --release --", binary);
    filled = filled.replace("<the hub's address>", sandbox.simulator_url("trading_grid"));
    while let Some(open) = filled.find('<') {
        let Some(close) = filled[open..].find('>') else {
            break;
        };
        let name = &filled[open + 1..open + close];
        let value = if let Some(user) = name.strip_suffix("'s token") {
            sandbox.token(user)?.to_owned()
        } else if let Some(id) = ids.get(name) {
            id.clone()
        } else {
            bail!("`{command}` needs <{name}>, which no earlier line gave");
        };
        filled.replace_range(open..=open + close, &value);
    }
    Ok(filled)
}

fn run(script: &str, server: &str) -> anyhow::Result<(bool, String)> {
    let output = Command::new("bash")
        .args(["-c", script])
        .env("GRIDFLOW_SERVER", server)
        .env_remove("GRIDFLOW_TOKEN")
        .output()
        .context("cannot run bash")?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

async fn follow_the_walkthrough(url: String) -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    let lines = walkthrough_lines(&readme)?;
    let binary = gridflow_binary()?.display().to_string();
    let sandbox = Sandbox::start(&url).await?;
    let workdir = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut exports = format!("cd {workdir:?}\n");
    let mut ids = BTreeMap::new();
    for line in &lines {
        if line.starts_with("cargo run --release -- serve") {
            continue;
        }
        let (command, until) = split_comment(line);
        let filled = fill(&command, &sandbox, &ids, &binary)?;
        if filled.starts_with("export ") {
            exports.push_str(&filled);
            exports.push('\n');
            continue;
        }
        let script = format!("{exports}{filled}");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (ok, output) = run(&script, sandbox.url())?;
            ensure!(ok, "`{command}` failed:\n{output}");
            let done = match &until {
                Until::Once => true,
                Until::Says(word) => output.contains(word.as_str()),
                Until::ListsId(name) => match find_id(name, &output) {
                    Some(id) => {
                        ids.insert(name.clone(), id);
                        true
                    }
                    None => false,
                },
            };
            if done {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "`{command}` did not show what the walkthrough promises:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let instance = ids
        .get("instance-id")
        .context("the walkthrough names no <instance-id>")?;
    outcome(&sandbox, instance).await?;
    sandbox.stop().await
}

/// Where the walkthrough's request lands: completed, delivered to the partner that asked,
/// in the ledger, and replayed.
async fn outcome(sandbox: &Sandbox, instance: &str) -> anyhow::Result<()> {
    let view = sandbox.wait_status(instance, "completed").await?;
    ensure!(view["output"]["delivered"] == true, "{view:#}");
    let post_id = view["output"]["post_id"].as_str().context("a post")?;
    let hub = sandbox.records("trading_grid")?;
    let post = &hub["state"]["posts"][post_id];
    ensure!(
        post["partner_company_ids"] == serde_json::json!(["GC00933311CD"]),
        "{post:#}"
    );
    let sha256 = &view["output"]["content"]["sha256"];
    let rows: Vec<Value> = sandbox.ledger("?partner=GC00933311CD").await?;
    ensure!(
        rows.iter().any(|row| row["sha256"] == *sha256),
        "no ledger row with the approved digest {sha256}: {rows:#?}"
    );
    sandbox.assert_replay(instance).await
}

#[tokio::test]
async fn the_readme_walkthrough_works_word_for_word() -> anyhow::Result<()> {
    on_every_database(follow_the_walkthrough).await
}
