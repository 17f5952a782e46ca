//! The simulated kube-controller-manager and kubelet: Deployments roll out
//! through ReplicaSet-like revisions with the real rolling-update arithmetic
//! (`maxSurge`/`maxUnavailable`, `Recreate`), their pods turn Ready after a
//! delay (never, for an image the scenario marks `broken`: it crash-loops),
//! and `status` moves as on a real cluster: `observedGeneration`,
//! `replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`,
//! `unavailableReplicas`, conditions `Available` and `Progressing`
//! (`NewReplicaSetCreated`, `ReplicaSetUpdated`, `NewReplicaSetAvailable`,
//! `ProgressDeadlineExceeded`, `DeploymentPaused`). DaemonSets run one pod
//! on each node (`ControllerConfig::nodes`) their `nodeSelector` matches,
//! replacing outdated pods one node at a time (`maxUnavailable: 1`).
//!
//! Pods are real objects in the store (template labels plus
//! `pod-template-hash`, an owner reference, phase and conditions), so
//! `kubectl get pods` works and Services select them by label. ReplicaSets
//! themselves are not served by the sim; the controller keeps them in
//! memory and names them in the pods' owner references.
//!
//! Status is written through the status subresource with the object's
//! resourceVersion as precondition, so a spec change racing with a status
//! write conflicts and is re-read on the next pass, as with the real
//! controller.
//!
//! Like the real controllers it works from changes, not by polling: each
//! committed change names the object to look at (a pod also names the
//! Deployment or DaemonSet owning it), and a pass looks only at those and
//! at the objects due at that moment — a pod reaching its next stage, a pod
//! turning available after `minReadySeconds`, a progress deadline, the
//! retry of a write that conflicted. Between them it sleeps. Missed changes
//! (a lagging subscription) make the next pass look at everything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use crate::scenario::{Behaviours, Rng, SAFE_ALPHABET};
use crate::store::{
    ApiError, Change, ChangeType, DeleteOptions, Store, Subresource, WriteOptions, fnv64,
    now_rfc3339, stable_uid,
};

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How long a new pod takes to turn Ready (per-image overrides come
    /// from the behaviours).
    pub readiness_delay: Duration,
    /// How soon an object whose write failed (a conflict) is looked at
    /// again.
    pub retry: Duration,
    /// Seed of pod name suffixes.
    pub seed: u64,
    /// The node every Deployment's pod runs on.
    pub node_name: String,
    /// How many nodes the cluster has (`sim-node-1` ...): a DaemonSet runs
    /// one pod on each node its pod template's `nodeSelector` matches.
    pub nodes: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            readiness_delay: Duration::from_secs(2),
            retry: Duration::from_millis(50),
            seed: 1,
            node_name: "sim-node-1".to_string(),
            nodes: 3,
        }
    }
}

/// The Deployment/DaemonSet controller and kubelet of one simulated cluster.
pub struct Controller {
    store: Arc<Store>,
    behaviours: Arc<Behaviours>,
    config: ControllerConfig,
    state: Mutex<State>,
}

struct State {
    rng: Rng,
    /// By Deployment uid.
    deployments: HashMap<String, DeployState>,
    /// By DaemonSet uid: the last template hash.
    daemonsets: HashMap<String, String>,
    /// By (namespace, pod name).
    pods: HashMap<(String, String), PodRt>,
    next_ip: u32,
    /// The Deployment (namespace, name) of each ReplicaSet uid: pods name
    /// their ReplicaSet as owner.
    rs_owner: HashMap<String, ObjKey>,
    /// What the next pass looks at.
    work: Work,
    /// When an object is next due for a look without a change: a pod's
    /// next stage, a pod turning available after `minReadySeconds`, a
    /// progress deadline, the retry of a failed write.
    due: HashMap<Key, Instant>,
}

type ObjKey = (String, String);

/// An object the controller looks after.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pod(ObjKey),
    Deployment(ObjKey),
    DaemonSet(ObjKey),
}

/// The objects a pass looks at: those changed since the last pass and
/// those due.
#[derive(Default)]
struct Work {
    /// Everything (the first pass, and after changes were missed).
    all: bool,
    pods: HashSet<ObjKey>,
    deployments: HashSet<ObjKey>,
    daemonsets: HashSet<ObjKey>,
    /// Deleted Deployments, (namespace, uid): their pods go.
    gone: Vec<(String, String)>,
    scaled_objects: bool,
    /// A Knative Service, Revision or Revision Deployment changed.
    knative: bool,
}

impl Work {
    fn add(&mut self, key: Key) {
        match key {
            Key::Pod(k) => self.pods.insert(k),
            Key::Deployment(k) => self.deployments.insert(k),
            Key::DaemonSet(k) => self.daemonsets.insert(k),
        };
    }
}

struct DeployState {
    namespace: String,
    revision: u64,
    rss: Vec<Rs>,
    /// When progress was last seen (the Progressing condition's
    /// `lastUpdateTime`, at full resolution for short test deadlines).
    progress_at: Instant,
}

/// A ReplicaSet kept in memory.
struct Rs {
    hash: String,
    name: String,
    uid: String,
    replicas: i32,
    revision: u64,
}

