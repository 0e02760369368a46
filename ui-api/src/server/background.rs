//! The engine's background work on this node: one poller per change feed, the cron
//! scheduler and the rights timer, started once the application answers and stopped, with their leases given
//! away, when the server stops.

use std::time::Duration;

use tokio::task::JoinHandle;

use gridflow_runtime::{
    Engine, Poller, PollerOptions, RightsOptions, RightsTimer, Scheduler, SchedulerOptions,
};

/// The running pollers, scheduler and rights timer.
pub(crate) struct Background {
    pollers: Vec<(Poller, JoinHandle<()>)>,
    scheduler: Scheduler,
    scheduler_task: JoinHandle<()>,
    rights: RightsTimer,
    rights_task: JoinHandle<()>,
}

impl Background {
    /// Starts a poller per change feed of the engine's registry, the scheduler and the
    /// rights timer.
    pub(crate) fn start(engine: &Engine, scheduler_options: SchedulerOptions) -> Self {
        // The pollers share the scheduler's node name as lease holder; each lease outlives
        // a few of its poll intervals, so it lapses only when the node stops polling.
        let pollers: Vec<Poller> = engine
            .registry()
            .change_feeds()
            .into_iter()
            .map(|feed| {
                let options = PollerOptions {
                    node: scheduler_options.node.clone(),
                    lease_duration: (feed.poll_interval() * 3).max(Duration::from_secs(30)),
                    ..PollerOptions::default()
                };
                Poller::new(engine.clone(), feed, options)
            })
            .collect();
        let pollers = pollers
            .into_iter()
            .map(|poller| {
                let task = poller.clone().spawn();
                (poller, task)
            })
            .collect();
        let rights = RightsTimer::new(
            engine.clone(),
            RightsOptions {
                node: scheduler_options.node.clone(),
                ..RightsOptions::default()
            },
        );
        let rights_task = rights.clone().spawn();
        let scheduler = Scheduler::new(engine.clone(), scheduler_options);
        let scheduler_task = scheduler.clone().spawn();
        Self {
            pollers,
            scheduler,
            scheduler_task,
            rights,
            rights_task,
        }
    }

    /// Stops the scheduler and the pollers, then gives their leases away so that another
    /// node takes over at once.
    pub(crate) async fn stop(self) {
        self.scheduler_task.abort();
        self.rights_task.abort();
        let _ = self.rights_task.await;
        if let Err(error) = self.rights.release().await {
            tracing::warn!(%error, "cannot release the rights lease; another node takes over when it expires");
        }
        for (poller, task) in self.pollers {
            task.abort();
            // Wait for the aborted pass to end before giving the lease away.
            let _ = task.await;
            if let Err(error) = poller.release().await {
                tracing::warn!(%error, lease = %poller.lease_name(), "cannot release the poll lease; another node takes over when it expires");
            }
        }
        if let Err(error) = self.scheduler.release().await {
            tracing::warn!(%error, "cannot release the cron lease; another node takes over when it expires");
        }
    }
}
