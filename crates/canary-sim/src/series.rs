//! Time series recorded by the simulated cluster.
//!
//! The traffic model writes counters, gauges, histograms and summaries here
//! (Linkerd's `response_total`, Istio's `istio_requests_total`, NGINX's
//! ingress series, ...); the PromQL evaluator in [`super::promql`] reads
//! them back with [`SeriesStore::select`], and [`super::exposition`] renders
//! their current values for a real Prometheus to scrape.
//!
//! The store keeps what a Prometheus scraping the sim would have seen, so
//! the evaluator can answer like one:
//!
//! * with [`Sampling::Scrape`] (the default) every series has a sample on
//!   every multiple of the scrape interval from its first write on,
//!   whether its value changed or not: a counter that stops moving gives a
//!   rate of 0, not "no data". A write at time `t` is first seen by the
//!   scrape at or after `t`;
//! * with [`Sampling::OnChange`] each write is a sample at its own time,
//!   which lets tests place samples exactly;
//! * [`SeriesStore::mark_stale`] ends series the way Prometheus' staleness
//!   markers do (a pod that went away): they drop out of instant vectors at
//!   once and out of range vectors when the range no longer covers them;
//! * samples older than the retention are dropped.
//!
//! Time is always passed in, in milliseconds since the Unix epoch, so tests
//! are deterministic; [`now_ms`] is the wall clock. The store's own clock
//! (up to where series are sampled) is the latest time written or passed to
//! [`SeriesStore::advance_to`], or the wall clock with [`Clock::Wall`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use regex::Regex;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";
/// The label holding a histogram bucket's upper bound.
pub const BUCKET_LABEL: &str = "le";

// Prometheus' staleness marker: a NaN with this exact bit pattern
// (`value.StaleNaN` in prometheus/model/value).
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The value Prometheus stores to mark a series as gone.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is a staleness marker (and not an ordinary NaN).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Wall clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A label set, metric name included as `__name__`, sorted by name as
/// Prometheus sorts labels. Empty values are absent labels, as in
/// Prometheus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Labels from name/value pairs; empty values are dropped.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut labels = Self::new();
        for (k, v) in pairs {
            labels.set(k, v);
        }
        labels
    }

    /// `name` plus `pairs`, as a series' full label set.
    pub fn metric(name: &str, pairs: &[(&str, &str)]) -> Self {
        let mut labels = Self::from_pairs(pairs.iter().copied());
        labels.set(METRIC_NAME, name);
        labels
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The label's value, `""` when absent (how matchers see it).
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Sets a label; an empty value removes it.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.0.remove(&name);
        } else {
            self.0.insert(name, value);
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    pub fn without_metric_name(mut self) -> Self {
        self.0.remove(METRIC_NAME);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Keeps only the named labels.
    pub fn keep(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// Drops the named labels.
    pub fn drop_labels(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(k, _)| !names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// Prometheus' `labels.Labels.String()`: `{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// How a label matcher compares.
#[derive(Clone, Debug)]
pub enum MatchOp {
    Equal,
    NotEqual,
    /// A fully anchored regular expression.
    Regex(Regex),
    NotRegex(Regex),
}

/// A label matcher, as in `{name="value"}`. A missing label matches as
/// the empty string, so `{canary!=""}` selects series that have it.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    pub fn equal(name: &str, value: &str) -> Self {
        Self::with_op(name, MatchOp::Equal, value)
    }

    pub fn not_equal(name: &str, value: &str) -> Self {
        Self::with_op(name, MatchOp::NotEqual, value)
    }

    /// `name=~"pattern"`, anchored at both ends as in PromQL.
    pub fn regex(name: &str, pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self::with_op(
            name,
            MatchOp::Regex(anchored(pattern)?),
            pattern,
        ))
    }

    /// `name!~"pattern"`, anchored at both ends as in PromQL.
    pub fn not_regex(name: &str, pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self::with_op(
            name,
            MatchOp::NotRegex(anchored(pattern)?),
            pattern,
        ))
    }

    /// A matcher from a compiled regular expression that is already
    /// anchored (as the PromQL parser hands them over).
    pub fn with_op(name: &str, op: MatchOp, value: &str) -> Self {
        Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }

    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.value(&self.name))
    }

    /// The one non-empty value this matcher accepts, if there is one: an
    /// equality, or a regular expression that is a plain string (as
    /// `deployment=~"podinfo"` in Flagger's queries).
    fn single_value(&self) -> Option<&str> {
        let plain = |v: &str| {
            !v.is_empty()
                && !v.contains([
                    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
                ])
        };
        match &self.op {
            MatchOp::Equal if !self.value.is_empty() => Some(&self.value),
            MatchOp::Regex(_) if plain(&self.value) => Some(&self.value),
            _ => None,
        }
    }
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// One sample: time in milliseconds, value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// A series and its samples in a time range, oldest first. Samples may
/// include staleness markers ([`is_stale_marker`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The Prometheus metric type of a family, for the exposition's `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
            MetricKind::Untyped => "untyped",
        }
    }
}