/// What the kubelet knows of a pod.
struct PodRt {
    uid: String,
    created: Instant,
    delay: Duration,
    broken: bool,
    ip: String,
    scheduled_at: String,
    started_at: Option<String>,
    ready_at: Option<String>,
    /// When the pod turned Ready (never for a broken one).
    ready_since: Option<Instant>,
    /// (stage, restarts) last written to the store.
    written: Option<(Stage, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pending,
    Running,
    Ready,
    CrashLoop,
}

/// A pod of a workload, as one pass sees it.
#[derive(Clone)]
struct PodView {
    name: String,
    owner_uid: String,
    created: Instant,
    ready: bool,
    available: bool,
    ready_since: Option<Instant>,
}

impl PodView {
    /// When a Ready pod turns available (`None` once it is, or while it
    /// is not Ready).
    fn available_at(&self, min_ready: Duration) -> Option<Instant> {
        match self.ready_since {
            Some(s) if !self.available => Some(s + min_ready),
            _ => None,
        }
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

const APPS: &str = "apps/v1";

/// The annotation that pauses a ScaledObject at a number of replicas.
pub const PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

fn opts(manager: &str) -> WriteOptions {
    WriteOptions {
        field_manager: Some(manager.to_string()),
        ..WriteOptions::default()
    }
}

impl Controller {
    pub fn new(
        store: Arc<Store>,
        behaviours: Arc<Behaviours>,
        config: ControllerConfig,
    ) -> Arc<Controller> {
        let rng = Rng::derive(config.seed, "controller");
        Arc::new(Controller {
            store,
            behaviours,
            config,
            state: Mutex::new(State {
                rng,
                deployments: HashMap::new(),
                daemonsets: HashMap::new(),
                pods: HashMap::new(),
                next_ip: 10,
                rs_owner: HashMap::new(),
                work: Work {
                    all: true,
                    ..Work::default()
                },
                due: HashMap::new(),
            }),
        })
    }

    /// Runs passes until `shutdown` turns true: after store changes
    /// (coalesced), on the objects they touch, and whenever an object is
    /// due. Nothing runs while nothing changes and nothing is due.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut rx = self.store.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next = self.pass();
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = wait => {}
                r = rx.recv() => {
                    match r {
                        Ok(c) => self.note(&c),
                        Err(RecvError::Lagged(_)) => self.note_missed(),
                        Err(RecvError::Closed) => return,
                    }
                    // Let a burst of writes land, then take them all.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    loop {
                        match rx.try_recv() {
                            Ok(c) => self.note(&c),
                            Err(TryRecvError::Lagged(_)) => self.note_missed(),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes were lost (the receiver lagged): the next pass looks at
    /// everything.
    fn note_missed(&self) {
        self.lock().work.all = true;
    }

    /// Notes what a committed change gives the next pass to look at.
    fn note(&self, c: &Change) {
        let key = || (c.namespace.clone(), c.name.clone());
        let mut st = self.lock();
        if crate::knative::concerns(c.kind.group, c.kind.kind, &c.object) {
            st.work.knative = true;
        }
        match (c.kind.group, c.kind.kind) {
            ("", "Pod") => {
                st.work.pods.insert(key());
                // The workload owning the pod recounts.
                for o in std::iter::once(&c.object).chain(&c.old) {
                    let Some(r) = controller_ref(o) else { continue };
                    match r["kind"].as_str() {
                        Some("ReplicaSet") => {
                            let owner = r["uid"].as_str().and_then(|u| st.rs_owner.get(u)).cloned();
                            if let Some(d) = owner {
                                st.work.deployments.insert(d);
                            }
                        }
                        Some("DaemonSet") => {
                            let name = r["name"].as_str().unwrap_or("").to_string();
                            st.work.daemonsets.insert((c.namespace.clone(), name));
                        }
                        _ => {}
                    }
                }
            }
            ("apps", "Deployment") => {
                if c.change == ChangeType::Deleted {
                    let uid = uid_of(&c.object).to_string();
                    st.work.gone.push((c.namespace.clone(), uid));
                }
                st.work.deployments.insert(key());
                st.work.scaled_objects = true;
            }
            ("apps", "DaemonSet") => {
                if c.change == ChangeType::Deleted {
                    st.daemonsets.remove(uid_of(&c.object));
                }
                st.work.daemonsets.insert(key());
            }
            ("keda.sh", "ScaledObject") => st.work.scaled_objects = true,
            _ => {}
        }
    }

    /// One pass over what changed since the last one and what is due now;
    /// returns when the next object is due.
    fn pass(&self) -> Option<Instant> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let now = Instant::now();
        let due: Vec<Key> = st
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            st.due.remove(&k);
            st.work.add(k);
        }
        let work = std::mem::take(&mut st.work);
        if work.all {
            self.sync_all(st, now);
        } else {
            self.sync_some(st, work, now);
        }
        st.due.values().min().copied()
    }

    fn sync_all(&self, st: &mut State, now: Instant) {
        let pods = self.store.list("v1", "Pod", None);
        let mut seen = HashSet::new();
        for pod in &pods {
            seen.insert((ns_of(pod).to_string(), name_of(pod).to_string()));
            self.kubelet_pod(st, pod, now);
        }
        st.pods.retain(|k, _| seen.contains(k));
        st.due.retain(|k, _| match k {
            Key::Pod(p) => seen.contains(p),
            _ => true,
        });
        let deployments = self.store.list(APPS, "Deployment", None);
        let mut live = HashSet::new();
        for d in &deployments {
            live.insert(uid_of(d).to_string());
            self.deployment(st, d, now);
        }
        let gone: Vec<String> = st
            .deployments
            .keys()
            .filter(|u| !live.contains(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.collect_garbage(st, &uid);
        }
        let daemonsets = self.store.list(APPS, "DaemonSet", None);
        let live: HashSet<String> = daemonsets.iter().map(|d| uid_of(d).to_string()).collect();
        st.daemonsets.retain(|u, _| live.contains(u));
        for d in &daemonsets {
            self.daemonset(st, d, now);
        }
        self.sync_scaled_objects();
        crate::knative::sync(&self.store);
    }

    fn sync_some(&self, st: &mut State, work: Work, now: Instant) {
        for key in &work.pods {
            match self.store.get("v1", "Pod", &key.0, &key.1) {
                Some(pod) => self.kubelet_pod(st, &pod, now),
                None => {
                    st.pods.remove(key);
                    st.due.remove(&Key::Pod(key.clone()));
                }
            }
        }
        for (_, uid) in &work.gone {
            self.collect_garbage(st, uid);
        }
        for key in &work.deployments {
            match self.store.get(APPS, "Deployment", &key.0, &key.1) {
                Some(d) => self.deployment(st, &d, now),
                None => {
                    st.due.remove(&Key::Deployment(key.clone()));
                }
            }
        }
        for key in &work.daemonsets {
            match self.store.get(APPS, "DaemonSet", &key.0, &key.1) {
                Some(d) => self.daemonset(st, &d, now),
                None => {
                    st.due.remove(&Key::DaemonSet(key.clone()));
                }
            }
        }
        if work.scaled_objects {
            self.sync_scaled_objects();
        }
        if work.knative {
            crate::knative::sync(&self.store);
        }
    }

    /// Notes when an object is next due (`None`: only on a change).
    fn set_due(st: &mut State, key: Key, at: Option<Instant>) {
        match at {
            Some(at) => st.due.insert(key, at),
            None => st.due.remove(&key),
        };
    }

    fn deployment(&self, st: &mut State, d: &Value, now: Instant) {
        let key = Key::Deployment((ns_of(d).to_string(), name_of(d).to_string()));
        // A conflict is looked at again shortly.
        let at = self
            .sync_deployment(st, d, now)
            .unwrap_or_else(|_| Some(now + self.config.retry));
        Self::set_due(st, key, at);
    }

    fn daemonset(&self, st: &mut State, d: &Value, now: Instant) {
        let key = Key::DaemonSet((ns_of(d).to_string(), name_of(d).to_string()));
        let at = self
            .sync_daemonset(st, d, now)
            .unwrap_or_else(|_| Some(now + self.config.retry));
        Self::set_due(st, key, at);
    }

    /// What garbage collection of a deleted Deployment's ReplicaSets does:
    /// their pods go.
    fn collect_garbage(&self, st: &mut State, uid: &str) {
        let Some(ds) = st.deployments.remove(uid) else {
            return;
        };
        let owners: Vec<String> = ds.rss.iter().map(|r| r.uid.clone()).collect();
        for o in &owners {
            st.rs_owner.remove(o);
        }
        let pods = self.store.list_where("v1", "Pod", &ds.namespace, |p| {
            owners.iter().any(|o| o == owner_uid(p))
        });
        for p in pods {
            let _ = self.delete_pod(&ds.namespace, name_of(&p));
        }
    }

    fn sync_scaled_objects(&self) {
        for so in self.store.list("keda.sh/v1alpha1", "ScaledObject", None) {
            let _ = self.sync_scaled_object(&so);
        }
    }

    // -- KEDA ----------------------------------------------------------------

    /// What KEDA does to a ScaledObject's Deployment, with no events to
    /// scale on: paused (`autoscaling.keda.sh/paused-replicas`), it holds
    /// that many replicas; otherwise it keeps the replicas within
    /// `minReplicaCount` (default 0) and `maxReplicaCount` (default 100).
    fn sync_scaled_object(&self, so: &Value) -> Result<(), ApiError> {
        let ns = ns_of(so).to_string();
        let target = &so["spec"]["scaleTargetRef"];
        let kind = target["kind"].as_str().unwrap_or("Deployment");
        let api_version = target["apiVersion"].as_str().unwrap_or(APPS);
        let Some(name) = target["name"].as_str() else {
            return Ok(());
        };
        if kind != "Deployment" || api_version != APPS {
            return Ok(());
        }
        let Some(d) = self.store.get(APPS, "Deployment", &ns, name) else {
            return Ok(());
        };
        let current = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let paused = so["metadata"]["annotations"][PAUSED_REPLICAS]
            .as_str()
            .and_then(|v| v.trim().parse::<i64>().ok());
        let want = match paused {
            Some(n) => n.max(0),
            None => {
                let min = so["spec"]["minReplicaCount"].as_i64().unwrap_or(0).max(0);
                let max = so["spec"]["maxReplicaCount"]
                    .as_i64()
                    .unwrap_or(100)
                    .max(min);
                current.clamp(min, max)
            }
        };
        if want == current {
            return Ok(());
        }
        let mut obj = d.clone();
        obj["spec"]["replicas"] = json!(want);
        let k = self.store.kind(APPS, "Deployment")?;
        self.store
            .update_in(k, &ns, name, obj, Subresource::Main, &opts("keda-operator"))?;
        Ok(())
    }

    // -- kubelet -----------------------------------------------------------

    /// What the kubelet does for one pod: moves it through its stages as
    /// time passes and writes its status when the stage changes.
    fn kubelet_pod(&self, st: &mut State, pod: &Value, now: Instant) {
        let key = (ns_of(pod).to_string(), name_of(pod).to_string());
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            st.due.remove(&Key::Pod(key));
            return;
        }
        let uid = uid_of(pod).to_string();
        if st.pods.get(&key).is_some_and(|rt| rt.uid != uid) {
            st.pods.remove(&key);
        }
        if !st.pods.contains_key(&key) {
            let (delay, broken) = self.readiness_of(pod);
            let ip = next_ip(st);
            st.pods.insert(
                key.clone(),
                PodRt {
                    uid,
                    created: now,
                    delay,
                    broken,
                    ip,
                    scheduled_at: now_rfc3339(),
                    started_at: None,
                    ready_at: None,
                    ready_since: None,
                    written: None,
                },
            );
        }
        let rt = st.pods.get_mut(&key).expect("just inserted");
        let elapsed = now.duration_since(rt.created);
        let period = rt.delay.max(Duration::from_secs(1));
        let (stage, restarts) = if elapsed < rt.delay / 2 {
            (Stage::Pending, 0)
        } else if rt.broken {
            let n = ((elapsed - rt.delay / 2).as_secs_f64() / period.as_secs_f64()) as u32 + 1;
            (Stage::CrashLoop, n)
        } else if elapsed < rt.delay {
            (Stage::Running, 0)
        } else {
            (Stage::Ready, 0)
        };
        // When the stage (or the restart count) changes next.
        let mut next = match stage {
            Stage::Pending => Some(rt.created + rt.delay / 2),
            Stage::Running => Some(rt.created + rt.delay),
            Stage::CrashLoop => Some(rt.created + rt.delay / 2 + period * restarts),
            Stage::Ready => None,
        };
        if stage != Stage::Pending && rt.started_at.is_none() {
            rt.started_at = Some(now_rfc3339());
        }
        if stage == Stage::Ready && rt.ready_since.is_none() {
            rt.ready_since = Some(now);
            rt.ready_at = Some(now_rfc3339());
        }
        if rt.written != Some((stage, restarts)) {
            let status = pod_status(pod, rt, stage, restarts);
            let mut obj = pod.clone();
            obj["status"] = status;
            let written = self.store.kind("v1", "Pod").and_then(|k| {
                self.store.update_in(
                    k,
                    &key.0,
                    &key.1,
                    obj,
                    Subresource::Status,
                    &opts("kubelet"),
                )
            });
            match written {
                Ok(_) => rt.written = Some((stage, restarts)),
                Err(_) => {
                    rt.written = None;
                    next = Some(now + self.config.retry);
                }
            }
        }
        Self::set_due(st, Key::Pod(key), next);
    }

    /// The readiness delay and brokenness of a pod's images.
    fn readiness_of(&self, pod: &Value) -> (Duration, bool) {
        let b = &self.behaviours;
        let mut delay = Duration::ZERO;
        let mut broken = false;
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let beh = b.for_image(c["image"].as_str().unwrap_or(""));
            delay = delay.max(beh.readiness_delay.unwrap_or(self.config.readiness_delay));
            broken |= beh.broken;
        }
        (delay, broken)
    }

    /// Whether the kubelet has this pod Ready, and since when.
    fn ready_since(&self, st: &State, ns: &str, name: &str) -> Option<Instant> {
        st.pods
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|rt| rt.ready_since)
    }

