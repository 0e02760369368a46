//! CLI tests: the built `gridflow` binary, run as a user would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_gridflow");
const TOKEN: &str = "cli-test-admin-token";

const GOOD: &str = r#"
id: cli-chain
input:
  type: object
  required: [name]
  properties:
    name: {type: string}
steps:
  - id: greet
    action: core.echo
    with: {message: "hello ${input.name}"}
  - id: done
    needs: [greet]
    action: core.noop
output: {message: "${steps.greet.output.message}"}
"#;

const CYCLIC: &str = r#"
id: cli-cycle
steps:
  - id: alpha
    needs: [gamma]
    action: core.noop
  - id: beta
    needs: [alpha]
    action: core.noop
  - id: gamma
    needs: [beta]
    action: core.noop
"#;

/// A `gridflow` command with none of the user's gridflow settings.
fn gridflow() -> Command {
    let mut command = Command::new(BINARY);
    for variable in [
        "GRIDFLOW_TOKEN",
        "GRIDFLOW_SERVER",
        "GRIDFLOW_ADMIN_TOKEN",
        "GRIDFLOW_DATABASE_URL",
        "RUST_LOG",
    ] {
        command.env_remove(variable);
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the gridflow binary runs");
    (
        status.code().expect("gridflow exits with a code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("the temporary folder is writable");
    path
}

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD);
    let (code, stdout, stderr) = run(gridflow().arg("validate").arg(&good));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), format!("{}: ok", good.display()));
}

#[test]
fn validate_rejects_a_cycle_and_names_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD);
    let cyclic = write(dir.path(), "cyclic.yaml", CYCLIC);
    let (code, stdout, stderr) = run(gridflow().arg("validate").arg(&good).arg(&cyclic));
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!("{}: ok", good.display())),
        "{stdout}"
    );
    let cycle_line = stdout
        .lines()
        .find(|line| line.starts_with(&format!("{}: steps[", cyclic.display())))
        .unwrap_or_else(|| panic!("no error line for the cyclic file in {stdout}"));
    assert!(cycle_line.contains("cycle"), "{cycle_line}");
    for step in ["alpha", "beta", "gamma"] {
        assert!(
            cycle_line.contains(step),
            "{step} missing from {cycle_line}"
        );
    }
}

