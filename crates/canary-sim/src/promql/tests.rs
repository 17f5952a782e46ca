//! Evaluator cases with answers computed by hand from Prometheus' rules.

use std::sync::Arc;

use super::http::{data_json, format_timestamp, format_value, parse_duration, parse_time};
use super::*;
use crate::series::{Labels, Matcher, SeriesStore, StoreConfig, stale_marker};

const S: i64 = 1000;

/// A metric name, its labels and `(seconds, value)` samples.
type Spec<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(i64, f64)]);
type OwnedSpec<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

/// A store where every write is a sample at its own time.
fn store(series: &[Spec]) -> SeriesStore {
    let store = SeriesStore::new(StoreConfig::on_change());
    for (name, labels, samples) in series {
        let labels = Labels::metric(name, labels);
        for &(t, v) in *samples {
            store.insert_sample(&labels, t * S, v);
        }
    }
    store
}

fn eval(store: &SeriesStore, query: &str, t_secs: i64) -> Value {
    instant_query(store, query, t_secs * S).unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn eval_v3(store: &SeriesStore, query: &str, t_secs: i64) -> Value {
    let options = EvalOptions {
        flavor: Flavor::V3,
        ..EvalOptions::default()
    };
    instant_query_with(store, query, t_secs * S, &options).unwrap()
}

/// A vector as `(labels, value)` pairs sorted by labels.
fn vector(value: Value) -> Vec<(String, f64)> {
    let Value::Vector(v) = value else {
        panic!("not a vector: {value:?}")
    };
    let mut out: Vec<(String, f64)> = v
        .into_iter()
        .map(|s| (s.labels.to_string(), s.value))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn single(value: Value) -> f64 {
    let v = vector(value);
    assert_eq!(v.len(), 1, "{v:?}");
    v[0].1
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[track_caller]
fn assert_close(a: f64, b: f64) {
    assert!(close(a, b), "{a} != {b}");
}

fn counter(values: &[(i64, f64)]) -> SeriesStore {
    store(&[("c", &[("job", "a")], values)])
}

#[test]
fn rate_extrapolates_to_the_window_edges_when_samples_reach_them() {
    // Window [40s, 100s]; samples every 10s from 50s: the 10s gap to the
    // start is under 1.1x the average spacing, so extrapolate all of it.
    let s = counter(&[
        (50, 10.),
        (60, 20.),
        (70, 30.),
        (80, 40.),
        (90, 50.),
        (100, 60.),
    ]);
    assert_close(
        single(eval(&s, "increase(c[60s])", 100)),
        50.0 * 60.0 / 50.0,
    );
    assert_close(single(eval(&s, "rate(c[60s])", 100)), 1.0);
    assert_close(single(eval(&s, "delta(c[60s])", 100)), 60.0);
}

#[test]
fn rate_extrapolates_half_a_spacing_past_a_gap() {
    // Samples 70s..100s, window starts at 40s: a 30s gap, more than 1.1x
    // the 10s spacing, so only 5s are added at the start.
    let s = counter(&[(70, 100.), (80, 110.), (90, 120.), (100, 130.)]);
    assert_close(
        single(eval(&s, "increase(c[60s])", 100)),
        30.0 * 35.0 / 30.0,
    );
    // Same at the end: the series stopped at 70s.
    let s = counter(&[(40, 0.), (50, 10.), (60, 20.), (70, 30.)]);
    assert_close(single(eval(&s, "increase(c[60s])", 100)), 35.0);
}

#[test]
fn rate_does_not_extrapolate_a_counter_below_zero() {
    // Start gap 30s, zero point 10s before the first sample (10 / (30/30)).
    // Prometheus 2 clamps to the zero point first, finds it under the
    // threshold (11s) and adds all 10s; Prometheus 3 takes half a spacing
    // (5s) first and keeps it, being shorter.
    let s = counter(&[(70, 10.), (80, 20.), (90, 30.), (100, 40.)]);
    assert_close(single(eval(&s, "increase(c[60s])", 100)), 40.0);
    assert_close(single(eval_v3(&s, "increase(c[60s])", 100)), 35.0);
}

#[test]
fn rate_handles_counter_resets() {
    // 5 -> 15, reset, 2 -> 17: 12 + 15 = 27 over exactly the window.
    let s = counter(&[
        (40, 5.),
        (50, 10.),
        (60, 15.),
        (70, 2.),
        (80, 7.),
        (90, 12.),
        (100, 17.),
    ]);
    assert_close(single(eval(&s, "increase(c[60s])", 100)), 27.0);
    assert_close(single(eval(&s, "rate(c[1m])", 100)), 27.0 / 60.0);
    assert_eq!(single(eval(&s, "resets(c[1m])", 100)), 1.0);
    assert_eq!(single(eval(&s, "changes(c[1m])", 100)), 6.0);
    // delta does not know about resets.
    assert_close(single(eval(&s, "delta(c[60s])", 100)), 12.0);
    assert_close(single(eval(&s, "irate(c[1m])", 100)), 0.5);
    assert_close(single(eval(&s, "irate(c[1m])", 70)), 2.0 / 10.0);
    assert_close(single(eval(&s, "idelta(c[1m])", 70)), -13.0);
}

#[test]
fn rate_needs_two_samples_and_drops_the_name() {
    let s = counter(&[(100, 5.)]);
    assert!(vector(eval(&s, "rate(c[1m])", 100)).is_empty());
    let s = counter(&[(90, 5.), (100, 6.)]);
    assert_eq!(vector(eval(&s, "rate(c[1m])", 100))[0].0, r#"{job="a"}"#);
    assert_eq!(
        vector(eval(&s, "last_over_time(c[1m])", 100))[0].0,
        r#"{__name__="c", job="a"}"#
    );
}

#[test]
fn range_windows_include_their_start_in_prometheus_2_only() {
    let s = counter(&[(40, 0.), (70, 30.), (100, 60.)]);
    assert_eq!(single(eval(&s, "count_over_time(c[60s])", 100)), 3.0);
    assert_eq!(single(eval_v3(&s, "count_over_time(c[60s])", 100)), 2.0);
}

#[test]
fn instant_vectors_look_back_five_minutes() {
    let s = counter(&[(100, 7.)]);
    assert_eq!(single(eval(&s, "c", 100)), 7.0);
    assert_eq!(single(eval(&s, "c", 400)), 7.0);
    assert!(vector(eval(&s, "c", 401)).is_empty());
    assert!(vector(eval(&s, "c", 99)).is_empty());
    assert!(vector(eval_v3(&s, "c", 400)).is_empty());
    assert_eq!(single(eval(&s, "c offset 1m", 160)), 7.0);
    assert!(vector(eval(&s, "c offset 1m", 159)).is_empty());
    assert_eq!(single(eval(&s, "c @ 100", 1000)), 7.0);
}

#[test]
fn staleness_markers_end_series() {
    let s = counter(&[(100, 7.), (110, 8.)]);
    s.mark_stale(&[Matcher::equal("job", "a")], 120 * S);
    assert_eq!(single(eval(&s, "c", 119)), 8.0);
    assert!(vector(eval(&s, "c", 120)).is_empty());
    assert!(vector(eval(&s, "c", 200)).is_empty());
    // Range functions still see the samples before the marker.
    assert_close(single(eval(&s, "count_over_time(c[1m])", 130)), 2.0);
}

#[test]
fn scrape_sampling_repeats_unchanged_values() {
    // One write at 0s; a scraper would keep seeing 5: rate 0, not empty.
    let s = SeriesStore::new(StoreConfig::default());
    s.counter_add("c", &[("job", "a")], 5.0, 0);
    s.advance_to(120 * S);
    assert_eq!(single(eval(&s, "rate(c[1m])", 120)), 0.0);
    assert_eq!(single(eval(&s, "count_over_time(c[1m])", 120)), 61.0);
    // A write at 120.3s is first seen by the 121s scrape.
    s.counter_add("c", &[("job", "a")], 1.0, 120_300);
    assert_eq!(single(eval(&s, "c", 120)), 5.0);
    assert_eq!(single(eval(&s, "c", 121)), 6.0);
}

#[test]
fn histogram_quantile_interpolates_within_buckets() {
    let buckets = [("10", 50.), ("50", 90.), ("100", 99.), ("+Inf", 100.)];
    let series: Vec<OwnedSpec> = buckets
        .iter()
        .map(|(le, v)| ("h_bucket", vec![("le", *le), ("job", "a")], vec![(100, *v)]))
        .collect();
    let refs: Vec<Spec> = series
        .iter()
        .map(|(n, l, s)| (*n, l.as_slice(), s.as_slice()))
        .collect();
    let s = store(&refs);
    let hq = |q: &str| single(eval(&s, &format!("histogram_quantile({q}, h_bucket)"), 100));
    assert_close(hq("0.5"), 10.0);
    assert_close(hq("0.25"), 5.0);
    assert_close(hq("0.9"), 50.0);
    assert_close(hq("0.95"), 50.0 + 50.0 * 5.0 / 9.0);
    assert_close(hq("0.99"), 100.0);
    // In the +Inf bucket: the highest finite bound.
    assert_close(hq("0.995"), 100.0);
    assert_eq!(hq("1.5"), f64::INFINITY);
    assert_eq!(hq("-1"), f64::NEG_INFINITY);
    // The result keeps the other labels but not the name or `le`.
    let v = vector(eval(&s, "histogram_quantile(0.5, h_bucket)", 100));
    assert_eq!(v[0].0, r#"{job="a"}"#);
}

#[test]
fn histogram_quantile_is_nan_without_observations_or_inf_bucket() {
    let s = store(&[
        ("h_bucket", &[("le", "1")], &[(100, 0.)]),
        ("h_bucket", &[("le", "+Inf")], &[(100, 0.)]),
        ("g_bucket", &[("le", "1")], &[(100, 3.)]),
        ("g_bucket", &[("le", "2")], &[(100, 4.)]),
    ]);
    assert!(single(eval(&s, "histogram_quantile(0.9, h_bucket)", 100)).is_nan());
    assert!(single(eval(&s, "histogram_quantile(0.9, g_bucket)", 100)).is_nan());
    // No buckets at all: empty, not NaN.
    assert!(vector(eval(&s, "histogram_quantile(0.9, nothing_bucket)", 100)).is_empty());
}

#[test]
fn histogram_quantile_over_rates_by_le() {
    // Two series of one histogram; rates 1/s, 3/s, 4/s in le 5, 10, +Inf
    // in total: rank 0.5 * 4 = 2 falls in (5, 10]: 5 + 5 * (2-1)/(3-1).
    let mut series = Vec::new();
    for (pod, counts) in [("p1", [0., 2., 2.]), ("p2", [1., 1., 2.])] {
        for (le, per_s) in ["5", "10", "+Inf"].iter().zip(counts) {
            series.push((
                "h_bucket",
                vec![("le", *le), ("pod", pod)],
                (0..=6)
                    .map(|i| (i * 10, per_s * 10.0 * i as f64))
                    .collect::<Vec<_>>(),
            ));
        }
    }
    let refs: Vec<Spec> = series
        .iter()
        .map(|(n, l, s)| (*n, l.as_slice(), s.as_slice()))
        .collect();
    let s = store(&refs);
    let q = "histogram_quantile(0.5, sum(rate(h_bucket[1m])) by (le))";
    assert_close(single(eval(&s, q, 60)), 7.5);
    let by_pod = vector(eval(
        &s,
        "histogram_quantile(0.5, sum by (le, pod) (rate(h_bucket[1m])))",
        60,
    ));
    // p1: rank 1 of 2 in (5, 10] starting at 0 -> 5 + 5 * 1/2; p2: rank 1
    // of 2 in the first bucket (0, 5] holding 1 -> 5.
    assert_eq!(by_pod.len(), 2);
    assert_close(by_pod[0].1, 7.5);
    assert_close(by_pod[1].1, 5.0);
}

fn jobs() -> SeriesStore {
    store(&[
        (
            "x",
            &[("job", "a"), ("instance", "1"), ("code", "200")],
            &[(100, 1.)],
        ),
        (
            "x",
            &[("job", "a"), ("instance", "2"), ("code", "500")],
            &[(100, 2.)],
        ),
        (
            "x",
            &[("job", "b"), ("instance", "1"), ("code", "200")],
            &[(100, 4.)],
        ),
        ("y", &[("job", "a")], &[(100, 10.)]),
        ("y", &[("job", "b")], &[(100, 20.)]),
    ])
}

#[test]
fn aggregations_group_by_and_without() {
    let s = jobs();
    assert_eq!(
        vector(eval(&s, "sum by (job) (x)", 100)),
        vec![(r#"{job="a"}"#.into(), 3.0), (r#"{job="b"}"#.into(), 4.0)]
    );
    assert_eq!(
        vector(eval(&s, "sum without (instance, code) (x)", 100)),
        vec![(r#"{job="a"}"#.into(), 3.0), (r#"{job="b"}"#.into(), 4.0)]
    );
    assert_eq!(
        vector(eval(&s, "max(x) by (instance)", 100)),
        vec![
            (r#"{instance="1"}"#.into(), 4.0),
            (r#"{instance="2"}"#.into(), 2.0)
        ]
    );
    assert_eq!(single(eval(&s, "sum(x)", 100)), 7.0);
    assert_close(single(eval(&s, "avg(x)", 100)), 7.0 / 3.0);
    assert_eq!(single(eval(&s, "min(x)", 100)), 1.0);
    assert_eq!(single(eval(&s, "count(x)", 100)), 3.0);
    assert_eq!(single(eval(&s, "group(x)", 100)), 1.0);
    assert_close(single(eval(&s, "quantile(0.5, x)", 100)), 2.0);
    assert_close(single(eval(&s, "stddev(y)", 100)), 5.0);
    assert_close(single(eval(&s, "stdvar(y)", 100)), 25.0);
    let top = vector(eval(&s, "topk(1, x)", 100));
    assert_eq!(
        top,
        vec![(
            r#"{__name__="x", code="200", instance="1", job="b"}"#.into(),
            4.0
        )]
    );
    assert_eq!(vector(eval(&s, "bottomk(1, x)", 100))[0].1, 1.0);
    // `by` on a label nobody has: one group without labels.
    assert_eq!(
        vector(eval(&s, "sum by (nope) (x)", 100)),
        vec![("{}".into(), 7.0)]
    );
}

#[test]
fn empty_results_stay_empty_and_division_by_zero_is_ieee() {
    let s = jobs();
    for q in [
        "sum(rate(nothing[1m]))",
        "sum(nothing) / sum(nothing)",
        "sum(x) / sum(nothing)",
        "nothing * 100",
        "histogram_quantile(0.99, sum(rate(nothing_bucket[1m])) by (le))",
    ] {
        assert!(vector(eval(&s, q, 100)).is_empty(), "{q}");
    }
    assert!(single(eval(&s, "sum(x) * 0 / (sum(x) * 0)", 100)).is_nan());
    assert_eq!(single(eval(&s, "sum(x) / 0", 100)), f64::INFINITY);
    assert_eq!(single(eval(&s, "-sum(x) / 0", 100)), f64::NEG_INFINITY);
    assert_eq!(eval(&s, "1 / 0", 100), Value::Scalar(f64::INFINITY));
    assert!(matches!(eval(&s, "0 / 0", 100), Value::Scalar(v) if v.is_nan()));
}

#[test]
fn regex_matchers_are_anchored() {
    let s = store(&[
        (
            "r",
            &[("deployment", "podinfo"), ("code", "200")],
            &[(100, 1.)],
        ),
        (
            "r",
            &[("deployment", "podinfo-primary"), ("code", "500")],
            &[(100, 2.)],
        ),
        (
            "r",
            &[
                ("deployment", "my-podinfo"),
                ("canary", "yes"),
                ("code", "503"),
            ],
            &[(100, 4.)],
        ),
    ]);
    let sum = |q: &str| single(eval(&s, &format!("sum({q})"), 100));
    assert_eq!(sum(r#"r{deployment=~"podinfo"}"#), 1.0);
    assert_eq!(sum(r#"r{deployment=~"podinfo.*"}"#), 3.0);
    assert_eq!(sum(r#"r{deployment=~".*podinfo"}"#), 5.0);
    assert_eq!(sum(r#"r{deployment!~"podinfo"}"#), 6.0);
    assert_eq!(sum(r#"r{code!~"5.*"}"#), 1.0);
    assert_eq!(sum(r#"r{code=~"5.."}"#), 6.0);
    assert_eq!(sum(r#"r{deployment="podinfo"}"#), 1.0);
    assert_eq!(sum(r#"r{deployment!="podinfo"}"#), 6.0);
    // A missing label is the empty string.
    assert_eq!(sum(r#"r{canary!=""}"#), 4.0);
    assert_eq!(sum(r#"r{canary=""}"#), 3.0);
    assert_eq!(sum(r#"{__name__=~"r|q", code="200"}"#), 1.0);
}

#[test]
fn scalar_and_vector_arithmetic() {
    let s = jobs();
    assert_eq!(eval(&s, "2 * 3 + 1", 100), Value::Scalar(7.0));
    assert_eq!(eval(&s, "2 ^ 3 ^ 2", 100), Value::Scalar(512.0));
    assert_eq!(eval(&s, "-7 % 3", 100), Value::Scalar(-1.0));
    assert_eq!(eval(&s, "(1 + 2) * -(3)", 100), Value::Scalar(-9.0));
    assert_eq!(
        vector(eval(&s, "y * 2 + 1", 100)),
        vec![(r#"{job="a"}"#.into(), 21.0), (r#"{job="b"}"#.into(), 41.0)]
    );
    assert_eq!(
        vector(eval(&s, "100 - y", 100))[0],
        (r#"{job="a"}"#.into(), 90.0)
    );
    assert_eq!(
        vector(eval(&s, "-y", 100))[1],
        (r#"{job="b"}"#.into(), -20.0)
    );
    assert_eq!(
        vector(eval(&s, "y / y", 100))[0],
        (r#"{job="a"}"#.into(), 1.0)
    );
    assert_eq!(eval(&s, "scalar(sum(y)) * 2", 100), Value::Scalar(60.0));
    assert_eq!(vector(eval(&s, "vector(1)", 100)), vec![("{}".into(), 1.0)]);
    assert_eq!(eval(&s, "time()", 100), Value::Scalar(100.0));
}

#[test]
fn comparisons_filter_or_return_bool() {
    let s = jobs();
    assert_eq!(
        vector(eval(&s, "x > 1", 100)),
        vec![
            (
                r#"{__name__="x", code="200", instance="1", job="b"}"#.into(),
                4.0
            ),
            (
                r#"{__name__="x", code="500", instance="2", job="a"}"#.into(),
                2.0
            ),
        ]
    );
    // The vector's value is kept with the scalar on the left, too.
    assert_eq!(vector(eval(&s, "3 < x", 100))[0].1, 4.0);
    assert_eq!(
        vector(eval(&s, "y > bool 15", 100)),
        vec![(r#"{job="a"}"#.into(), 0.0), (r#"{job="b"}"#.into(), 1.0)]
    );
    assert_eq!(eval(&s, "1 < bool 2", 100), Value::Scalar(1.0));
    assert_eq!(
        vector(eval(&s, "sum(x) == 7", 100)),
        vec![("{}".into(), 7.0)]
    );
    assert!(vector(eval(&s, "sum(x) != 7", 100)).is_empty());
    // Vector to vector: keeps the left value where the comparison holds.
    assert_eq!(
        vector(eval(&s, "y > on(job) sum by (job) (x)", 100)),
        // (`on` keeps only the matching labels in one-to-one results.)
        vec![(r#"{job="a"}"#.into(), 10.0), (r#"{job="b"}"#.into(), 20.0)]
    );
    assert!(vector(eval(&s, "y < on(job) sum by (job) (x)", 100)).is_empty());
    // NaN compares false.
    assert!(vector(eval(&s, "(y * 0 / 0) == (y * 0 / 0)", 100)).is_empty());
}

#[test]
fn vector_matching_with_on_ignoring_and_group_left() {
    let s = jobs();
    assert_eq!(
        vector(eval(&s, "sum by (job) (x) / on(job) y", 100)),
        vec![(r#"{job="a"}"#.into(), 0.3), (r#"{job="b"}"#.into(), 0.2)]
    );
    assert_eq!(
        vector(eval(
            &s,
            "sum by (job, code) (x) / ignoring(code) group_left y",
            100
        )),
        vec![
            (r#"{code="200", job="a"}"#.into(), 0.1),
            (r#"{code="200", job="b"}"#.into(), 0.2),
            (r#"{code="500", job="a"}"#.into(), 0.2),
        ]
    );
    // Identical label sets match without modifiers (names ignored).
    assert_eq!(
        vector(eval(&s, "sum by (job) (x) + sum by (job) (y)", 100)).len(),
        2
    );
    // No match: empty.
    assert!(vector(eval(&s, "x / y", 100)).is_empty());
    let err = instant_query(&s, "x / on(job) y", 100 * S).unwrap_err();
    assert!(matches!(err, QueryError::Execution(_)), "{err:?}");
    assert_eq!(err.status(), 422);
    let err = instant_query(&s, "y / on(job) x", 100 * S).unwrap_err();
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
}

#[test]
fn set_operators() {
    let s = jobs();
    assert_eq!(vector(eval(&s, r#"y and y{job="a"}"#, 100)).len(), 1);
    assert_eq!(vector(eval(&s, r#"y unless y{job="a"}"#, 100))[0].1, 20.0);
    // The common "or vector(0)" fallback.
    assert_eq!(
        vector(eval(&s, "sum(nothing) or vector(0)", 100)),
        vec![("{}".into(), 0.0)]
    );
    assert_eq!(
        vector(eval(&s, "sum(y) or vector(0)", 100)),
        vec![("{}".into(), 30.0)]
    );
}

#[test]
fn functions_on_instant_vectors() {
    let s = jobs();
    assert_eq!(vector(eval(&s, r#"clamp_max(y, 15)"#, 100))[1].1, 15.0);
    assert_eq!(vector(eval(&s, r#"clamp_min(y, 15)"#, 100))[0].1, 15.0);
    assert_eq!(vector(eval(&s, r#"round(y / 3)"#, 100))[0].1, 3.0);
    assert_eq!(
        vector(eval(&s, r#"abs(-y)"#, 100))[0],
        (r#"{job="a"}"#.into(), 10.0)
    );
    assert_eq!(
        vector(eval(&s, r#"absent(nothing{job="a", code=~"5.."})"#, 100)),
        vec![(r#"{job="a"}"#.into(), 1.0)]
    );
    assert!(vector(eval(&s, "absent(y)", 100)).is_empty());
    assert_eq!(
        vector(eval(
            &s,
            r#"label_replace(y, "team", "t-$1", "job", "(.)")"#,
            100
        ))[0]
            .0,
        r#"{__name__="y", job="a", team="t-a"}"#
    );
    let sorted = eval(&s, "sort_desc(x)", 100);
    let Value::Vector(v) = sorted else { panic!() };
    assert_eq!(
        v.iter().map(|s| s.value).collect::<Vec<_>>(),
        vec![4.0, 2.0, 1.0]
    );
}

#[test]
fn over_time_functions() {
    let s = counter(&[(40, 1.), (50, 4.), (60, 2.), (70, 3.)]);
    assert_eq!(single(eval(&s, "sum_over_time(c[1m])", 70)), 10.0);
    assert_eq!(single(eval(&s, "avg_over_time(c[1m])", 70)), 2.5);
    assert_eq!(single(eval(&s, "max_over_time(c[1m])", 70)), 4.0);
    assert_eq!(single(eval(&s, "min_over_time(c[1m])", 70)), 1.0);
    assert_eq!(single(eval(&s, "last_over_time(c[1m])", 70)), 3.0);
    assert_close(single(eval(&s, "quantile_over_time(0.5, c[1m])", 70)), 2.5);
    assert_close(single(eval(&s, "stdvar_over_time(c[1m])", 70)), 1.25);
    assert_eq!(
        vector(eval(&s, "absent_over_time(nothing[1m])", 70)),
        vec![("{}".into(), 1.0)]
    );
}

#[test]
fn unsupported_constructs_are_bad_data_not_panics() {
    let s = jobs();
    for q in [
        "rate(x[5m:1m])",
        "max_over_time(sum(x)[5m:])",
        "count_values(\"v\", x)",
        "predict_linear(x[1m], 60)",
        "holt_winters(x[1m], 0.5, 0.5)",
        "sum(",
        "",
        "x{",
        "foo bar",
        r#"{job=~".*"}"#,
    ] {
        let err = instant_query(&s, q, 100 * S).expect_err(q);
        assert_eq!(err.error_type(), "bad_data", "{q}: {err}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn duplicate_label_sets_are_an_execution_error() {
    let s = jobs();
    let err = instant_query(
        &s,
        r#"rate({__name__=~"x|z", job="b"}[1m]) or x * 1"#,
        100 * S,
    );
    assert!(err.is_ok(), "{err:?}");
    let s = store(&[
        ("p", &[("job", "a")], &[(50, 1.), (100, 2.)]),
        ("q", &[("job", "a")], &[(50, 1.), (100, 2.)]),
    ]);
    let err = instant_query(&s, r#"rate({job="a"}[1m])"#, 100 * S).unwrap_err();
    assert_eq!(err.error_type(), "execution");
}

#[test]
fn range_queries_evaluate_each_step() {
    let s = counter(&[(0, 0.), (10, 10.), (20, 20.), (30, 30.)]);
    let Value::Matrix(m) =
        range_query(&s, "c * 2", 10 * S, 30 * S, 10 * S, &EvalOptions::default()).unwrap()
    else {
        panic!()
    };
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].samples.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>(),
        vec![(10_000, 20.0), (20_000, 40.0), (30_000, 60.0)]
    );
    assert!(range_query(&s, "c[1m]", 0, 10, 1, &EvalOptions::default()).is_err());
}

#[test]
fn json_is_written_like_prometheus() {
    assert_eq!(format_timestamp(1_435_781_451_781), "1435781451.781");
    assert_eq!(format_timestamp(1_435_781_451_000), "1435781451");
    assert_eq!(format_timestamp(1_435_781_451_500), "1435781451.500");
    assert_eq!(format_timestamp(1_435_781_451_005), "1435781451.005");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(100.0), "100");
    assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
    assert_eq!(format_value(1e-7), "0.0000001");
    assert_eq!(format_value(1e21), "1000000000000000000000");
    let v = Value::Vector(vec![InstantSample {
        labels: Labels::metric("up", &[("job", "a<b>")]),
        value: 1.0,
    }]);
    assert_eq!(
        data_json(&v, 1_700_000_000_000),
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\u003cb\u003e"},"value":[1700000000,"1"]}]}"#
    );
    assert_eq!(
        data_json(&Value::Vector(vec![]), 0),
        r#"{"resultType":"vector","result":[]}"#
    );
    assert_eq!(
        data_json(&Value::Scalar(f64::NAN), 1_000),
        r#"{"resultType":"scalar","result":[1,"NaN"]}"#
    );
}

#[test]
fn time_and_duration_parameters() {
    assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
    assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
    assert_eq!(
        parse_time("2015-07-01T20:10:51.781Z"),
        Ok(1_435_781_451_781)
    );
    assert_eq!(
        parse_time("2015-07-01T22:10:51+02:00"),
        Ok(1_435_781_451_000)
    );
    assert!(parse_time("yesterday").is_err());
    assert_eq!(parse_duration("15"), Ok(15_000));
    assert_eq!(parse_duration("1m30s"), Ok(90_000));
    assert_eq!(parse_duration("250ms"), Ok(250));
    assert!(parse_duration("1x").is_err());
}

mod api {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn send(api: &PrometheusApi, req: Request<Body>) -> (StatusCode, String) {
        let res = api.router().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[test]
    fn query_endpoint_answers_prometheus_json() {
        let api = PrometheusApi::new(Arc::new(jobs()));
        runtime().block_on(async {
            let (status, body) = send(&api, get("/api/v1/query?query=sum(y)&time=100")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                body,
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[100,"30"]}]}}"#
            );
            let req = Request::post("/api/v1/query")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("query=sum%28nothing%29&time=2015-07-01T20%3A10%3A51.781Z"))
                .unwrap();
            let (status, body) = send(&api, req).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                body,
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
            );
            let (status, body) = send(&api, get("/api/v1/query?query=1%2F0&time=100")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(body.contains(r#""resultType":"scalar","result":[100,"+Inf"]"#), "{body}");
        });
    }

    #[test]
    fn query_errors_use_prometheus_error_types() {
        let api = PrometheusApi::new(Arc::new(jobs()));
        runtime().block_on(async {
            let (status, body) = send(&api, get("/api/v1/query?query=sum(&time=100")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(
                body.starts_with(
                    r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": "#
                ),
                "{body}"
            );
            let (status, body) = send(&api, get("/api/v1/query?query=y&time=soon")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(body.contains(r#"invalid parameter \"time\""#), "{body}");
            let (status, body) =
                send(&api, get("/api/v1/query?query=x%20%2F%20on(job)%20y&time=100")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(body.contains(r#""errorType":"execution""#), "{body}");
        });
    }

    #[test]
    fn range_endpoint_and_health() {
        let api = PrometheusApi::new(Arc::new(counter(&[(0, 0.), (10, 10.)])));
        runtime().block_on(async {
            let (status, body) =
                send(&api, get("/api/v1/query_range?query=c&start=0&end=10&step=5s")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                body,
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"c","job":"a"},"values":[[0,"0"],[5,"0"],[10,"10"]]}]}}"#
            );
            let (status, _) =
                send(&api, get("/api/v1/query_range?query=c&start=10&end=0&step=5")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            let (status, body) = send(&api, get("/-/ready")).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "Prometheus Server is Ready.\n"));
        });
    }

    #[test]
    fn an_outage_answers_503_everywhere() {
        let api = PrometheusApi::new(Arc::new(jobs()));
        api.set_outage(true);
        runtime().block_on(async {
            for uri in ["/api/v1/query?query=y", "/-/ready", "/-/healthy"] {
                let (status, _) = send(&api, get(uri)).await;
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
            }
            api.set_outage(false);
            let (status, _) = send(&api, get("/-/healthy")).await;
            assert_eq!(status, StatusCode::OK);
        });
    }
}

#[test]
fn stale_marker_value_is_prometheus_bit_pattern() {
    assert_eq!(stale_marker().to_bits(), 0x7ff0_0000_0000_0002);
}
