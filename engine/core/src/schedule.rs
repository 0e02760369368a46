//! Cron arithmetic for triggers, on instants passed in: the next tick after an instant,
//! the ticks in an interval, the catch-up plan after downtime and the overlap decision.
//!
//! Nothing here reads a clock: the runtime's scheduler passes `now` in.
//! Instants are UTC; the cron expression is read in the trigger's IANA time zone.
//!
//! Local times that a daylight-saving change skips or repeats:
//! - a tick whose local time does not exist (02:30 on a spring-forward day in
//!   America/New_York) fires at the first instant after the gap (03:00 local), like
//!   Vixie cron; several ticks inside one gap collapse into that one instant;
//! - a tick whose local time happens twice (01:xx on a fall-back day) fires in both
//!   passes when the expression's hour field is `*` (an hourly or more frequent job
//!   keeps its rhythm in real time), and only in the first pass otherwise (a daily job
//!   still runs once a day).
//!
//! Overlap policy (what a tick does while the instance of an earlier tick of the same
//! trigger still runs), as [`overlap_decision`] decides it:
//! - `allow`: start;
//! - `skip`: start when nothing runs, else skip the tick;
//! - `buffer_one`: start when nothing runs, else remember the tick when none is
//!   remembered yet (started when the running instance finishes), else skip it.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use cron::TimeUnitSpec;

use crate::definition::{CatchUp, Overlap, Trigger};

/// The most missed ticks that one catch-up fires with [`CatchUp::All`]: the most recent
/// ones are kept, older ones are dropped (and counted in [`Plan::dropped`]). It bounds
/// the burst of instances after a long downtime of a frequent schedule.
pub const MAX_CATCH_UP: usize = 100;

/// How many cron candidates one computation looks at before giving up. A schedule that
/// matches nothing for that long (a day-of-month that never exists) has no next tick.
const SEARCH_LIMIT: usize = 200_000;

/// How far past a skipped local time the first existing minute is searched (gaps are at
/// most a few hours in every IANA zone).
const GAP_SEARCH_MINUTES: i64 = 24 * 60;

/// Why a cron trigger cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The expression does not parse.
    #[error("invalid cron expression {expression:?}: {message}")]
    Cron {
        /// The expression.
        expression: String,
        /// The parser's complaint.
        message: String,
    },
    /// The time zone is not an IANA name.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
}

/// A cron expression (cron crate syntax, with seconds) in an IANA time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedule: cron::Schedule,
    timezone: Tz,
    /// The hour field is `*`: repeated local hours fire twice.
    every_hour: bool,
}

/// Ticks found in an interval, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticks {
    /// The ticks, oldest first, at most the limit asked for (the most recent ones).
    pub ticks: Vec<DateTime<Utc>>,
    /// Whether older ticks in the interval were left out because of the limit.
    pub truncated: bool,
}