    // -- Deployments ---------------------------------------------------------

    /// Brings a Deployment's ReplicaSets, pods and status up to date;
    /// returns when it is next due without a change (a pod turning
    /// available, the progress deadline).
    fn sync_deployment(
        &self,
        st: &mut State,
        d: &Value,
        now: Instant,
    ) -> Result<Option<Instant>, ApiError> {
        let ns = ns_of(d).to_string();
        let name = name_of(d).to_string();
        let uid = uid_of(d).to_string();
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let spec = &d["spec"];
        let desired = spec["replicas"].as_i64().unwrap_or(1).max(0) as i32;
        let paused = spec["paused"].as_bool().unwrap_or(false);
        let min_ready = Duration::from_secs(spec["minReadySeconds"].as_u64().unwrap_or(0));
        let deadline = spec["progressDeadlineSeconds"]
            .as_u64()
            .map(Duration::from_secs);
        let recreate = spec["strategy"]["type"].as_str() == Some("Recreate");
        let (surge, unavailable) = if recreate {
            (0, 0)
        } else {
            let ru = &spec["strategy"]["rollingUpdate"];
            let s = int_or_percent(&ru["maxSurge"], desired, true, 25);
            let u = int_or_percent(&ru["maxUnavailable"], desired, false, 25);
            // Kubernetes' ResolveFenceposts.
            if s == 0 && u == 0 { (0, 1) } else { (s, u) }
        };
        let template = &spec["template"];
        let hash = template_hash(template);

        let ds = st
            .deployments
            .entry(uid.clone())
            .or_insert_with(|| DeployState {
                namespace: ns.clone(),
                revision: 0,
                rss: Vec::new(),
                progress_at: now,
            });
        let mut created_new = false;
        if !paused {
            match ds.rss.iter_mut().find(|r| r.hash == hash) {
                Some(rs) => {
                    // Going back to an older template revives its ReplicaSet.
                    if rs.revision != ds.revision {
                        ds.revision += 1;
                        rs.revision = ds.revision;
                    }
                }
                None => {
                    ds.revision += 1;
                    let rs_name = format!("{name}-{hash}");
                    let rs_uid = stable_uid(&format!("{uid}/{rs_name}"));
                    st.rs_owner
                        .insert(rs_uid.clone(), (ns.clone(), name.clone()));
                    ds.rss.push(Rs {
                        uid: rs_uid,
                        name: rs_name,
                        hash: hash.clone(),
                        replicas: 0,
                        revision: ds.revision,
                    });
                    created_new = true;
                }
            }
        }
        ds.rss.sort_by_key(|r| r.revision);

        let views = |st: &State, ds_rss: &[Rs]| -> Vec<PodView> {
            self.pods_of(
                st,
                &ns,
                ds_rss.iter().map(|r| r.uid.as_str()),
                min_ready,
                now,
            )
        };
        let ds = st.deployments.get(&uid).expect("present");
        let pods = views(st, &ds.rss);
        let new_idx = ds.rss.iter().position(|r| r.hash == hash && !paused);
        let count = |rs: &Rs, f: &dyn Fn(&PodView) -> bool| -> i32 {
            pods.iter()
                .filter(|p| p.owner_uid == rs.uid && f(p))
                .count() as i32
        };

        // Scaling decisions, as the rolling-update and recreate strategies.
        let mut targets: Vec<i32> = ds.rss.iter().map(|r| r.replicas).collect();
        if let Some(ni) = new_idx {
            let old_total: i32 = targets
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ni)
                .map(|(_, r)| r)
                .sum();
            if recreate {
                let old_pods = pods.iter().any(|p| p.owner_uid != ds.rss[ni].uid);
                for (i, t) in targets.iter_mut().enumerate() {
                    if i != ni {
                        *t = 0;
                    }
                }
                if !old_pods {
                    targets[ni] = desired;
                }
            } else if old_total == 0 {
                targets[ni] = desired;
            } else {
                let current: i32 = targets.iter().sum();
                let max_total = desired + surge;
                if targets[ni] < desired && current < max_total {
                    targets[ni] += (max_total - current).min(desired - targets[ni]);
                } else if targets[ni] > desired {
                    targets[ni] = desired;
                }
                let all: i32 = targets.iter().sum();
                let min_available = desired - unavailable.min(desired);
                let new_available = count(&ds.rss[ni], &|p| p.available);
                let new_unavailable = targets[ni] - new_available;
                let mut max_down = all - min_available - new_unavailable;
                if max_down > 0 {
                    // Old replicas that are not available go first.
                    for (i, rs) in ds.rss.iter().enumerate() {
                        if i == ni || max_down <= 0 {
                            continue;
                        }
                        let unhealthy = targets[i] - count(rs, &|p| p.available).min(targets[i]);
                        let down = unhealthy.min(max_down);
                        if down > 0 {
                            targets[i] -= down;
                            max_down -= down;
                        }
                    }
                    let available: i32 = ds
                        .rss
                        .iter()
                        .enumerate()
                        .map(|(i, rs)| count(rs, &|p| p.available).min(targets[i]))
                        .sum();
                    let mut total_down = available - min_available;
                    for (i, t) in targets.iter_mut().enumerate() {
                        if i == ni || total_down <= 0 || *t == 0 {
                            continue;
                        }
                        let down = (*t).min(total_down);
                        *t -= down;
                        total_down -= down;
                    }
                }
            }
        }
        let rs_list: Vec<(String, String, String, i32)> = ds
            .rss
            .iter()
            .zip(&targets)
            .map(|(r, t)| (r.uid.clone(), r.name.clone(), r.hash.clone(), *t))
            .collect();
        let ds = st.deployments.get_mut(&uid).expect("present");
        for (rs, t) in ds.rss.iter_mut().zip(&targets) {
            rs.replicas = *t;
        }

