//! `canary status` as kubectl users read it: the table `kubectl get
//! canaries` prints, a kubectl `List` of Flagger `Canary` objects for
//! `-o json|yaml`, `-o name`, `-o jsonpath=`, `-o custom-columns=`, the
//! same once or row by row as a watch, and what `--wait` reports.
//!
//! The objects keep every field where Flagger has it (`status.phase`,
//! `status.canaryWeight`, `status.conditions`, ...); what only `canary`
//! knows (the driver and its lease, a pause, why the last analysis
//! failed, the step history with metric values) is in `status.canary`.

use std::io::Write;

use serde_json::{Value, json};

use super::jsonpath::{Path, Template};
use crate::cli::StatusFormat;
use crate::cluster::status::CanaryStatus;
use canary_core::engine::state::promoted_condition;

/// The API version and kind of Flagger's Canary.
const API_VERSION: &str = "flagger.app/v1beta1";
const KIND: &str = "Canary";
/// What kubectl prints before a name for `-o name`.
const NAME_PREFIX: &str = "canary.flagger.app";

/// A canary as Flagger's `Canary` object, with `canary`'s own block in
/// `status.canary`; every string through the process's redactor, which
/// masks by pattern what another process stored.
pub(crate) fn canary_object(c: &CanaryStatus) -> Value {
    let mut v = object_of(c);
    crate::secrets::redactor().redact_json(&mut v);
    v
}

fn object_of(c: &CanaryStatus) -> Value {
    let kind = c.kind.as_str();
    let doc = c.document.as_ref();
    let spec = doc.and_then(|d| d.get("spec")).cloned().unwrap_or_else(
        || json!({"targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": c.target}}),
    );
    let mut metadata = json!({"name": c.name, "namespace": c.namespace});
    for key in ["labels", "annotations"] {
        if let Some(v) = doc.and_then(|d| d["metadata"].get(key))
            && v.is_object()
        {
            metadata[key] = v.clone();
        }
    }
    let mut status = serde_json::Map::new();
    let phase = c.phase.map(|p| p.as_str()).unwrap_or("Unknown");
    status.insert("phase".into(), json!(phase));
    status.insert("failedChecks".into(), json!(c.failed_checks));
    status.insert("canaryWeight".into(), json!(c.weight));
    status.insert("iterations".into(), json!(c.iterations));
    if !c.tracked_configs.is_empty() {
        status.insert("trackedConfigs".into(), json!(c.tracked_configs));
    }
    if let Some(r) = &c.revision {
        status.insert("lastAppliedSpec".into(), json!(r));
    }
    if let Some(r) = &c.promoted_revision {
        status.insert("lastPromotedSpec".into(), json!(r));
    }
    status.insert(
        "lastTransitionTime".into(),
        json!(c.last_transition_time.to_rfc3339()),
    );
    if let Some(p) = c.phase {
        let (cond, message) = promoted_condition(p, kind);
        let at = c.last_transition_time.to_rfc3339();
        status.insert(
            "conditions".into(),
            json!([{
                "type": "Promoted",
                "status": cond,
                "lastUpdateTime": at,
                "lastTransitionTime": at,
                "reason": p.as_str(),
                "message": message,
            }]),
        );
    }
    let mut own = serde_json::Map::new();
    own.insert(
        "driver".into(),
        match &c.driver {
            Some(d) => json!({
                "holder": d.holder,
                "renewTime": d.renew_time.to_rfc3339(),
                "alive": d.alive,
            }),
            None => Value::Null,
        },
    );
    if let Some(p) = &c.paused {
        own.insert("paused".into(), json!(p));
    }
    if let Some(f) = &c.failure {
        own.insert("failure".into(), json!(f));
    }
    if !c.history.is_empty() {
        own.insert("history".into(), json!(c.history));
    }
    status.insert("canary".into(), Value::Object(own));
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
        "status": status,
    })
}