impl CronSchedule {
    /// Parses `expression` in `timezone` (UTC when `None`).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, Error> {
        let schedule = cron::Schedule::from_str(expression).map_err(|error| Error::Cron {
            expression: expression.to_owned(),
            message: error.to_string(),
        })?;
        let timezone = match timezone {
            Some(name) => Tz::from_str(name).map_err(|_| Error::TimeZone(name.to_owned()))?,
            None => Tz::UTC,
        };
        let every_hour = schedule.hours().is_all();
        Ok(Self {
            schedule,
            timezone,
            every_hour,
        })
    }

    /// The schedule of a cron trigger; `None` for an event trigger.
    pub fn of_trigger(trigger: &Trigger) -> Result<Option<Self>, Error> {
        trigger
            .cron
            .as_deref()
            .map(|expression| Self::parse(expression, trigger.timezone.as_deref()))
            .transpose()
    }

    /// The time zone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first tick strictly after `after`, or `None` when the schedule never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone).naive_local();
        // Inside a repeated hour, local times a little earlier than `local` may still be
        // ahead in real time (the second pass): start the search before them.
        let start = local - self.repeated_span(local);
        self.schedule
            .after(&Utc.from_utc_datetime(&start))
            .take(SEARCH_LIMIT)
            .flat_map(|candidate| self.instants(candidate.naive_utc()))
            .find(|instant| *instant > after)
    }

    /// The ticks in `(after, until]`, oldest first; at most `limit`, the most recent ones.
    pub fn ticks_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, limit: usize) -> Ticks {
        let mut ticks: Vec<DateTime<Utc>> = Vec::new();
        let mut truncated = false;
        if until <= after {
            return Ticks { ticks, truncated };
        }
        let local = until.with_timezone(&self.timezone).naive_local();
        // Walk backwards from just past `until` (inside a repeated hour, local times a
        // little later than `local` may still be behind in real time). The reverse
        // iterator yields candidates strictly before its start, hence the extra second.
        let start = local + self.repeated_span(local) + Duration::seconds(1);
        'candidates: for candidate in self
            .schedule
            .after(&Utc.from_utc_datetime(&start))
            .rev()
            .take(SEARCH_LIMIT)
        {
            for instant in self.instants(candidate.naive_utc()).into_iter().rev() {
                if instant > until || ticks.last() == Some(&instant) {
                    continue;
                }
                if instant <= after {
                    break 'candidates;
                }
                if ticks.len() == limit {
                    truncated = true;
                    break 'candidates;
                }
                ticks.push(instant);
            }
        }
        ticks.reverse();
        Ticks { ticks, truncated }
    }

    /// The instants at which a tick at local wall-clock time `local` fires, ascending.
    fn instants(&self, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(instant) => vec![instant.with_timezone(&Utc)],
            LocalResult::Ambiguous(earlier, later) => {
                if self.every_hour {
                    vec![earlier.with_timezone(&Utc), later.with_timezone(&Utc)]
                } else {
                    vec![earlier.with_timezone(&Utc)]
                }
            }
            LocalResult::None => self.gap_end(local).into_iter().collect(),
        }
    }

    /// The first instant after the daylight-saving gap that `local` falls into: the
    /// first whole local minute after `local` that exists.
    fn gap_end(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let minute = local.with_second(0)?.with_nanosecond(0)?;
        (1..=GAP_SEARCH_MINUTES).find_map(|minutes| {
            self.timezone
                .from_local_datetime(&(minute + Duration::minutes(minutes)))
                .earliest()
                .map(|instant| instant.with_timezone(&Utc))
        })
    }

    /// How long the local time `local` is repeated for (zero unless it is ambiguous).
    fn repeated_span(&self, local: NaiveDateTime) -> Duration {
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Ambiguous(earlier, later) => later.signed_duration_since(earlier),
            LocalResult::Single(_) | LocalResult::None => Duration::zero(),
        }
    }
}

/// Which ticks to fire now, as [`plan`] decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The ticks to fire, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Missed ticks that are not fired (a lower bound when [`Plan::truncated`]).
    pub dropped: usize,
    /// Whether ticks older than the last [`MAX_CATCH_UP`] were not even looked at.
    pub truncated: bool,
    /// The most recent tick in the interval, fired or not: the next plan starts after it.
    pub latest: Option<DateTime<Utc>>,
}

/// Which ticks of `schedule` in `(last, now]` to fire at `now` under `catch_up`.
///
/// A tick at most `grace` old is on time and always fires; older ones were missed
/// (downtime, or no node held the lease) and fire as the policy says: `none` drops them,
/// `last` fires the most recent one, `all` fires them all, at most [`MAX_CATCH_UP`]
/// ticks in one plan (the most recent ones).
pub fn plan(
    schedule: &CronSchedule,
    catch_up: CatchUp,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Plan {
    let Ticks { ticks, truncated } = schedule.ticks_between(last, now, MAX_CATCH_UP);
    let latest = ticks.last().copied();
    let on_time_from = now - grace;
    let missed = ticks.iter().filter(|tick| **tick < on_time_from).count();
    let (missed_ticks, on_time) = ticks.split_at(missed);
    let fired_missed: &[DateTime<Utc>] = match catch_up {
        CatchUp::None => &[],
        CatchUp::Last => missed_ticks.last().map(std::slice::from_ref).unwrap_or(&[]),
        CatchUp::All => missed_ticks,
    };
    let mut fire = fired_missed.to_vec();
    fire.extend_from_slice(on_time);
    Plan {
        dropped: missed - fired_missed.len(),
        fire,
        truncated,
        latest,
    }
}

/// What a due tick does, given the trigger's overlap policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickAction {
    /// Start an instance now.
    Start,
    /// Remember the tick; start it when the running instance finishes.
    Buffer,
    /// Do nothing for this tick.
    Skip,
}