        // Pods to match the ReplicaSets.
        for (rs_uid, rs_name, rs_hash, target) in &rs_list {
            let mut mine: Vec<&PodView> = pods.iter().filter(|p| &p.owner_uid == rs_uid).collect();
            let have = mine.len() as i32;
            if have < *target {
                for _ in 0..(*target - have) {
                    let pod = self.new_pod(
                        st,
                        &ns,
                        template,
                        ("ReplicaSet", rs_name, rs_uid),
                        ("pod-template-hash", rs_hash),
                        &self.config.node_name,
                    );
                    if let Ok(k) = self.store.kind("v1", "Pod") {
                        self.store
                            .create_in(k, &ns, pod, &opts("kube-controller-manager"))?;
                    }
                }
            } else if have > *target {
                // Not-ready pods first, then the newest (the real ranking,
                // simplified).
                mine.sort_by(|a, b| a.ready.cmp(&b.ready).then(b.created.cmp(&a.created)));
                for p in mine.iter().take((have - *target) as usize) {
                    self.delete_pod(&ns, &p.name)?;
                    st.pods.remove(&(ns.clone(), p.name.clone()));
                }
            }
        }

        // Status, from what exists after this pass.
        let ds = st.deployments.get(&uid).expect("present");
        let pods = views(st, &ds.rss);
        let replicas = pods.len() as i64;
        let new_rs = new_idx.map(|i| &ds.rss[i]);
        let updated = new_rs.map_or(0, |rs| {
            pods.iter().filter(|p| p.owner_uid == rs.uid).count()
        }) as i64;
        let ready = pods.iter().filter(|p| p.ready).count() as i64;
        let available = pods.iter().filter(|p| p.available).count() as i64;
        let total_target: i64 = ds.rss.iter().map(|r| i64::from(r.replicas)).sum();
        let unavailable_count = (total_target - available).max(0);
        let rs_display = new_rs
            .map(|r| r.name.clone())
            .or_else(|| ds.rss.last().map(|r| r.name.clone()))
            .unwrap_or_default();