/// When series get samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Every write is a sample at the time it was written.
    OnChange,
    /// Every series has a sample at each multiple of `interval_ms`, as a
    /// scraper with that interval would record it.
    Scrape { interval_ms: i64 },
}

/// Where the store's clock comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The latest time written or passed to [`SeriesStore::advance_to`].
    Manual,
    /// The wall clock (or a later time written), for `canary demo`.
    Wall,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub sampling: Sampling,
    /// Samples older than this (relative to the clock) are dropped.
    pub retention_ms: i64,
    pub clock: Clock,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            sampling: Sampling::Scrape { interval_ms: 1000 },
            retention_ms: 60 * 60 * 1000,
            clock: Clock::Manual,
        }
    }
}

impl StoreConfig {
    /// Sampled every second on the wall clock, one hour kept.
    pub fn realtime() -> Self {
        Self {
            clock: Clock::Wall,
            ..Self::default()
        }
    }

    /// Every write is a sample, nothing is filled in; for exact tests.
    pub fn on_change() -> Self {
        Self {
            sampling: Sampling::OnChange,
            ..Self::default()
        }
    }
}

/// A family's current values, for the exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilySnapshot {
    /// The family name (for histograms without `_bucket` / `_sum` / `_count`).
    pub name: String,
    pub kind: MetricKind,
    pub help: Option<String>,
    /// Full label sets (metric name included) and values, sorted.
    pub series: Vec<(Labels, f64)>,
}

/// The thread-safe time series store; share it in an `Arc`.
#[derive(Debug)]
pub struct SeriesStore {
    config: StoreConfig,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every series held.
    series: Vec<Series>,
    /// Positions in `series` by metric name.
    by_name: BTreeMap<String, Vec<usize>>,
    /// Positions in `series` by the hash of the label set ([`pairs_hash`]):
    /// a write finds its series from name/value pairs without building a
    /// label set.
    by_hash: HashMap<u64, Vec<usize>>,
    /// Positions in `series` by label name and value (metric name
    /// excepted): what an equality matcher selects.
    postings: HashMap<String, HashMap<String, Vec<usize>>>,
    families: BTreeMap<String, Family>,
    clock: i64,
    last_prune: i64,
    next_id: u64,
}

#[derive(Debug)]
struct Family {
    kind: MetricKind,
    help: Option<String>,
}

#[derive(Debug)]
struct Series {
    /// Creation order: Prometheus' head block hands series to queries in
    /// this order, which decides the order of floating point sums.
    id: u64,
    labels: Labels,
    family: String,
    /// Change points, oldest first. With [`Sampling::Scrape`] on multiples
    /// of the interval; staleness markers included.
    points: Vec<(i64, f64)>,
    /// The value after the latest write (0 after a staleness marker).
    value: f64,
}

enum Op {
    Add(f64),
    Set(f64),
    Stale,
}

impl Default for SeriesStore {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl SeriesStore {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// The store's current time: what a query without a time is evaluated at.
    pub fn now(&self) -> i64 {
        let clock = self.read().clock;
        self.effective_clock(clock)
    }

    /// Moves the clock forward (series keep being sampled up to it).
    pub fn advance_to(&self, at: i64) {
        let mut inner = self.write();
        inner.clock = inner.clock.max(at);
        self.maybe_prune(&mut inner);
    }