/// A kubectl `List` of objects, as `kubectl get -o json` prints several.
pub(crate) fn list_object(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// Columns printed for the table formats.
enum Columns {
    Standard { wide: bool },
    Custom(Vec<(String, Path)>),
}

/// What `status` prints, settled before the cluster is asked anything so
/// that a malformed template is a usage error.
pub(crate) struct Printer {
    format: StatusFormat,
    columns: Option<Columns>,
    template: Option<Template>,
    no_headers: bool,
    all_namespaces: bool,
}

impl Printer {
    pub(crate) fn new(
        format: &StatusFormat,
        no_headers: bool,
        all_namespaces: bool,
    ) -> Result<Printer, String> {
        let columns = match format {
            StatusFormat::Table => Some(Columns::Standard { wide: false }),
            StatusFormat::Wide => Some(Columns::Standard { wide: true }),
            StatusFormat::CustomColumns(spec) => {
                let mut cols = Vec::new();
                for (header, path) in spec {
                    let path = path
                        .trim()
                        .strip_prefix('{')
                        .and_then(|p| p.strip_suffix('}'))
                        .unwrap_or(path);
                    cols.push((header.clone(), Path::parse(path)?));
                }
                Some(Columns::Custom(cols))
            }
            _ => None,
        };
        let template = match format {
            StatusFormat::JsonPath(t) => Some(Template::parse(t)?),
            _ => None,
        };
        Ok(Printer {
            format: format.clone(),
            columns,
            template,
            no_headers,
            all_namespaces,
        })
    }

    fn header(&self) -> Vec<String> {
        let mut h = Vec::new();
        match &self.columns {
            Some(Columns::Standard { wide }) => {
                if self.all_namespaces {
                    h.push("NAMESPACE".to_string());
                }
                h.extend(
                    [
                        "NAME",
                        "STATUS",
                        "WEIGHT",
                        "FAILEDCHECKS",
                        "LASTTRANSITIONTIME",
                        "DRIVER",
                    ]
                    .map(String::from),
                );
                if *wide {
                    h.extend(["TARGET", "ITERATIONS", "REVISION", "PROMOTED"].map(String::from));
                }
            }
            Some(Columns::Custom(cols)) => h.extend(cols.iter().map(|(n, _)| n.clone())),
            None => {}
        }
        h
    }

    /// One row's cells, each redacted before it is measured or cut.
    fn cells(&self, c: &CanaryStatus) -> Vec<String> {
        self.raw_cells(c)
            .into_iter()
            .map(|cell| crate::secrets::redact(&cell).into_owned())
            .collect()
    }

    fn raw_cells(&self, c: &CanaryStatus) -> Vec<String> {
        let mut row = Vec::new();
        match &self.columns {
            Some(Columns::Standard { wide }) => {
                let driver = match &c.driver {
                    Some(d) if d.alive => d.holder.clone(),
                    Some(d) => format!(
                        "lost ({}, last seen {})",
                        d.holder,
                        d.renew_time.to_rfc3339()
                    ),
                    None => "-".to_string(),
                };
                if self.all_namespaces {
                    row.push(c.namespace.clone());
                }
                row.extend([
                    c.name.clone(),
                    c.phase_text(),
                    c.weight.to_string(),
                    c.failed_checks.to_string(),
                    c.last_transition_time.to_rfc3339(),
                    driver,
                ]);
                if *wide {
                    row.extend([
                        format!("{}/{}", c.kind.noun(), c.target),
                        c.iterations.to_string(),
                        c.revision.clone().unwrap_or_default(),
                        c.promoted_revision.clone().unwrap_or_default(),
                    ]);
                }
            }
            Some(Columns::Custom(cols)) => {
                let object = canary_object(c);
                for (_, path) in cols {
                    let values: Vec<String> = path
                        .select(&object)
                        .into_iter()
                        .map(super::jsonpath::text)
                        .collect();
                    row.push(if values.is_empty() {
                        "<none>".to_string()
                    } else {
                        values.join(",")
                    });
                }
            }
            None => {}
        }
        row
    }

    /// The canaries once. `single`: one canary was asked for by name, so
    /// `-o json|yaml|jsonpath` print that object rather than a `List`.
    pub(crate) fn list(&self, all: &[CanaryStatus], single: bool, detail: bool) {
        let mut out = super::stdout();
        let document = || match (single, all) {
            (true, [one]) => canary_object(one),
            _ => list_object(all.iter().map(canary_object).collect()),
        };
        match &self.format {
            StatusFormat::Json => {
                let _ = serde_json::to_writer_pretty(&mut out, &document());
                let _ = writeln!(out);
                return;
            }
            StatusFormat::Yaml => {
                let _ = write!(
                    out,
                    "{}",
                    serde_yaml::to_string(&document()).unwrap_or_default()
                );
                return;
            }
            StatusFormat::Name => {
                for c in all {
                    let _ = writeln!(out, "{NAME_PREFIX}/{}", c.name);
                }
                return;
            }
            StatusFormat::JsonPath(_) => {
                let t = self.template.as_ref().expect("parsed with the format");
                let _ = write!(out, "{}", t.render(&document()));
                return;
            }
            StatusFormat::Table | StatusFormat::Wide | StatusFormat::CustomColumns(_) => {}
        }
        if all.is_empty() {
            // As kubectl: on stderr, so that a script counting lines sees none.
            let _ = writeln!(super::stderr(), "No canaries found.");
            return;
        }
        let mut rows = Vec::new();
        if !self.no_headers {
            rows.push(self.header());
        }
        rows.extend(all.iter().map(|c| self.cells(c)));
        let widths = widths(&rows, &[]);
        for r in &rows {
            let _ = writeln!(out, "{}", line(r, &widths));
        }
        if detail && matches!(self.columns, Some(Columns::Standard { .. })) {
            for c in all {
                history(&mut out, c);
            }
        }
    }

    /// The printer of a watch: `-w` prints the canaries first, then one
    /// row (or document) per change.
    pub(crate) fn rows(self, first: &[CanaryStatus]) -> StatusRows {
        let mut rows: Vec<Vec<String>> = vec![self.header()];
        rows.extend(first.iter().map(|c| self.cells(c)));
        // Room for a phase like "WaitingPromotion (paused)" and a time.
        let minimum = match self.columns {
            Some(Columns::Standard { .. }) => {
                let offset = usize::from(self.all_namespaces);
                let mut m = vec![0; offset + 5];
                m[offset + 1] = 25;
                m[offset + 4] = 24;
                m
            }
            _ => Vec::new(),
        };
        let widths = widths(&rows, &minimum);
        StatusRows {
            printer: self,
            widths,
            header_done: false,
        }
    }
}

/// Column widths as kubectl's tab writer sets them: the widest cell plus
/// three spaces, and at least ten.
fn widths(rows: &[Vec<String>], minimum: &[usize]) -> Vec<usize> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
                .max(minimum.get(i).copied().unwrap_or(0));
            (widest + 3).max(10)
        })
        .collect()
}

fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let w = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<w$}"));
            if cell.chars().count() >= w {
                out.push(' ');
            }
        }
    }
    out.trim_end().to_string()
}

/// One canary's step history with its metric values.
fn history(out: &mut impl Write, c: &CanaryStatus) {
    if c.history.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nHistory of {}.{}", c.name, c.namespace);
    let mut h = super::table();
    h.set_header(vec![
        "time", "phase", "weight", "failed", "metrics", "message",
    ]);
    for e in &c.history {
        let metrics: Vec<String> = e
            .metrics
            .iter()
            .map(|m| match m.value {
                Some(v) => format!(
                    "{} {:.2}{}",
                    m.name,
                    v,
                    if m.passed { "" } else { " (failed)" }
                ),
                None => format!("{} no value", m.name),
            })
            .collect();
        h.add_row(vec![
            e.time.to_rfc3339(),
            e.phase.as_str().to_string(),
            e.canary_weight.to_string(),
            e.failed_checks.to_string(),
            metrics.join(", "),
            // Redacted whole, before the table wraps it over lines.
            crate::secrets::redact(&e.message).into_owned(),
        ]);
    }
    let _ = writeln!(out, "{h}");
}

/// `canary status -w`: a header, then a row per change, in columns as wide
/// as the first listing needed (as `kubectl get -w`); with `-o json|yaml`
/// one object per change, with `-o name` and `-o jsonpath=` one line or
/// rendering per change.
pub(crate) struct StatusRows {
    printer: Printer,
    widths: Vec<usize>,
    header_done: bool,
}