        let old = &d["status"];
        let old_n = |f: &str| old[f].as_i64().unwrap_or(0);
        let mut conds: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
        let stamp = now_rfc3339();
        let mut progress_at = ds.progress_at;
        if created_new {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &format!("Created new replica set \"{rs_display}\""),
                    &stamp,
                ),
            );
            progress_at = now;
        }
        let max_unavailable = if recreate || desired == 0 {
            0
        } else {
            unavailable.min(desired)
        };
        if available >= i64::from(desired - max_unavailable) {
            set_condition(
                &mut conds,
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    &stamp,
                ),
            );
        } else {
            set_condition(
                &mut conds,
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    &stamp,
                ),
            );
        }
        let current = conds.iter().find(|c| c["type"] == "Progressing").cloned();
        let reason = current
            .as_ref()
            .and_then(|c| c["reason"].as_str())
            .unwrap_or("")
            .to_string();
        if deadline.is_none() {
            conds.retain(|c| c["type"] != "Progressing");
        } else if paused {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    &stamp,
                ),
            );
        } else if reason == "DeploymentPaused" {
            set_condition(
                &mut conds,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                    &stamp,
                ),
            );
            progress_at = now;
        } else {
            let d_i = i64::from(desired);
            let complete = updated == d_i && replicas == d_i && available == d_i;
            let progressing = updated > old_n("updatedReplicas")
                || ready > old_n("readyReplicas")
                || (replicas - updated) < (old_n("replicas") - old_n("updatedReplicas"))
                || available > old_n("availableReplicas");
            if complete {
                set_condition(
                    &mut conds,
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &format!("ReplicaSet \"{rs_display}\" has successfully progressed."),
                        &stamp,
                    ),
                );
            } else if progressing {
                let mut c = condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs_display}\" is progressing."),
                    &stamp,
                );
                if let Some(cur) = &current
                    && cur["status"] == "True"
                {
                    c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                }
                conds.retain(|c| c["type"] != "Progressing");
                conds.push(c);
                progress_at = now;
            } else {
                let timed_out = match reason.as_str() {
                    "" => false,
                    "ProgressDeadlineExceeded" => true,
                    "NewReplicaSetAvailable" => false,
                    _ => deadline.is_some_and(|dl| now.duration_since(progress_at) > dl),
                };
                if timed_out {
                    set_condition(
                        &mut conds,
                        condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            &format!("ReplicaSet \"{rs_display}\" has timed out progressing."),
                            &stamp,
                        ),
                    );
                }
            }
        }
        if let Some(ds) = st.deployments.get_mut(&uid) {
            ds.progress_at = progress_at;
        }
        let mut next = pods.iter().filter_map(|p| p.available_at(min_ready)).min();
        if let Some(dl) = deadline
            && !paused
        {
            let reason = conds
                .iter()
                .find(|c| c["type"] == "Progressing")
                .and_then(|c| c["reason"].as_str())
                .unwrap_or("");
            if !matches!(
                reason,
                "" | "ProgressDeadlineExceeded" | "NewReplicaSetAvailable"
            ) {
                let at = progress_at + dl + Duration::from_millis(1);
                next = earliest(next, Some(at));
            }
        }

        // Zero counts are left out, as the real server's JSON does.
        let mut status = json!({"observedGeneration": generation});
        for (k, v) in [
            ("replicas", replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", unavailable_count),
        ] {
            if v != 0 {
                status[k] = json!(v);
            }
        }
        if !conds.is_empty() {
            status["conditions"] = Value::Array(conds);
        }
        if !old["collisionCount"].is_null() {
            status["collisionCount"] = old["collisionCount"].clone();
        }
        if status_equal(old, &status) {
            return Ok(next);
        }
        let mut obj = d.clone();
        obj["status"] = status;
        let k = self.store.kind(APPS, "Deployment")?;
        self.store.update_in(
            k,
            &ns,
            &name,
            obj,
            Subresource::Status,
            &opts("kube-controller-manager"),
        )?;
        Ok(next)
    }

    /// The live pods owned by any of `owners`.
    fn pods_of<'a>(
        &self,
        st: &State,
        ns: &str,
        owners: impl Iterator<Item = &'a str>,
        min_ready: Duration,
        now: Instant,
    ) -> Vec<PodView> {
        let owners: Vec<&str> = owners.collect();
        self.store
            .list_where("v1", "Pod", ns, |p| {
                p["metadata"]["deletionTimestamp"].is_null() && owners.contains(&owner_uid(p))
            })
            .into_iter()
            .map(|p| {
                let name = name_of(&p).to_string();
                let since = self.ready_since(st, ns, &name);
                let created = st
                    .pods
                    .get(&(ns.to_string(), name.clone()))
                    .map_or(now, |rt| rt.created);
                PodView {
                    owner_uid: owner_uid(&p).to_string(),
                    name,
                    created,
                    ready: since.is_some(),
                    available: since.is_some_and(|s| now.duration_since(s) >= min_ready),
                    ready_since: since,
                }
            })
            .collect()
    }

    fn new_pod(
        &self,
        st: &mut State,
        ns: &str,
        template: &Value,
        owner: (&str, &str, &str),
        hash_label: (&str, &str),
        node: &str,
    ) -> Value {
        let (owner_kind, owner_name, owner_uid) = owner;
        let name = format!("{owner_name}-{}", st.rng.suffix(5));
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels[hash_label.0] = json!(hash_label.1);
        let mut meta = json!({
            "name": name,
            "generateName": format!("{owner_name}-"),
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": APPS,
                "kind": owner_kind,
                "name": owner_name,
                "uid": owner_uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        });
        if template["metadata"]["annotations"].is_object() {
            meta["annotations"] = template["metadata"]["annotations"].clone();
        }
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!(node);
        if spec["serviceAccountName"].is_null() {
            spec["serviceAccountName"] = json!("default");
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        })
    }

    fn delete_pod(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        let k = self.store.kind("v1", "Pod")?;
        match self.store.delete_in(k, ns, name, &DeleteOptions::default()) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    // -- DaemonSets ----------------------------------------------------------

    /// Brings a DaemonSet's pods and status up to date; returns when it is
    /// next due without a change (a pod turning available).
    fn sync_daemonset(
        &self,
        st: &mut State,
        d: &Value,
        now: Instant,
    ) -> Result<Option<Instant>, ApiError> {
        let ns = ns_of(d).to_string();
        let name = name_of(d).to_string();
        let uid = uid_of(d).to_string();
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let template = &d["spec"]["template"];
        let hash = template_hash(template);
        let min_ready = Duration::from_secs(d["spec"]["minReadySeconds"].as_u64().unwrap_or(0));
        st.daemonsets.insert(uid.clone(), hash.clone());
        let eligible: Vec<String> = (1..=self.config.nodes)
            .map(node_name)
            .filter(|n| node_selected(&template["spec"]["nodeSelector"], n))
            .collect();
        let pod_of = |p: &PodView| -> (String, String) {
            let o = self.store.get("v1", "Pod", &ns, &p.name);
            let field = |o: &Option<Value>, f: &dyn Fn(&Value) -> Option<String>| {
                o.as_ref().and_then(f).unwrap_or_default()
            };
            (
                field(&o, &|o| {
                    o["metadata"]["labels"]["controller-revision-hash"]
                        .as_str()
                        .map(str::to_string)
                }),
                field(&o, &|o| o["spec"]["nodeName"].as_str().map(str::to_string)),
            )
        };
        let pods = self.pods_of(st, &ns, std::iter::once(uid.as_str()), min_ready, now);
        // Pods on nodes the selector no longer matches go at once, as do
        // extra pods on a node; an outdated pod is replaced while no other
        // node is without an available current pod (maxUnavailable 1).
        let mut kept: BTreeMap<String, PodView> = BTreeMap::new();
        for p in &pods {
            let (_, node) = pod_of(p);
            if !eligible.contains(&node) || kept.contains_key(&node) {
                self.delete_pod(&ns, &p.name)?;
            } else {
                kept.insert(node, p.clone());
            }
        }
        let down = eligible
            .iter()
            .filter(|n| kept.get(*n).is_none_or(|p| !p.available))
            .count();
        let mut budget = usize::from(down == 0);
        for p in kept.values() {
            if pod_of(p).0 == hash {
                continue;
            }
            if !p.available {
                self.delete_pod(&ns, &p.name)?;
            } else if budget > 0 {
                self.delete_pod(&ns, &p.name)?;
                budget -= 1;
            }
        }
        let present: Vec<String> = self
            .pods_of(st, &ns, std::iter::once(uid.as_str()), min_ready, now)
            .iter()
            .map(|p| pod_of(p).1)
            .collect();
        for node in eligible.iter().filter(|n| !present.contains(n)) {
            let pod = self.new_pod(
                st,
                &ns,
                template,
                ("DaemonSet", &name, &uid),
                ("controller-revision-hash", &hash),
                node,
            );
            let k = self.store.kind("v1", "Pod")?;
            self.store
                .create_in(k, &ns, pod, &opts("kube-controller-manager"))?;
        }
        let pods = self.pods_of(st, &ns, std::iter::once(uid.as_str()), min_ready, now);
        let desired = eligible.len() as i64;
        let updated = pods.iter().filter(|p| pod_of(p).0 == hash).count() as i64;
        let ready = pods.iter().filter(|p| p.ready).count() as i64;
        let available = pods.iter().filter(|p| p.available).count() as i64;
        let next = pods.iter().filter_map(|p| p.available_at(min_ready)).min();
        let mut status = json!({
            "currentNumberScheduled": (pods.len() as i64).min(desired),
            "desiredNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "observedGeneration": generation,
        });
        if updated > 0 {
            status["updatedNumberScheduled"] = json!(updated);
        }
        if available > 0 {
            status["numberAvailable"] = json!(available);
        }
        if desired - available > 0 {
            status["numberUnavailable"] = json!(desired - available);
        }
        if status_equal(&d["status"], &status) {
            return Ok(next);
        }
        let mut obj = d.clone();
        obj["status"] = status;
        let k = self.store.kind(APPS, "DaemonSet")?;
        self.store.update_in(
            k,
            &ns,
            &name,
            obj,
            Subresource::Status,
            &opts("kube-controller-manager"),
        )?;
        Ok(next)
    }
}