    /// Holds the store for several writes, which readers (queries, the
    /// exposition) then see all at once or not at all: one tick of the
    /// traffic model is one batch.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            inner: self.write(),
        }
    }

    /// Sets a family's `# HELP` text.
    pub fn set_help(&self, family: &str, help: &str) {
        self.batch().set_help(family, help);
    }

    /// Adds `delta` (>= 0) to a counter, creating it at 0 first.
    pub fn counter_add(&self, name: &str, labels: &[(&str, &str)], delta: f64, at: i64) {
        self.batch().counter_add(name, labels, delta, at);
    }

    /// Sets a gauge.
    pub fn gauge_set(&self, name: &str, labels: &[(&str, &str)], value: f64, at: i64) {
        self.batch().gauge_set(name, labels, value, at);
    }

    /// Records one observation in a classic histogram `name` with the given
    /// bucket upper bounds (ascending; `+Inf` is implied).
    pub fn histogram_observe(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        buckets: &[f64],
        at: i64,
    ) {
        self.batch()
            .histogram_observe_many(name, labels, &[(value, 1)], buckets, at);
    }

    /// Records `count` observations of `value`.
    pub fn histogram_observe_n(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        count: u64,
        buckets: &[f64],
        at: i64,
    ) {
        self.batch()
            .histogram_observe_many(name, labels, &[(value, count)], buckets, at);
    }

    /// Records `(value, count)` observations at once: the `_bucket{le}`
    /// series (cumulative), `_sum` and `_count`.
    pub fn histogram_observe_many(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        observations: &[(f64, u64)],
        buckets: &[f64],
        at: i64,
    ) {
        self.batch()
            .histogram_observe_many(name, labels, observations, buckets, at);
    }

    /// Records `count` observations of `value` in a summary without
    /// quantiles (`_sum` and `_count`, like NGINX's upstream latency).
    pub fn summary_observe_n(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        count: u64,
        at: i64,
    ) {
        self.batch()
            .summary_observe_many(name, labels, &[(value, count)], at);
    }

    /// Writes a raw sample (a gauge-like set) into series `labels`, which
    /// must include `__name__`; a staleness marker ends the series. For
    /// tests and backfills.
    pub fn insert_sample(&self, labels: &Labels, t: i64, v: f64) {
        self.batch().insert_sample(labels, t, v);
    }

    /// Resets every live series matching `matchers` to 0, as a restarted
    /// process would (a counter reset).
    pub fn reset(&self, matchers: &[Matcher], at: i64) {
        self.batch().reset(matchers, at);
    }

    /// Ends every series matching `matchers` with a staleness marker (the
    /// pod went away). A later write starts the series again from 0.
    pub fn mark_stale(&self, matchers: &[Matcher], at: i64) {
        self.batch().mark_stale(matchers, at);
    }

    /// The number of series held (live or not yet expired).
    pub fn series_count(&self) -> usize {
        self.read().series.len()
    }

    /// The samples of every series matching all `matchers` with
    /// `start <= t <= end`, in the order the series were created (as
    /// Prometheus' head block returns them); series without samples there
    /// are left out. Staleness markers are included.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<SeriesData> {
        let inner = self.read();
        let clock = self.effective_clock(inner.clock);
        let start = start.max(clock - self.config.retention_ms);
        let mut out: Vec<(u64, SeriesData)> = inner
            .matching(matchers)
            .filter_map(|s| {
                let mut samples = Vec::new();
                self.expand(&s.points, start, end, clock, &mut samples);
                (!samples.is_empty()).then(|| {
                    let labels = s.labels.clone();
                    (s.id, SeriesData { labels, samples })
                })
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// The latest sample with `start <= t <= end` of every series matching
    /// `matchers` (what an instant vector selector looks back for), in
    /// creation order. It may be a staleness marker.
    pub fn select_latest(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Vec<(Labels, Sample)> {
        let inner = self.read();
        let clock = self.effective_clock(inner.clock);
        let start = start.max(clock - self.config.retention_ms);
        let mut out: Vec<(u64, Labels, Sample)> = inner
            .matching(matchers)
            .filter_map(|s| {
                self.latest(&s.points, start, end, clock)
                    .map(|sample| (s.id, s.labels.clone(), sample))
            })
            .collect();
        out.sort_by_key(|(id, _, _)| *id);
        out.into_iter().map(|(_, l, s)| (l, s)).collect()
    }

    /// Every family with the values of its live series at `at`.
    pub fn snapshot(&self, at: i64) -> Vec<FamilySnapshot> {
        let inner = self.read();
        let limit = match self.config.sampling {
            Sampling::OnChange => at,
            Sampling::Scrape { interval_ms } => ceil_to(at, interval_ms),
        };
        let mut by_family: BTreeMap<&str, Vec<(Labels, f64)>> = BTreeMap::new();
        for s in inner.by_name.values().flatten().map(|&i| &inner.series[i]) {
            let i = s.points.partition_point(|p| p.0 <= limit);
            if i == 0 || is_stale_marker(s.points[i - 1].1) {
                continue;
            }
            by_family
                .entry(s.family.as_str())
                .or_default()
                .push((s.labels.clone(), s.points[i - 1].1));
        }
        by_family
            .into_iter()
            .map(|(name, mut series)| {
                series.sort_by(|a, b| a.0.cmp(&b.0));
                let family = inner.families.get(name);
                FamilySnapshot {
                    name: name.to_string(),
                    kind: family.map_or(MetricKind::Untyped, |f| f.kind),
                    help: family.and_then(|f| f.help.clone()),
                    series,
                }
            })
            .collect()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn effective_clock(&self, clock: i64) -> i64 {
        match self.config.clock {
            Clock::Manual => clock,
            Clock::Wall => clock.max(now_ms()),
        }
    }

    /// Writes to series `index` of `inner.series`.
    fn apply(&self, inner: &mut Inner, index: usize, op: Op, at: i64) {
        let t = match self.config.sampling {
            Sampling::OnChange => at,
            Sampling::Scrape { interval_ms } => ceil_to(at, interval_ms),
        };
        inner.clock = inner.clock.max(at);
        let series = &mut inner.series[index];
        let last = series.points.last().copied();
        // Late writes land on the latest sample: samples never move back.
        let t = last.map_or(t, |(lt, _)| t.max(lt));
        let value = match op {
            Op::Stale => {
                if last.is_none_or(|(_, v)| is_stale_marker(v)) {
                    return;
                }
                series.value = 0.0;
                stale_marker()
            }
            Op::Add(delta) => {
                series.value += delta;
                series.value
            }
            Op::Set(v) => {
                series.value = v;
                v
            }
        };
        match series.points.last_mut() {
            Some(p) if p.0 == t => p.1 = value,
            _ => series.points.push((t, value)),
        }
    }

    fn maybe_prune(&self, inner: &mut Inner) {
        let retention = self.config.retention_ms;
        if inner.clock - inner.last_prune < (retention / 16).max(1000) {
            return;
        }
        inner.last_prune = inner.clock;
        let cutoff = inner.clock - retention;
        let before = inner.series.len();
        inner.series.retain_mut(|s| {
            // Keep the last sample before the cutoff: it still gives the
            // value at the cutoff.
            let i = s.points.partition_point(|p| p.0 < cutoff);
            if i > 1 {
                s.points.drain(..i - 1);
            }
            !(s.points.len() == 1 && is_stale_marker(s.points[0].1) && s.points[0].0 < cutoff)
        });
        if inner.series.len() != before {
            inner.reindex();
        }
    }

    /// Appends the samples of a series with change points `points` in
    /// `[lo, hi]` to `out`.
    fn expand(&self, points: &[(i64, f64)], lo: i64, hi: i64, clock: i64, out: &mut Vec<Sample>) {
        let Some(&(last_t, _)) = points.last() else {
            return;
        };
        match self.config.sampling {
            Sampling::OnChange => {
                let i = points.partition_point(|p| p.0 < lo);
                out.extend(
                    points[i..]
                        .iter()
                        .take_while(|p| p.0 <= hi)
                        .map(|&(t, v)| Sample { t, v }),
                );
            }
            Sampling::Scrape { interval_ms } => {
                let hi = hi.min(floor_to(clock, interval_ms).max(last_t));
                let mut t = ceil_to(lo.max(points[0].0), interval_ms);
                let mut i = points.partition_point(|p| p.0 <= t);
                while t <= hi {
                    while i < points.len() && points[i].0 <= t {
                        i += 1;
                    }
                    let (pt, v) = points[i - 1];
                    if is_stale_marker(v) {
                        if pt == t {
                            out.push(Sample { t, v });
                        }
                        match points.get(i) {
                            Some(&(next, _)) => t = next.max(t + interval_ms),
                            None => break,
                        }
                        continue;
                    }
                    out.push(Sample { t, v });
                    t += interval_ms;
                }
            }
        }
    }

    /// The latest sample of a series in `[lo, hi]`, as [`Self::expand`]
    /// would produce it.
    fn latest(&self, points: &[(i64, f64)], lo: i64, hi: i64, clock: i64) -> Option<Sample> {
        let &(last_t, _) = points.last()?;
        let t = match self.config.sampling {
            Sampling::OnChange => hi,
            Sampling::Scrape { interval_ms } => floor_to(
                hi.min(floor_to(clock, interval_ms).max(last_t)),
                interval_ms,
            ),
        };
        let i = points.partition_point(|p| p.0 <= t);
        if i == 0 {
            return None;
        }
        let (pt, v) = points[i - 1];
        let t = if is_stale_marker(v) || self.config.sampling == Sampling::OnChange {
            pt
        } else {
            t
        };
        (t >= lo).then_some(Sample { t, v })
    }
}

/// Writes done under one lock; see [`SeriesStore::batch`]. Its methods are
/// those of the store.
pub struct Batch<'a> {
    store: &'a SeriesStore,
    inner: RwLockWriteGuard<'a, Inner>,
}

impl Batch<'_> {
    /// Sets a family's `# HELP` text.
    pub fn set_help(&mut self, family: &str, help: &str) {
        let entry = self
            .inner
            .families
            .entry(family.to_string())
            .or_insert_with(|| Family {
                kind: MetricKind::Untyped,
                help: None,
            });
        entry.help = Some(help.to_string());
    }

    /// Adds `delta` (>= 0) to a counter, creating it at 0 first.
    pub fn counter_add(&mut self, name: &str, labels: &[(&str, &str)], delta: f64, at: i64) {
        debug_assert!(delta >= 0.0, "counters only go up: {name} += {delta}");
        self.inner.register(name, MetricKind::Counter);
        let i = self.inner.series_of(name, name, labels);
        self.store.apply(&mut self.inner, i, Op::Add(delta), at);
    }

    /// Sets a gauge.
    pub fn gauge_set(&mut self, name: &str, labels: &[(&str, &str)], value: f64, at: i64) {
        self.inner.register(name, MetricKind::Gauge);
        let i = self.inner.series_of(name, name, labels);
        self.store.apply(&mut self.inner, i, Op::Set(value), at);
    }

    /// Records `(value, count)` observations in a classic histogram
    /// `name` with the given bucket upper bounds (ascending; `+Inf` is
    /// implied): the `_bucket{le}` series (cumulative), `_sum` and `_count`.
    pub fn histogram_observe_many(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        observations: &[(f64, u64)],
        buckets: &[f64],
        at: i64,
    ) {
        self.inner.register(name, MetricKind::Histogram);
        let bucket_name = format!("{name}_bucket");
        let mut bounds: Vec<f64> = buckets.iter().copied().filter(|b| !b.is_nan()).collect();
        if bounds.last() != Some(&f64::INFINITY) {
            bounds.push(f64::INFINITY);
        }
        let les: Vec<String> = bounds.iter().map(|b| format_go_float(*b)).collect();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
        for (bound, le) in bounds.iter().zip(&les) {
            let n: u64 = observations
                .iter()
                .filter(|(v, _)| *v <= *bound)
                .map(|(_, n)| n)
                .sum();
            pairs.clear();
            pairs.extend_from_slice(labels);
            pairs.push((BUCKET_LABEL, le));
            let i = self.inner.series_of(name, &bucket_name, &pairs);
            self.store.apply(&mut self.inner, i, Op::Add(n as f64), at);
        }
        self.sum_and_count(name, labels, observations, at);
    }

    /// Records `(value, count)` observations in a summary without
    /// quantiles (`_sum` and `_count`, like NGINX's upstream latency).
    pub fn summary_observe_many(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        observations: &[(f64, u64)],
        at: i64,
    ) {
        self.inner.register(name, MetricKind::Summary);
        self.sum_and_count(name, labels, observations, at);
    }

    fn sum_and_count(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        observations: &[(f64, u64)],
        at: i64,
    ) {
        let sum: f64 = observations.iter().map(|(v, n)| v * *n as f64).sum();
        let count: u64 = observations.iter().map(|(_, n)| n).sum();
        let i = self.inner.series_of(name, &format!("{name}_sum"), labels);
        self.store.apply(&mut self.inner, i, Op::Add(sum), at);
        let i = self.inner.series_of(name, &format!("{name}_count"), labels);
        self.store
            .apply(&mut self.inner, i, Op::Add(count as f64), at);
    }

    /// Writes a raw sample (a gauge-like set) into series `labels`, which
    /// must include `__name__`; for tests and backfills.
    pub fn insert_sample(&mut self, labels: &Labels, t: i64, v: f64) {
        let name = labels.metric_name().unwrap_or_default().to_string();
        self.inner.register(&name, MetricKind::Untyped);
        let op = if is_stale_marker(v) {
            Op::Stale
        } else {
            Op::Set(v)
        };
        let pairs: Vec<(&str, &str)> = labels.iter().filter(|(k, _)| *k != METRIC_NAME).collect();
        let i = self.inner.series_of(&name, &name, &pairs);
        self.store.apply(&mut self.inner, i, op, t);
    }

    /// Resets every live series matching `matchers` to 0, as a restarted
    /// process would (a counter reset).
    pub fn reset(&mut self, matchers: &[Matcher], at: i64) {
        self.for_matching(matchers, at, || Op::Set(0.0));
    }

    /// Ends every series matching `matchers` with a staleness marker (the
    /// pod went away). A later write starts the series again from 0.
    pub fn mark_stale(&mut self, matchers: &[Matcher], at: i64) {
        self.for_matching(matchers, at, || Op::Stale);
    }

    fn for_matching(&mut self, matchers: &[Matcher], at: i64, op: impl Fn() -> Op) {
        let mut found: Vec<(u64, usize)> = self
            .inner
            .matching_positions(matchers)
            .filter(|&i| {
                let s = &self.inner.series[i];
                s.points.last().is_some_and(|p| !is_stale_marker(p.1))
            })
            .map(|i| (self.inner.series[i].id, i))
            .collect();
        found.sort_unstable();
        for (_, i) in found {
            self.store.apply(&mut self.inner, i, op(), at);
        }
    }
}

impl Drop for Batch<'_> {
    /// Old samples go once the writes are done (never between them: they
    /// hold positions in the store).
    fn drop(&mut self) {
        self.store.maybe_prune(&mut self.inner);
    }
}

