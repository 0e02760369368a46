//! `GET /metrics` (at the root, without a token): Prometheus metrics in the OpenMetrics
//! text format, which Prometheus scrapes natively.
//!
//! Each scrape reads the store's counts (instances by status, queued work) and the
//! engine's counters and histograms, and encodes them with `prometheus-client` through a
//! collector over that snapshot, so the engine keeps no metrics library of its own.
//!
//! Metrics: `gridflow_instances{status}`, `gridflow_work_queue_depth`,
//! `gridflow_steps_started_total`, `gridflow_steps_succeeded_total`,
//! `gridflow_steps_failed_total` (action attempts), `gridflow_commits_total`,
//! `gridflow_commit_batch_size` (histogram of instance writes per group commit),
//! `gridflow_approval_wait_seconds` (histogram of approval waiting times), and per
//! definition `gridflow_trigger_events_filtered_total{definition}` (events a trigger's
//! `when` was false for) and `gridflow_trigger_filter_errors_total{definition}` (events
//! it failed on); neither starts anything.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use gridflow_core::InstanceStatus;
use gridflow_runtime::{HistogramSnapshot, HistogramsSnapshot, StatsSnapshot, TriggerFilterCounts};

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every status, so that a status without instances is reported as 0, not left out.
const STATUSES: [InstanceStatus; 5] = [
    InstanceStatus::Running,
    InstanceStatus::Waiting,
    InstanceStatus::Completed,
    InstanceStatus::Failed,
    InstanceStatus::Cancelled,
];

/// Everything one scrape reports.
#[derive(Debug)]
struct Scrape {
    instances: Vec<(InstanceStatus, u64)>,
    queue_depth: u64,
    stats: StatsSnapshot,
    histograms: HistogramsSnapshot,
    trigger_filters: Vec<TriggerFilterCounts>,
}

/// A counter with one series per definition.
fn per_definition(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (definition, value) in values {
        family
            .encode_family(&[("definition", definition.as_str())])?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    histogram: &HistogramSnapshot,
) -> std::fmt::Result {
    // prometheus-client wants per-bucket counts and accumulates them itself.
    let mut previous = 0;
    let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(histogram.buckets.len() + 1);
    for (bound, cumulative) in &histogram.buckets {
        buckets.push((*bound, cumulative.saturating_sub(previous)));
        previous = *cumulative;
    }
    buckets.push((f64::INFINITY, histogram.count.saturating_sub(previous)));
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(histogram.sum, histogram.count, &buckets, None)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        {
            let mut instances = encoder.encode_descriptor(
                "instances",
                "Instances by status",
                None,
                MetricType::Gauge,
            )?;
            for status in STATUSES {
                let count = self
                    .instances
                    .iter()
                    .find(|(counted, _)| *counted == status)
                    .map_or(0, |(_, count)| *count);
                instances
                    .encode_family(&[("status", status.as_str())])?
                    .encode_gauge(&count)?;
            }
        }
        encoder
            .encode_descriptor(
                "work_queue_depth",
                "Queued work items: dispatched action attempts not yet reported back",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&self.queue_depth)?;
        counter(
            &mut encoder,
            "steps_started",
            "Action attempts started",
            self.stats.actions_started,
        )?;
        counter(
            &mut encoder,
            "steps_succeeded",
            "Action attempts that succeeded",
            self.stats.actions_succeeded,
        )?;
        counter(
            &mut encoder,
            "steps_failed",
            "Action attempts that failed (each retry counts)",
            self.stats.actions_failed,
        )?;
        counter(&mut encoder, "commits", "Group commits", self.stats.commits)?;
        histogram(
            &mut encoder,
            "commit_batch_size",
            "Instance writes per group commit",
            &self.histograms.commit_batch_size,
        )?;
        histogram(
            &mut encoder,
            "approval_wait_seconds",
            "Seconds from an approval's request to its decision",
            &self.histograms.approval_wait_seconds,
        )?;
        let filters = &self.trigger_filters;
        per_definition(
            &mut encoder,
            "trigger_events_filtered",
            "Events a trigger's when filter was false for (nothing started)",
            filters
                .iter()
                .map(|counts| (counts.definition.clone(), counts.filtered)),
        )?;
        per_definition(
            &mut encoder,
            "trigger_filter_errors",
            "Events a trigger's when filter failed on (nothing started)",
            filters
                .iter()
                .map(|counts| (counts.definition.clone(), counts.failed)),
        )
    }
}

/// Encodes a scrape; separate from the handler so that tests read the text directly.
fn encode(scrape: Scrape) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("gridflow");
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let scrape = Scrape {
        instances: state.engine.instance_counts().await?,
        queue_depth: state.engine.queued_work_count().await?,
        stats: state.engine.stats(),
        histograms: state.engine.histograms(),
        trigger_filters: state.engine.trigger_filter_counts(),
    };
    let text = encode(scrape)
        .map_err(|error| ApiError::internal(format!("encoding metrics failed: {error}")))?;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(buckets: Vec<(f64, u64)>, sum: f64, count: u64) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets,
            sum,
            count,
        }
    }

    #[test]
    fn scrape_is_encoded_with_every_status_and_cumulative_buckets() {
        let text = encode(Scrape {
            instances: vec![(InstanceStatus::Running, 3), (InstanceStatus::Failed, 1)],
            queue_depth: 7,
            stats: StatsSnapshot {
                actions_started: 10,
                actions_succeeded: 8,
                actions_failed: 2,
                commits: 5,
                ..StatsSnapshot::default()
            },
            histograms: HistogramsSnapshot {
                commit_batch_size: snapshot(vec![(1.0, 2), (2.0, 3)], 9.0, 4),
                approval_wait_seconds: snapshot(vec![(60.0, 0)], 0.0, 0),
            },
            trigger_filters: vec![TriggerFilterCounts {
                definition: "partner-request".to_owned(),
                filtered: 4,
                failed: 1,
            }],
        })
        .unwrap();
        for line in [
            "gridflow_instances{status=\"running\"} 3",
            "gridflow_instances{status=\"waiting\"} 0",
            "gridflow_instances{status=\"failed\"} 1",
            "gridflow_work_queue_depth 7",
            "gridflow_steps_started_total 10",
            "gridflow_steps_succeeded_total 8",
            "gridflow_steps_failed_total 2",
            "gridflow_commit_batch_size_bucket{le=\"1.0\"} 2",
            "gridflow_commit_batch_size_bucket{le=\"2.0\"} 3",
            "gridflow_commit_batch_size_bucket{le=\"+Inf\"} 4",
            "gridflow_commit_batch_size_count 4",
            "gridflow_approval_wait_seconds_count 0",
            "gridflow_trigger_events_filtered_total{definition=\"partner-request\"} 4",
            "gridflow_trigger_filter_errors_total{definition=\"partner-request\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