/// The name of node `i` (from 1).
fn node_name(i: usize) -> String {
    format!("sim-node-{i}")
}

/// Whether a pod with `selector` (a pod spec's `nodeSelector`) may run on
/// `node`, whose labels are `kubernetes.io/hostname` and
/// `kubernetes.io/os: linux`.
fn node_selected(selector: &Value, node: &str) -> bool {
    let Some(selector) = selector.as_object() else {
        return true;
    };
    selector.iter().all(|(k, v)| match k.as_str() {
        "kubernetes.io/hostname" => v.as_str() == Some(node),
        "kubernetes.io/os" => v.as_str() == Some("linux"),
        _ => false,
    })
}

/// Starts the controller as a task.
pub fn spawn(
    store: Arc<Store>,
    behaviours: Arc<Behaviours>,
    config: ControllerConfig,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(Controller::new(store, behaviours, config).run(shutdown))
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn uid_of(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or("")
}

/// The owner reference marked `controller` (or the first one).
fn controller_ref(o: &Value) -> Option<&Value> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| {
            refs.iter()
                .find(|r| r["controller"] == true)
                .or(refs.first())
        })
}

fn owner_uid(o: &Value) -> &str {
    controller_ref(o)
        .and_then(|r| r["uid"].as_str())
        .unwrap_or("")
}