impl Inner {
    fn register(&mut self, family: &str, kind: MetricKind) {
        let entry = self
            .families
            .entry(family.to_string())
            .or_insert(Family { kind, help: None });
        if entry.kind == MetricKind::Untyped {
            entry.kind = kind;
        }
    }

    /// The position of series `name{pairs}` (of family `family`),
    /// created if new. Empty values are absent labels; of a label given
    /// twice the last value counts. Nothing is allocated for a series that
    /// exists but the sorted list of pairs.
    fn series_of(&mut self, family: &str, name: &str, pairs: &[(&str, &str)]) -> usize {
        let mut sorted: Vec<(&str, &str)> = Vec::with_capacity(pairs.len() + 1);
        for &(k, v) in std::iter::once(&(METRIC_NAME, name)).chain(pairs) {
            sorted.retain(|(x, _)| *x != k);
            if !v.is_empty() {
                sorted.push((k, v));
            }
        }
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let hash = pairs_hash(sorted.iter().copied());
        if let Some(&i) = self.by_hash.get(&hash).and_then(|found| {
            found
                .iter()
                .find(|&&i| self.series[i].labels.iter().eq(sorted.iter().copied()))
        }) {
            return i;
        }
        let labels = Labels(
            sorted
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let id = self.next_id;
        self.next_id += 1;
        self.series.push(Series {
            id,
            labels,
            family: family.to_string(),
            points: Vec::new(),
            value: 0.0,
        });
        let i = self.series.len() - 1;
        self.index(i, hash);
        i
    }

    /// Adds series `i` (whose label set hashes to `hash`) to the indexes.
    fn index(&mut self, i: usize, hash: u64) {
        let labels = &self.series[i].labels;
        self.by_hash.entry(hash).or_default().push(i);
        self.by_name
            .entry(labels.value(METRIC_NAME).to_string())
            .or_default()
            .push(i);
        for (k, v) in labels.iter().filter(|(k, _)| *k != METRIC_NAME) {
            self.postings
                .entry(k.to_string())
                .or_default()
                .entry(v.to_string())
                .or_default()
                .push(i);
        }
    }

    /// Builds the indexes again (after series were dropped).
    fn reindex(&mut self) {
        self.by_hash.clear();
        self.by_name.clear();
        self.postings.clear();
        for i in 0..self.series.len() {
            let hash = pairs_hash(self.series[i].labels.iter());
            self.index(i, hash);
        }
    }

    /// The positions of the series matching all `matchers`. The most
    /// selective matcher that names one label value (the metric name, an
    /// equality, a regular expression that is a plain string) picks the
    /// candidates through the indexes; every matcher then checks them.
    fn matching_positions<'a>(
        &'a self,
        matchers: &'a [Matcher],
    ) -> Box<dyn Iterator<Item = usize> + 'a> {
        const NONE: &[usize] = &[];
        let mut best: Option<&[usize]> = None;
        for m in matchers {
            let Some(value) = m.single_value() else {
                continue;
            };
            let list = if m.name == METRIC_NAME {
                self.by_name.get(value).map_or(NONE, Vec::as_slice)
            } else {
                self.postings
                    .get(&m.name)
                    .and_then(|p| p.get(value))
                    .map_or(NONE, Vec::as_slice)
            };
            if best.is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        let all = |i: &usize| {
            let labels = &self.series[*i].labels;
            matchers.iter().all(|m| m.matches_labels(labels))
        };
        match best {
            Some(list) => Box::new(list.iter().copied().filter(all)),
            None => Box::new((0..self.series.len()).filter(all)),
        }
    }