impl StatusRows {
    /// Prints one canary's row (the header first, once).
    pub(crate) fn print(&mut self, c: &CanaryStatus) {
        let mut out = super::stdout();
        match &self.printer.format {
            StatusFormat::Json => {
                let _ = writeln!(out, "{}", canary_object(c));
            }
            StatusFormat::Yaml => {
                let _ = write!(
                    out,
                    "---\n{}",
                    serde_yaml::to_string(&canary_object(c)).unwrap_or_default()
                );
            }
            StatusFormat::Name => {
                let _ = writeln!(out, "{NAME_PREFIX}/{}", c.name);
            }
            StatusFormat::JsonPath(_) => {
                let t = self.printer.template.as_ref().expect("parsed");
                let _ = write!(out, "{}", t.render(&canary_object(c)));
            }
            StatusFormat::Table | StatusFormat::Wide | StatusFormat::CustomColumns(_) => {
                if !self.header_done && !self.printer.no_headers {
                    let _ = writeln!(out, "{}", line(&self.printer.header(), &self.widths));
                }
                self.header_done = true;
                let _ = writeln!(out, "{}", line(&self.printer.cells(c), &self.widths));
            }
        }
        let _ = out.flush();
    }
}

/// What `status --wait` reports while it waits, on stderr: one line per
/// change of the canary's phase, weight, checks or driver.
pub(crate) fn wait_progress(c: &CanaryStatus) {
    let driver = match &c.driver {
        Some(d) if d.alive => format!("driven by {}", d.holder),
        Some(d) => format!("driver {} lost", d.holder),
        None => "no driver".to_string(),
    };
    super::progress(&format!(
        "{}.{}: {}, canary weight {}%, {} failed check{}, {driver}",
        c.name,
        c.namespace,
        c.phase_text(),
        c.weight,
        c.failed_checks,
        if c.failed_checks == 1 { "" } else { "s" }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::engine::state::Phase;
    use canary_core::time::Time;

    fn status() -> CanaryStatus {
        CanaryStatus {
            name: "podinfo".into(),
            namespace: "prod".into(),
            target: "podinfo".into(),
            kind: crate::cluster::workload::Kind::Deployment,
            phase: Some(Phase::Failed),
            paused: None,
            weight: 0,
            failed_checks: 3,
            iterations: 0,
            last_transition_time: Time(1_700_000_000_000),
            driver: None,
            revision: Some("abc".into()),
            promoted_revision: Some("def".into()),
            tracked_configs: Default::default(),
            failure: None,
            history: Vec::new(),
            document: None,
            state: canary_core::engine::state::State::new(Time(1_700_000_000_000)),
        }
    }

    #[test]
    fn with_no_stored_spec_the_object_names_its_target() {
        let o = canary_object(&status());
        assert_eq!(o["spec"]["targetRef"]["name"], "podinfo");
        assert_eq!(o["status"]["conditions"][0]["status"], "False");
        assert_eq!(o["status"]["conditions"][0]["reason"], "Failed");
        assert_eq!(o["status"]["canary"]["driver"], Value::Null);
    }

    #[test]
    fn columns_are_laid_out_as_kubectl_lays_them_out() {
        let rows = vec![
            vec!["NAME".to_string(), "PHASE".to_string()],
            vec!["podinfo".to_string(), "Failed".to_string()],
        ];
        let w = widths(&rows, &[]);
        assert_eq!(line(&rows[0], &w), "NAME      PHASE");
        assert_eq!(line(&rows[1], &w), "podinfo   Failed");
    }
}