fn next_ip(st: &mut State) -> String {
    let n = st.next_ip;
    st.next_ip += 1;
    format!("10.244.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

/// `maxSurge`/`maxUnavailable`: an integer, or a percentage of `total`
/// rounded up (surge) or down (unavailable).
fn int_or_percent(v: &Value, total: i32, round_up: bool, default_percent: i32) -> i32 {
    let percent = |p: f64| {
        let x = p * f64::from(total) / 100.0;
        (if round_up { x.ceil() } else { x.floor() }) as i32
    };
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0) as i32,
        Value::String(s) => match s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
        {
            Some(p) => percent(p),
            None => s.parse().unwrap_or(0),
        },
        _ => percent(f64::from(default_percent)),
    }
}

/// The `pod-template-hash` of a template: FNV-32a over its canonical JSON,
/// written as Kubernetes writes it (the decimal digits mapped into the
/// safe alphabet).
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    };
    fn walk(v: &Value, feed: &mut dyn FnMut(u8)) {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, &Value> = m.iter().collect();
                feed(b'{');
                for (k, v) in sorted {
                    k.bytes().for_each(&mut *feed);
                    feed(b':');
                    walk(v, feed);
                    feed(b',');
                }
                feed(b'}');
            }
            Value::Array(a) => {
                feed(b'[');
                for v in a {
                    walk(v, feed);
                    feed(b',');
                }
                feed(b']');
            }
            other => other.to_string().bytes().for_each(feed),
        }
    }
    walk(template, &mut feed);
    h.to_string()
        .bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, stamp: &str) -> Value {
    json!({
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    })
}

