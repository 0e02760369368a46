//! Change pollers: turn the changes of systems without webhooks (OTMM, Trading Grid) into
//! events, with the semantics of `POST /events/{source}`: each change is delivered as the
//! event `<source>.<kind>` (starting instances, signalling waiting ones) through
//! [`Engine::deliver_change`].
//!
//! A pass reads the feed after the cursor saved in the store ([`CursorStore`]), delivers
//! each change in order and saves the cursor after each one, so a restart resumes after
//! the last change delivered: nothing missed. A crash between a delivery and its cursor
//! save delivers that change again on restart, and `deliver_change` makes the second
//! delivery a no-op (the started instance's id derives from the change id; a signal
//! already in an instance's history is not sent again): nothing delivered twice.
//!
//! One node at a time polls a source: the holder of the lease `poll:<source>` (as the cron
//! scheduler's lease), so several nodes on one PostgreSQL do not deliver a change each.
//!
//! One node at a time polls a source: the lease is taken at the start of a pass and
//! renewed before each change, and a pass that loses it stops at once.
//!
//! A trigger whose input does not render or match its definition's schema for a change
//! cannot succeed by retrying: `deliver_change` logs it as an error and still starts the
//! other triggers and signals the waiting instances. A change whose delivery is refused
//! as a whole as invalid is logged and skipped, so one bad change does not stop the feed.
//! Any other failure (the system or the database unreachable) ends the pass without
//! moving the cursor; the next pass tries again.
//!
//! [`CursorStore`]: gridflow_store::CursorStore

use std::time::Duration;

use gridflow_connectors::feed::SharedFeed;
use gridflow_core::InstanceId;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::scheduler::chrono_duration;

/// Settings of the pollers of one node.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    /// This node's name as a lease holder; unique per running process.
    pub node: String,
    /// How long a taken or renewed lease lasts; keep it above the poll interval.
    pub lease_duration: Duration,
    /// Changes asked for per read of a feed.
    pub page_size: usize,
    /// Reads per pass at most, so that a long backlog does not hold the lease forever
    /// without renewing it; the rest waits for the next pass.
    pub max_pages: usize,
}

impl Default for PollerOptions {
    fn default() -> Self {
        Self {
            node: format!("node-{}", uuid::Uuid::now_v7()),
            lease_duration: Duration::from_secs(120),
            page_size: 100,
            max_pages: 50,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollPass {
    /// Whether this node held the lease (otherwise it read nothing).
    pub leader: bool,
    /// Changes delivered (including ones that turned out to be already delivered).
    pub delivered: usize,
    /// Changes skipped because their delivery was invalid.
    pub skipped: usize,
    /// Instances started.
    pub started: Vec<InstanceId>,
    /// Instances signalled.
    pub signalled: Vec<InstanceId>,
}

/// The poller of one system's change feed.
#[derive(Clone)]
pub struct Poller {
    engine: Engine,
    feed: SharedFeed,
    options: PollerOptions,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("source", &self.feed.source())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// A poller delivering `feed`'s changes to `engine`.
    pub fn new(engine: Engine, feed: SharedFeed, options: PollerOptions) -> Self {
        Self {
            engine,
            feed,
            options,
        }
    }

    /// The name of the lease whose holder polls this source.
    pub fn lease_name(&self) -> String {
        format!("poll:{}", self.feed.source())
    }

    /// Runs a pass every poll interval of the feed until the task is aborted. A failed
    /// pass is logged and the next one tries again.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let source = self.feed.source().to_owned();
            tracing::info!(%source, interval = ?self.feed.poll_interval(), "polling for changes");
            loop {
                if let Err(error) = self.poll().await {
                    tracing::warn!(%source, %error, "change poll failed; trying again at the next interval");
                }
                tokio::time::sleep(self.feed.poll_interval()).await;
            }
        })
    }

    /// Gives the lease up (at shutdown), so another node takes over at once.
    pub async fn release(&self) -> Result<()> {
        let store = &self.engine.shared().store;
        Ok(store
            .release_lease(&self.lease_name(), &self.options.node)
            .await?)
    }

    /// One pass: takes or renews the lease, then reads the feed after the saved cursor
    /// and delivers each change, saving the cursor after each, until the feed has nothing
    /// more (or `max_pages` reads).
    pub async fn poll(&self) -> Result<PollPass> {
        let shared = self.engine.shared();
        let source = self.feed.source();
        let lease = self.lease_name();
        // Taken here, and renewed before every change: a long backlog must not outlast the
        // lease and let a second node deliver the same changes alongside this one.
        let renew = || async {
            let now = shared.clock.now();
            let expires_at = now + chrono_duration(self.options.lease_duration);
            shared
                .store
                .acquire_lease(&lease, &self.options.node, now, expires_at)
                .await
        };
        let mut pass = PollPass {
            leader: renew().await?,
            ..PollPass::default()
        };
        if !pass.leader {
            return Ok(pass);
        }
        let mut cursor = shared.store.load_cursor(source).await?;
        for _ in 0..self.options.max_pages.max(1) {
            let page = self
                .feed
                .changes(cursor.as_deref(), self.options.page_size)
                .await
                .map_err(|error| {
                    Error::Unavailable(format!("reading the {source} changes: {error}"))
                })?;
            for change in page.changes {
                if !renew().await? {
                    tracing::warn!(%source, "poll lease lost mid-pass; another node goes on from the saved cursor");
                    pass.leader = false;
                    return Ok(pass);
                }
                let name = format!("{source}.{}", change.kind);
                // One claim with the source's webhooks: an event that also came (or comes)
                // by callback is delivered once.
                match self
                    .engine
                    .deliver_change_once(
                        source,
                        &change.id,
                        &name,
                        &change.data,
                        &format!("poller:{source}"),
                    )
                    .await
                {
                    Ok(delivered) => {
                        pass.delivered += 1;
                        pass.started.extend(delivered.outcome.started);
                        pass.signalled.extend(delivered.outcome.signalled);
                    }
                    Err(Error::LimitExceeded(exceeded)) => {
                        tracing::error!(event = %name, change = %change.id, limit = %exceeded.key(),
                            problem = %exceeded, "change skipped: it exceeds a limit");
                        pass.skipped += 1;
                    }
                    Err(Error::Invalid { message, details }) => {
                        let problems: Vec<String> = details
                            .iter()
                            .map(|detail| format!("{}: {}", detail.path, detail.message))
                            .collect();
                        tracing::error!(event = %name, change = %change.id, %message, ?problems,
                            "change skipped: its delivery is invalid and cannot succeed by retrying");
                        pass.skipped += 1;
                    }
                    Err(error) => return Err(error),
                }
                shared
                    .store
                    .save_cursor(source, &change.cursor, shared.clock.now())
                    .await?;
                cursor = Some(change.cursor);
            }
            if cursor.as_deref() != Some(page.cursor.as_str()) {
                shared
                    .store
                    .save_cursor(source, &page.cursor, shared.clock.now())
                    .await?;
                cursor = Some(page.cursor);
            }
            if !page.more {
                break;
            }
        }
        Ok(pass)
    }
}