    /// The series matching all `matchers`.
    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a Series> + 'a {
        self.matching_positions(matchers).map(|i| &self.series[i])
    }
}

/// The hash of a label set given as sorted name/value pairs (metric name
/// included), as [`Inner::by_hash`] keys it.
fn pairs_hash<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = DefaultHasher::new();
    for (k, v) in pairs {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

fn ceil_to(t: i64, step: i64) -> i64 {
    -floor_to(-t, step)
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` does,
/// which is how Prometheus clients write sample values and `le` labels
/// (`0.005`, `10000`, `1e+06`, `+Inf`).
pub fn format_go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits and the decimal exponent.
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest 'g' uses the exponent form below 1e-4 and from 1e6 on.
    if !(-4..6).contains(&exp) {
        let (sign, digits) = match mantissa.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("", mantissa),
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{digits}e{exp_sign}{:02}", exp.abs())
    } else {
        format!("{}", f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKERD_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1000.0];

    fn values(store: &SeriesStore, name: &str, at: i64) -> Vec<(String, f64)> {
        store
            .select_latest(&[Matcher::equal(METRIC_NAME, name)], at - 300_000, at)
            .into_iter()
            .map(|(l, s)| (l.to_string(), s.v))
            .collect()
    }

    #[test]
    fn go_float_formatting_matches_prometheus_clients() {
        for (f, s) in [
            (0.005, "0.005"),
            (1.0, "1"),
            (10000.0, "10000"),
            (300000.0, "300000"),
            (1e6, "1e+06"),
            (1.8e6, "1.8e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
        ] {
            assert_eq!(format_go_float(f), s, "{f}");
        }
    }

    #[test]
    fn histograms_record_cumulative_buckets_sum_and_count() {
        let store = SeriesStore::new(StoreConfig::on_change());
        let labels = [("deployment", "podinfo"), ("direction", "inbound")];
        store.histogram_observe_many(
            "response_latency_ms",
            &labels,
            &[(5.0, 3), (50.0, 1), (5000.0, 1)],
            LINKERD_BUCKETS,
            1000,
        );
        store.histogram_observe("response_latency_ms", &labels, 1.0, LINKERD_BUCKETS, 2000);
        let buckets: Vec<(String, f64)> = values(&store, "response_latency_ms_bucket", 2000)
            .into_iter()
            .map(|(l, v)| (l.split("le=").nth(1).unwrap().to_string(), v))
            .collect();
        assert_eq!(
            buckets,
            vec![
                ("\"1\"}".to_string(), 1.0),
                ("\"10\"}".into(), 4.0),
                ("\"100\"}".into(), 5.0),
                ("\"1000\"}".into(), 5.0),
                ("\"+Inf\"}".into(), 6.0),
            ]
        );
        assert_eq!(values(&store, "response_latency_ms_sum", 2000)[0].1, 5066.0);
        assert_eq!(values(&store, "response_latency_ms_count", 2000)[0].1, 6.0);
    }

    #[test]
    fn empty_label_values_are_absent_labels() {
        let store = SeriesStore::default();
        store.counter_add("c", &[("canary", ""), ("a", "1")], 1.0, 0);
        assert_eq!(values(&store, "c", 0)[0].0, r#"{__name__="c", a="1"}"#);
    }

    #[test]
    fn scrape_sampling_fills_every_interval_and_stale_series_restart() {
        let store = SeriesStore::new(StoreConfig {
            sampling: Sampling::Scrape { interval_ms: 1000 },
            ..StoreConfig::default()
        });
        store.counter_add("c", &[("pod", "a")], 1.0, 500);
        store.counter_add("c", &[("pod", "a")], 1.0, 2500);
        store.mark_stale(&[Matcher::equal("pod", "a")], 4200);
        store.counter_add("c", &[("pod", "a")], 5.0, 6000);
        store.advance_to(7000);
        let all = store.select(&[Matcher::equal(METRIC_NAME, "c")], 0, 10_000);
        let samples: Vec<(i64, String)> = all[0]
            .samples
            .iter()
            .map(|s| (s.t, format_go_float(s.v)))
            .collect();
        let expected: Vec<(i64, String)> = [
            (1000, "1"),
            (2000, "1"),
            (3000, "2"),
            (4000, "2"),
            (5000, "NaN"), // the staleness marker
            (6000, "5"),
            (7000, "5"),
        ]
        .iter()
        .map(|(t, v)| (*t, v.to_string()))
        .collect();
        assert_eq!(samples, expected);
        assert!(is_stale_marker(all[0].samples[4].v));
        // The latest sample before the restart is the marker.
        let latest = store.select_latest(&[Matcher::equal("pod", "a")], 0, 5500);
        assert!(is_stale_marker(latest[0].1.v));
    }

    #[test]
    fn reset_sets_counters_back_to_zero() {
        let store = SeriesStore::new(StoreConfig::on_change());
        store.counter_add("c", &[("pod", "a")], 7.0, 1000);
        store.reset(&[Matcher::equal("pod", "a")], 2000);
        store.counter_add("c", &[("pod", "a")], 2.0, 3000);
        let all = store.select(&[Matcher::regex("pod", "a|b").unwrap()], 0, 3000);
        let v: Vec<f64> = all[0].samples.iter().map(|s| s.v).collect();
        assert_eq!(v, vec![7.0, 0.0, 2.0]);
    }

    #[test]
    fn old_samples_expire() {
        let store = SeriesStore::new(StoreConfig {
            sampling: Sampling::OnChange,
            retention_ms: 10_000,
            clock: Clock::Manual,
        });
        for t in 0..30 {
            store.counter_add("c", &[], 1.0, t * 1000);
        }
        let all = store.select(&[Matcher::equal(METRIC_NAME, "c")], 0, 30_000);
        assert_eq!(all[0].samples.first().unwrap().t, 19_000);
        assert_eq!(all[0].samples.len(), 11);
        store.mark_stale(&[Matcher::equal(METRIC_NAME, "c")], 30_000);
        store.advance_to(100_000);
        assert_eq!(store.series_count(), 0);
    }

    #[test]
    fn matchers_treat_missing_labels_as_empty() {
        let labels = Labels::metric("r", &[("a", "x")]);
        assert!(Matcher::equal("b", "").matches_labels(&labels));
        assert!(!Matcher::not_equal("b", "").matches_labels(&labels));
        assert!(Matcher::regex("a", "x|y").unwrap().matches_labels(&labels));
        assert!(!Matcher::regex("a", "").unwrap().matches_labels(&labels));
        assert!(
            Matcher::not_regex("a", "xx")
                .unwrap()
                .matches_labels(&labels)
        );
    }
}