/// Kubernetes' `SetDeploymentCondition`: no change when status and reason
/// are the same; the transition time is kept when only the reason changes.
fn set_condition(conds: &mut Vec<Value>, mut c: Value) {
    if let Some(cur) = conds.iter().find(|x| x["type"] == c["type"]) {
        if cur["status"] == c["status"] && cur["reason"] == c["reason"] {
            return;
        }
        if cur["status"] == c["status"] {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    let kind = c["type"].clone();
    match conds.iter_mut().find(|x| x["type"] == kind) {
        Some(slot) => *slot = c,
        None => conds.push(c),
    }
}

/// Status equality that ignores key order.
fn status_equal(a: &Value, b: &Value) -> bool {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<String, Value> =
                    m.iter().map(|(k, v)| (k.clone(), norm(v))).collect();
                serde_json::to_value(sorted).unwrap_or(Value::Null)
            }
            Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
            other => other.clone(),
        }
    }
    norm(a) == norm(b)
}

/// A pod's status at one stage of its life.
fn pod_status(pod: &Value, rt: &PodRt, stage: Stage, restarts: u32) -> Value {
    let t = |s: &Option<String>| s.clone().unwrap_or_else(|| rt.scheduled_at.clone());
    let started = t(&rt.started_at);
    let ready = stage == Stage::Ready;
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let cname = c["name"].as_str().unwrap_or("");
            let image = c["image"].as_str().unwrap_or("");
            let mut s = json!({
                "name": cname,
                "image": image,
                "imageID": format!("{}@sha256:{:064x}", image.split(':').next().unwrap_or(image), u128::from(fnv64(image))),
                "ready": ready,
                "started": matches!(stage, Stage::Running | Stage::Ready),
                "restartCount": restarts,
            });
            match stage {
                Stage::Pending => s["state"] = json!({"waiting": {"reason": "ContainerCreating"}}),
                Stage::Running | Stage::Ready => {
                    s["state"] = json!({"running": {"startedAt": started}});
                    s["containerID"] = json!(format!("containerd://{:016x}{:016x}", fnv64(&rt.uid), i));
                }
                Stage::CrashLoop => {
                    s["containerID"] = json!(format!("containerd://{:016x}{:016x}", fnv64(&rt.uid), restarts));
                    s["state"] = json!({"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": format!("back-off 10s restarting failed container={cname} pod={}", pod["metadata"]["name"].as_str().unwrap_or("")),
                    }});
                    s["lastState"] = json!({"terminated": {
                        "exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": started,
                    }});
                }
            }
            s
        })
        .collect();
    let not_ready_msg = format!("containers with unready status: [{}]", names.join(" "));
    let cond = |kind: &str, ok: bool, at: &str| {
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": at});
        if !ok && (kind == "Ready" || kind == "ContainersReady") {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(not_ready_msg);
        }
        c
    };
    let sched = rt.scheduled_at.as_str();
    let ready_at = if ready {
        t(&rt.ready_at)
    } else {
        sched.to_string()
    };
    let mut status = json!({
        "phase": if stage == Stage::Pending { "Pending" } else { "Running" },
        "conditions": [
            cond("PodReadyToStartContainers", stage != Stage::Pending, &started),
            cond("Initialized", true, sched),
            cond("Ready", ready, &ready_at),
            cond("ContainersReady", ready, &ready_at),
            cond("PodScheduled", true, sched),
        ],
        "hostIP": "172.18.0.2",
        "hostIPs": [{"ip": "172.18.0.2"}],
        "startTime": sched,
        "containerStatuses": containers,
        "qosClass": "BestEffort",
    });
    if stage != Stage::Pending {
        status["podIP"] = json!(rt.ip);
        status["podIPs"] = json!([{"ip": rt.ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_and_safe() {
        let a = json!({"metadata": {"labels": {"app": "x", "b": "y"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "i:1", "name": "c"}]}, "metadata": {"labels": {"b": "y", "app": "x"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        let c = json!({"metadata": {"labels": {"app": "x", "b": "y"}}, "spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_ne!(template_hash(&a), template_hash(&c));
        assert!(
            template_hash(&a)
                .bytes()
                .all(|b| SAFE_ALPHABET.contains(&b))
        );
    }

    #[test]
    fn surge_and_unavailable_round_like_kubernetes() {
        assert_eq!(int_or_percent(&json!("25%"), 2, true, 25), 1);
        assert_eq!(int_or_percent(&json!("25%"), 2, false, 25), 0);
        assert_eq!(int_or_percent(&Value::Null, 4, false, 25), 1);
        assert_eq!(int_or_percent(&json!(3), 4, false, 25), 3);
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut conds = vec![condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            "m",
            "t1",
        )];
        set_condition(
            &mut conds,
            condition("Progressing", "True", "NewReplicaSetAvailable", "m2", "t2"),
        );
        assert_eq!(conds[0]["lastTransitionTime"], "t1");
        assert_eq!(conds[0]["lastUpdateTime"], "t2");
        set_condition(
            &mut conds,
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "m3",
                "t3",
            ),
        );
        assert_eq!(conds[0]["lastTransitionTime"], "t3");
    }
}