#[test]
fn validate_reports_an_unreadable_file() {
    let (code, stdout, _) = run(gridflow().args(["validate", "/nonexistent/definition.yaml"]));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("/nonexistent/definition.yaml: cannot read"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let (code, _, stderr) = run(gridflow().arg("frobnicate"));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(gridflow().arg("validate"));
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(gridflow().args(["start", "x", "--input", "{not json"]));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn client_commands_need_a_token() {
    let (code, _, stderr) = run(gridflow().args(["show", "some-instance"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("GRIDFLOW_TOKEN"), "{stderr}");
}

/// A `gridflow serve` started by a test, killed when dropped if still running.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(database: &Path) -> Self {
        Self::start_with(database, &[], Stdio::null())
    }

    /// `serve --sandbox`, the lines it printed to stderr up to the `count`th that names a
    /// demo user's token (waited for with a deadline), and all it printed to stderr by then.
    fn start_sandbox(database: &Path, count: usize) -> (Self, Vec<String>, Vec<String>) {
        let mut server = Self::start_with(database, &["--sandbox"], Stdio::piped());
        let stderr = server.child.stderr.take().expect("stderr is piped");
        let (lines, received) = mpsc::channel();
        // The thread drains stderr for the server's whole life: a closed pipe would make
        // the server's later writes to stderr fail.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut users = Vec::new();
        let mut all = Vec::new();
        while users.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = received.recv_timeout(left).unwrap_or_else(|_| {
                panic!("serve printed {} sandbox users, not {count}", users.len())
            });
            if line.contains("token=") {
                users.push(line.clone());
            }
            all.push(line);
        }
        (server, users, all)
    }

    fn start_with(database: &Path, extra: &[&str], stderr: Stdio) -> Self {
        // Run where the database lives: `--sandbox` keeps its simulators' state in
        // `./gridflow-sandbox`, which must not land in the source tree.
        let directory = database.parent().expect("the database is in a directory");
        let mut child = gridflow()
            .current_dir(directory)
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}?mode=rwc", database.display()))
            .args(["--sqlite-synchronous", "normal"])
            .args(extra)
            .env("GRIDFLOW_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("gridflow serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
        };
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .expect("serve prints its listening line");
        server.url = line
            .strip_prefix("gridflow listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        server
    }

    fn client(&self) -> Command {
        let mut command = gridflow();
        command
            .env("GRIDFLOW_SERVER", &self.url)
            .env("GRIDFLOW_TOKEN", TOKEN);
        command
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// Unix only: it stops the server with SIGTERM through `kill`.
#[cfg(unix)]
#[test]
fn serve_runs_client_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD);
    let mut server = Server::start(&dir.path().join("gridflow.db"));
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );

    let (code, stdout, stderr) = run(server.client().arg("deploy").arg(&good));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("deployed cli-chain version 1"), "{stdout}");
    let (code, stdout, _) = run(server.client().arg("deploy").arg(&good));
    assert_eq!(code, 0);
    assert!(stdout.contains("unchanged cli-chain version 1"), "{stdout}");

    let (code, stdout, stderr) =
        run(server
            .client()
            .args(["start", "cli-chain", "--input", r#"{"name": "Ada"}"#]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let instance = stdout.trim().to_owned();
    assert!(!instance.is_empty() && !instance.contains(' '), "{stdout}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let (code, stdout, stderr) = run(server.client().args(["show", &instance]));
        assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
        let shown: Value = serde_json::from_str(&stdout).expect("show prints JSON");
        if shown["status"] == "completed" {
            break shown;
        }
        assert!(Instant::now() < deadline, "not completed in time: {shown}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(shown["output"]["message"], "hello Ada");

    let (code, stdout, _) = run(server.client().args(["instances", "--limit", "5"]));
    assert_eq!(code, 0);
    assert!(stdout.starts_with("ID"), "{stdout}");
    assert!(
        stdout.contains(&instance) && stdout.contains("completed"),
        "{stdout}"
    );

    let (code, stdout, _) = run(server.client().args(["history", &instance]));
    assert_eq!(code, 0);
    let history: Value = serde_json::from_str(&stdout).expect("history prints JSON");
    assert_eq!(history["events"][0]["type"], "instance_started");

    // The catalogue: the built-in connector's actions, one line each.
    let (code, stdout, stderr) = run(server.client().arg("connectors"));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("core  "), "{stdout}");
    assert!(stdout.contains("  action core.noop  "), "{stdout}");
    let (code, stdout, _) = run(server.client().args(["connectors", "--json"]));
    assert_eq!(code, 0);
    let catalogue: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(catalogue["items"][0]["name"], "core");

    // A refused call prints the error body on stderr and exits with 1.
    let (code, _, stderr) = run(server.client().args(["cancel", &instance]));
    assert_eq!(code, 1);
    assert!(stderr.contains("conflict"), "{stderr}");
    let (code, _, stderr) = run(server
        .client()
        .env("GRIDFLOW_TOKEN", "wrong")
        .args(["show", &instance]));
    assert_eq!(code, 1);
    assert!(stderr.contains("unauthorized"), "{stderr}");

    // SIGTERM stops the server gracefully, with a zero exit code.
    let (code, _, stderr) = run(Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string()));
    assert_eq!(code, 0, "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn sandbox_users_and_token_create_work_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD);
    let demo_users = gridflow::http::sandbox_tokens::sandbox_users();
    let (server, users, printed) =
        Server::start_sandbox(&dir.path().join("gridflow.db"), demo_users.len());
    // By default the libraries' chatter (each migration applied, the pool) stays below
    // INFO: the start-up shows gridflow's own lines.
    assert!(
        printed
            .iter()
            .all(|line| !line.contains("sea_orm") && !line.contains("sqlx")),
        "{printed:#?}"
    );
    assert!(
        printed
            .iter()
            .any(|line| line.starts_with("sandbox trading_grid "))
    );
    let token_of = |role: &str| -> String {
        let line = users
            .iter()
            .find(|line| line.contains(&format!("role={role}")))
            .unwrap_or_else(|| panic!("no {role} in {users:?}"));
        line.rsplit("token=").next().unwrap().trim().to_owned()
    };
    let approver_lines = users
        .iter()
        .filter(|line| line.contains("role=approver"))
        .count();
    assert_eq!(approver_lines, 6, "{users:?}");
    assert!(
        users
            .iter()
            .filter(|line| line.contains("groups=brand-managers"))
            .count()
            == 2
    );

    // The analyst deploys; the auditor may not.
    let (code, stdout, stderr) = run(server
        .client()
        .env("GRIDFLOW_TOKEN", token_of("auditor"))
        .arg("deploy")
        .arg(&good));
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("forbidden"), "{stderr}");
    let (code, stdout, stderr) = run(server
        .client()
        .env("GRIDFLOW_TOKEN", token_of("analyst"))
        .arg("deploy")
        .arg(&good));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");

    // The admin creates a token; it is the only thing on stdout, and it works.
    let (code, stdout, stderr) = run(server.client().args([
        "token",
        "create",
        "--role",
        "approver",
        "--user",
        "carl",
        "--group",
        "brand-managers",
    ]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let created = stdout.trim().to_owned();
    assert!(
        created.starts_with("gf_") && !created.contains(char::is_whitespace),
        "{stdout}"
    );
    assert!(stderr.contains("carl"), "{stderr}");
    let (code, _, stderr) =
        run(server
            .client()
            .env("GRIDFLOW_TOKEN", &created)
            .args(["instances", "--limit", "1"]));
    assert_eq!(code, 0, "{stderr}");
    // An approver may not create tokens: refused, exit 1.
    let (code, _, stderr) = run(server
        .client()
        .env("GRIDFLOW_TOKEN", &created)
        .args(["token", "create", "--role", "admin", "--user", "eve"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("forbidden"), "{stderr}");
    // A role that does not exist is a usage error.
    let (code, _, _) = run(server
        .client()
        .args(["token", "create", "--role", "boss", "--user", "eve"]));
    assert_eq!(code, 2);

    // The admin lists the tokens (never the tokens themselves) and revokes carl's.
    let (code, stdout, stderr) = run(server.client().args(["token", "list", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let listed = listed.as_array().unwrap();
    // The demo users' tokens and carl's.
    assert_eq!(listed.len(), demo_users.len() + 1, "{stdout}");
    assert!(!stdout.contains(&created), "{stdout}");
    let carl = listed.iter().find(|token| token["user"] == "carl").unwrap();
    assert_eq!(carl["revoked"], false);
    let carl_id = carl["id"].as_str().unwrap().to_owned();
    let (code, stdout, stderr) = run(server.client().args(["token", "list"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ID "), "{stdout}");
    assert!(
        stdout.contains(&carl_id) && stdout.contains("sandbox"),
        "{stdout}"
    );
    let (code, _, stderr) = run(server.client().args(["token", "revoke", &carl_id]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");
    let (code, _, stderr) =
        run(server
            .client()
            .env("GRIDFLOW_TOKEN", &created)
            .args(["instances", "--limit", "1"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("unauthorized"), "{stderr}");
    let (code, stdout, _) = run(server.client().args(["token", "list", "--json"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("\"revoked\":true") || stdout.contains("\"revoked\": true"),
        "{stdout}"
    );
}

/// A fake server for `gridflow start`: answers its connections in turn with `answers`
/// (`None` closes the connection without answering, as when a response is lost) and
/// returns the `Idempotency-Key` of each request.
fn fake_server(
    answers: Vec<Option<&'static str>>,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    let handle = std::thread::spawn(move || {
        let mut keys = Vec::new();
        for answer in answers {
            let (mut stream, _) = listener.accept().expect("the client connects");
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // The head, then as much body as Content-Length says.
            let (head, body_length) = loop {
                let read = stream.read(&mut buffer).expect("the request can be read");
                assert!(read > 0, "the client closed early");
                request.extend_from_slice(&buffer[..read]);
                if let Some(end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| {
                            value.trim().parse::<usize>().expect("a content length")
                        });
                    break (head, end + 4 + length);
                }
            };
            while request.len() < body_length {
                let read = stream.read(&mut buffer).expect("the request can be read");
                request.extend_from_slice(&buffer[..read]);
            }
            keys.push(
                head.lines()
                    .find_map(|line| line.strip_prefix("idempotency-key:"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            );
            if let Some(answer) = answer {
                stream
                    .write_all(answer.as_bytes())
                    .expect("the answer can be sent");
            }
        }
        keys
    });
    (url, handle)
}

#[test]
fn start_retries_transient_failures_with_one_idempotency_key_per_invocation() {
    const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 63\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"retry\",\"details\":[]}}";
    const CREATED: &str = "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 22\r\n\r\n{\"instance_id\":\"i-42\"}";
    let (url, server) = fake_server(vec![Some(UNAVAILABLE), None, Some(CREATED), Some(CREATED)]);
    for _ in 0..2 {
        let (code, stdout, stderr) = run(gridflow().env("GRIDFLOW_TOKEN", TOKEN).args([
            "start",
            "hello",
            "--input",
            "{\"n\": 1}",
            "--server",
            &url,
        ]));
        assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
        assert_eq!(stdout.trim(), "i-42");
    }
    let keys = server.join().unwrap();
    assert_eq!(keys.len(), 4);
    assert!(!keys[0].is_empty());
    // One key for the three sends of the first invocation, a new one for the second.
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0], keys[2]);
    assert_ne!(keys[0], keys[3]);
}