/// The overlap decision for a due tick: `previous_running` says whether an instance
/// started by this trigger still runs, `buffered` whether a tick is remembered already.
pub fn overlap_decision(policy: Overlap, previous_running: bool, buffered: bool) -> TickAction {
    match (policy, previous_running, buffered) {
        (Overlap::Allow, _, _) | (Overlap::Skip | Overlap::BufferOne, false, _) => {
            TickAction::Start
        }
        (Overlap::Skip, true, _) | (Overlap::BufferOne, true, true) => TickAction::Skip,
        (Overlap::BufferOne, true, false) => TickAction::Buffer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instants are RFC 3339")
            .with_timezone(&Utc)
    }

    fn new_york(expression: &str) -> CronSchedule {
        CronSchedule::parse(expression, Some("America/New_York")).unwrap()
    }

    /// The ticks found by following `next_after` from `from`, `count` of them.
    fn chain(schedule: &CronSchedule, from: &str, count: usize) -> Vec<DateTime<Utc>> {
        let mut ticks = Vec::new();
        let mut after = at(from);
        for _ in 0..count {
            after = schedule.next_after(after).unwrap();
            ticks.push(after);
        }
        ticks
    }

    fn instants(texts: &[&str]) -> Vec<DateTime<Utc>> {
        texts.iter().map(|text| at(text)).collect()
    }

    #[test]
    fn daily_job_in_the_spring_forward_gap_fires_when_the_gap_ends() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
        let schedule = new_york("0 30 2 * * *");
        let expected = instants(&[
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT, the end of the gap
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ]);
        assert_eq!(chain(&schedule, "2026-03-07T00:00:00Z", 3), expected);
        let ticks =
            schedule.ticks_between(at("2026-03-07T00:00:00Z"), at("2026-03-09T12:00:00Z"), 10);
        assert_eq!(ticks.ticks, expected);
        assert!(!ticks.truncated);
    }

    #[test]
    fn hourly_job_fires_in_both_passes_of_the_repeated_fall_back_hour() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00 local happens twice.
        let schedule = new_york("0 0 * * * *");
        let expected = instants(&[
            "2026-11-01T04:00:00Z", // 00:00 EDT
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T06:00:00Z", // 01:00 EST
            "2026-11-01T07:00:00Z", // 02:00 EST
            "2026-11-01T08:00:00Z", // 03:00 EST
        ]);
        assert_eq!(chain(&schedule, "2026-11-01T03:30:00Z", 5), expected);
        let ticks =
            schedule.ticks_between(at("2026-11-01T03:30:00Z"), at("2026-11-01T08:00:00Z"), 10);
        assert_eq!(ticks.ticks, expected);
    }

    #[test]
    fn next_tick_from_inside_either_pass_of_the_repeated_hour() {
        let schedule = new_york("0 0 * * * *");
        // 01:30 EDT, first pass: the next tick is 01:00 EST.
        assert_eq!(
            schedule.next_after(at("2026-11-01T05:30:00Z")),
            Some(at("2026-11-01T06:00:00Z"))
        );
        // 01:30 EST, second pass: the next tick is 02:00 EST.
        assert_eq!(
            schedule.next_after(at("2026-11-01T06:30:00Z")),
            Some(at("2026-11-01T07:00:00Z"))
        );
        // Counting back from inside the first pass does not see the second one.
        let ticks =
            schedule.ticks_between(at("2026-11-01T04:30:00Z"), at("2026-11-01T05:30:00Z"), 10);
        assert_eq!(ticks.ticks, instants(&["2026-11-01T05:00:00Z"]));
    }

    #[test]
    fn daily_job_in_the_repeated_hour_fires_once() {
        let schedule = new_york("0 30 1 * * *");
        assert_eq!(
            chain(&schedule, "2026-10-31T12:00:00Z", 3),
            instants(&[
                "2026-11-01T05:30:00Z", // 01:30 EDT, the first pass only
                "2026-11-02T06:30:00Z", // 01:30 EST
                "2026-11-03T06:30:00Z",
            ])
        );
    }

    #[test]
    fn hourly_job_fires_once_for_the_skipped_spring_forward_hour() {
        let schedule = new_york("0 0 * * * *");
        let expected = instants(&[
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT (02:00 does not exist and collapses into it)
            "2026-03-08T08:00:00Z", // 04:00 EDT
        ]);
        assert_eq!(chain(&schedule, "2026-03-08T05:30:00Z", 3), expected);
        let ticks =
            schedule.ticks_between(at("2026-03-08T05:30:00Z"), at("2026-03-08T08:00:00Z"), 10);
        assert_eq!(ticks.ticks, expected);
    }

    #[test]
    fn ticks_between_keeps_the_most_recent_ones_within_the_limit() {
        let schedule = CronSchedule::parse("0 * * * * *", None).unwrap();
        let ticks =
            schedule.ticks_between(at("2026-05-01T00:00:00Z"), at("2026-05-01T01:00:00Z"), 3);
        assert_eq!(
            ticks.ticks,
            instants(&[
                "2026-05-01T00:58:00Z",
                "2026-05-01T00:59:00Z",
                "2026-05-01T01:00:00Z"
            ])
        );
        assert!(ticks.truncated);
        // The interval is half-open: a tick at `after` is not in it.
        let ticks =
            schedule.ticks_between(at("2026-05-01T00:58:00Z"), at("2026-05-01T00:59:30Z"), 10);
        assert_eq!(ticks.ticks, instants(&["2026-05-01T00:59:00Z"]));
        assert!(
            schedule
                .ticks_between(at("2026-05-01T01:00:00Z"), at("2026-05-01T01:00:00Z"), 10)
                .ticks
                .is_empty()
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_errors() {
        assert!(matches!(
            CronSchedule::parse("every morning", None),
            Err(Error::Cron { .. })
        ));
        assert_eq!(
            CronSchedule::parse("0 0 7 * * *", Some("Europe/Berln")).err(),
            Some(Error::TimeZone("Europe/Berln".to_owned()))
        );
    }

    /// Hourly ticks; the node was down from 09:10 to 12:00:00.5, so 10:00 and 11:00 were
    /// missed and 12:00 is on time.
    fn after_downtime(catch_up: CatchUp) -> Plan {
        let schedule = CronSchedule::parse("0 0 * * * *", None).unwrap();
        plan(
            &schedule,
            catch_up,
            at("2026-05-01T09:00:00Z"),
            at("2026-05-01T12:00:00.5Z"),
            Duration::seconds(60),
        )
    }

    #[test]
    fn catch_up_none_fires_only_the_tick_on_time() {
        let plan = after_downtime(CatchUp::None);
        assert_eq!(plan.fire, instants(&["2026-05-01T12:00:00Z"]));
        assert_eq!(plan.dropped, 2);
        assert_eq!(plan.latest, Some(at("2026-05-01T12:00:00Z")));
    }

    #[test]
    fn catch_up_last_fires_the_most_recent_missed_tick() {
        let plan = after_downtime(CatchUp::Last);
        assert_eq!(
            plan.fire,
            instants(&["2026-05-01T11:00:00Z", "2026-05-01T12:00:00Z"])
        );
        assert_eq!(plan.dropped, 1);
    }

    #[test]
    fn catch_up_all_fires_every_missed_tick_oldest_first() {
        let plan = after_downtime(CatchUp::All);
        assert_eq!(
            plan.fire,
            instants(&[
                "2026-05-01T10:00:00Z",
                "2026-05-01T11:00:00Z",
                "2026-05-01T12:00:00Z"
            ])
        );
        assert_eq!(plan.dropped, 0);
        assert!(!plan.truncated);
    }

    #[test]
    fn catch_up_all_is_bounded() {
        let schedule = CronSchedule::parse("* * * * * *", None).unwrap();
        let plan = plan(
            &schedule,
            CatchUp::All,
            at("2026-05-01T00:00:00Z"),
            at("2026-05-02T00:00:00Z"),
            Duration::seconds(1),
        );
        assert_eq!(plan.fire.len(), MAX_CATCH_UP);
        assert!(plan.truncated);
        assert_eq!(plan.fire.last(), Some(&at("2026-05-02T00:00:00Z")));
        assert_eq!(plan.latest, Some(at("2026-05-02T00:00:00Z")));
    }

    #[test]
    fn missed_ticks_without_a_tick_on_time() {
        // Down from 09:10 to 11:30: 10:00 and 11:00 missed, nothing on time.
        let schedule = CronSchedule::parse("0 0 * * * *", None).unwrap();
        let last = at("2026-05-01T09:00:00Z");
        let now = at("2026-05-01T11:30:00Z");
        let grace = Duration::seconds(60);
        assert!(
            plan(&schedule, CatchUp::None, last, now, grace)
                .fire
                .is_empty()
        );
        assert_eq!(
            plan(&schedule, CatchUp::Last, last, now, grace).fire,
            instants(&["2026-05-01T11:00:00Z"])
        );
        let none = plan(&schedule, CatchUp::None, last, now, grace);
        assert_eq!(none.latest, Some(at("2026-05-01T11:00:00Z")));
        assert_eq!(none.dropped, 2);
    }

    #[test]
    fn overlap_policies() {
        use TickAction::{Buffer, Skip, Start};
        let cases = [
            (Overlap::Allow, true, false, Start),
            (Overlap::Allow, false, false, Start),
            (Overlap::Skip, false, false, Start),
            (Overlap::Skip, true, false, Skip),
            (Overlap::BufferOne, false, false, Start),
            (Overlap::BufferOne, true, false, Buffer),
            (Overlap::BufferOne, true, true, Skip),
        ];
        for (policy, running, buffered, expected) in cases {
            assert_eq!(
                overlap_decision(policy, running, buffered),
                expected,
                "{policy:?} running={running} buffered={buffered}"
            );
        }
    }
}
