//! A PostgreSQL cluster that one test owns: its own data directory and port, stopped and
//! started at will (a database outage), and stopped and deleted when dropped, also when
//! the test fails.
//!
//! It uses the server binaries installed on the machine (`/usr/lib/postgresql/*/bin`).
//! PostgreSQL refuses to run as root, so as root (as in CI) every command runs as the
//! `postgres` user through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A running or stopped PostgreSQL cluster in a temporary directory.
pub struct PgCluster {
    /// Removed on drop, after the server stopped.
    folder: tempfile::TempDir,
    binaries: PathBuf,
    /// The user that runs the server commands when the test runs as root.
    run_as: Option<String>,
    port: u16,
    running: bool,
}

/// The newest installed PostgreSQL's `bin` folder, if any.
fn installed_binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn output_of(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A loopback port nobody listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

impl PgCluster {
    /// Creates and starts a cluster on a free port, trust authentication for user
    /// `postgres`. `None`, after a printed notice, when PostgreSQL's server binaries are
    /// not installed.
    pub fn start() -> anyhow::Result<Option<Self>> {
        let Some(binaries) = installed_binaries() else {
            eprintln!("skipping: no PostgreSQL server binaries under /usr/lib/postgresql");
            return Ok(None);
        };
        let root = output_of(Command::new("id").arg("-u"))? == "0";
        let folder = tempfile::Builder::new()
            .prefix("gridflow-cluster-")
            .tempdir()
            .context("cannot create the cluster's folder")?;
        let run_as = root.then(|| "postgres".to_owned());
        if root {
            use std::os::unix::fs::PermissionsExt;
            // The server user must reach its data directory inside the folder.
            std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755))?;
            let uid: u32 = output_of(Command::new("id").args(["-u", "postgres"]))?.parse()?;
            let gid: u32 = output_of(Command::new("id").args(["-g", "postgres"]))?.parse()?;
            for sub in ["data", "run"] {
                let path = folder.path().join(sub);
                std::fs::create_dir(&path)?;
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        } else {
            std::fs::create_dir(folder.path().join("run"))?;
        }
        let mut cluster = Self {
            folder,
            binaries,
            run_as,
            port: free_port()?,
            running: false,
        };
        let data = cluster.data();
        output_of(cluster.command("initdb").args([
            "-D",
            &data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]))?;
        cluster.resume()?;
        Ok(Some(cluster))
    }

    fn data(&self) -> String {
        self.folder.path().join("data").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let binary = self.binaries.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(binary);
                command
            }
            None => Command::new(binary),
        }
    }

    /// The url of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The cluster's server log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.folder.path().join("data").join("server.log"))
            .unwrap_or_default()
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let data = self.data();
        let log = Path::new(&data).join("server.log").display().to_string();
        let socket_folder = self.folder.path().join("run").display().to_string();
        let options = format!(
            "-p {} -k {socket_folder} -c listen_addresses=127.0.0.1",
            self.port
        );
        output_of(self.command("pg_ctl").args([
            "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
        ]))?;
        self.running = true;
        Ok(())
    }

    /// Stops the server (fast shutdown: open connections are closed) and waits until it
    /// is down.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.stop("fast")
    }

    fn stop(&mut self, mode: &str) -> anyhow::Result<()> {
        let data = self.data();
        output_of(
            self.command("pg_ctl")
                .args(["-D", &data, "-m", mode, "-w", "-t", "60", "stop"]),
        )?;
        self.running = false;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running
            && let Err(error) = self.stop("immediate")
        {
            eprintln!("cannot stop the test cluster: {error:#}");
        }
    }
}
