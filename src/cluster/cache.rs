//! One object kept up to date by a watch, so that a driver's round reads it
//! without a request.
//!
//! A [`Watched`] object is served from the watch's copy only when that copy
//! is known to be at least as new as everything this process has written
//! or read of the object: the writes a round makes (the state, a scale)
//! are noted with [`Watched::saw`], and a copy older than the newest version
//! seen is not trusted. Then, and while the watch is not yet listed (or is
//! broken and relisting), the object is read from the API server as
//! before. Versions are compared as the numbers the API server gives out;
//! a server whose resourceVersions are not numbers gets every read made.
//! The same watch tells of each change ([`Watched::changes`]), so one
//! watch serves a driver's reads and its wake-ups.
//!
//! The watches are shared: the process keeps one watch (one list, then
//! one long-lived request) per kind and namespace, of every object of that
//! kind there, and each [`Watched`] object reads its own from it. A run
//! driving a hundred canaries in one namespace holds one watch of
//! Deployments and one of the router's kind, not three hundred requests,
//! each on a connection of its own with its buffers; a single canary's
//! target and primary share one list and one watch too. The price is that
//! the other objects of that kind in the namespace are listed and held as
//! well: their `managedFields`, the largest part of an object nobody here
//! reads, are dropped as they arrive. A shared watch ends when the last
//! object read from it is dropped. One process talks to one cluster, so a
//! watch is known by its resource's path and the Rust type it is read as.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// One named object of `K` as a watch sees it.
pub(crate) struct Watched<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    shared: Arc<Shared<K>>,
    name: String,
    /// The object as each event of the watch brought it: the store's own
    /// copy, not one more.
    latest: tokio::sync::watch::Receiver<Option<Arc<K>>>,
    /// The newest resourceVersion this process wrote or read; `None`
    /// after it read that the object does not exist.
    newest: Mutex<Option<u64>>,
}

/// The watch of every object of one kind in one namespace (or the whole
/// cluster, for a kind without namespaces), and whom to tell of each
/// change: the [`Watched`] objects, by name.
struct Shared<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
    /// The namespace and kind of the objects, for the store's keys.
    namespace: Option<String>,
    dyntype: K::DynamicType,
    names: Arc<Mutex<HashMap<String, Tell<K>>>>,
}

/// Where the watch tells the readers of one object of each change.
type Tell<K> = tokio::sync::watch::Sender<Option<Arc<K>>>;

impl<K: Resource + 'static> Drop for Shared<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watches this process keeps, by the path of their resource and the
/// type they are read as; an entry whose watch ended is replaced.
type Registry = HashMap<(String, TypeId), Weak<dyn Any + Send + Sync>>;
static SHARED: Mutex<Option<Registry>> = Mutex::new(None);

impl<K> Watched<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching the object `name` of `api`.
    pub(crate) fn start(api: &Api<K>, name: &str) -> Self {
        Self::start_with(api, name, ())
    }
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    /// Starts watching the object `name` of `api`, of the kind `dyntype`
    /// describes (an object read as [`kube::api::DynamicObject`]): from
    /// the watch of its kind and namespace when this process has one.
    pub(crate) fn start_with(api: &Api<K>, name: &str, dyntype: K::DynamicType) -> Self {
        let shared = Shared::of(api, dyntype);
        let latest = {
            let mut names = shared.names.lock().unwrap_or_else(|e| e.into_inner());
            let tell = names.entry(name.to_string()).or_insert_with(|| {
                let held = shared.get_arc(name);
                tokio::sync::watch::channel(held).0
            });
            let mut latest = tell.subscribe();
            // A change already brought counts as news for this reader, as
            // it would for a watch of its own started now.
            if latest.borrow().is_some() {
                latest.mark_changed();
            }
            latest
        };
        Watched {
            shared,
            name: name.to_string(),
            latest,
            newest: Mutex::new(None),
        }
    }

    /// The object as the watch holds it, when that is known to be current:
    /// `Some(None)` for an object that does not exist. `None`: read it.
    pub(crate) fn current(&self) -> Option<Option<K>> {
        self.shared.store.wait_until_ready().now_or_never()?.ok()?;
        let held = self.shared.get(&self.name);
        let newest = *self.newest.lock().unwrap_or_else(|e| e.into_inner());
        match (held, newest) {
            (None, None) => Some(None),
            (None, Some(_)) => None,
            (Some(o), newest) => {
                let v = version(o.meta().resource_version.as_deref())?;
                (newest.is_none_or(|n| v >= n)).then_some(Some(o))
            }
        }
    }

    /// As [`Watched::current`], waiting up to `limit` for the watch to be
    /// listed or to bring the version this process last wrote or read: a
    /// round right after a write, or right after the watch started, finds
    /// the copy there within milliseconds, and reads nothing. `None`
    /// after `limit`: read it.
    pub(crate) async fn current_within(&self, limit: std::time::Duration) -> Option<Option<K>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut latest = self.latest.clone();
        loop {
            if let Some(hit) = self.current() {
                return Some(hit);
            }
            let next = async {
                let store = &self.shared.store;
                if store.wait_until_ready().now_or_never().is_none() {
                    store.wait_until_ready().await.is_ok()
                } else {
                    latest.changed().await.is_ok()
                }
            };
            match tokio::time::timeout_at(deadline, next).await {
                Ok(true) => {}
                _ => return None,
            }
        }
    }

    /// The watch's copy once it is current and `settled` says so, within
    /// `limit`; `None` after that.
    pub(crate) async fn settled_within(
        &self,
        limit: std::time::Duration,
        settled: impl Fn(&K) -> bool,
    ) -> Option<K> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut latest = self.latest.clone();
        loop {
            if let Some(Some(o)) = self.current()
                && settled(&o)
            {
                return Some(o);
            }
            match tokio::time::timeout_at(deadline, latest.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// The object each time the watch brings a change of it (the newest
    /// when several came meanwhile), starting with the one it holds;
    /// ends when the watch does.
    pub(crate) fn changes(&self) -> futures::stream::BoxStream<'static, K> {
        futures::stream::unfold(self.latest.clone(), |mut latest| async move {
            loop {
                latest.changed().await.ok()?;
                let held = latest.borrow_and_update().clone();
                if let Some(o) = held {
                    return Some(((*o).clone(), latest));
                }
            }
        })
        .boxed()
    }

    /// Notes that the API server holds a version of the object newer than
    /// `resource_version` (a write guarded by it was refused): the watch's
    /// copy is trusted again once it is newer.
    pub(crate) fn newer_than(&self, resource_version: &str) {
        let next = version(Some(resource_version)).map_or(u64::MAX, |v| v.saturating_add(1));
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        *newest = Some(newest.map_or(next, |n| n.max(next)));
    }

    /// Notes a version of the object this process wrote or read (`None`:
    /// it read that there is none); the watch's copy is trusted again once
    /// it is as new.
    pub(crate) fn saw(&self, resource_version: Option<&str>) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        *newest = match resource_version {
            None => None,
            Some(rv) => match (version(Some(rv)), *newest) {
                (Some(v), Some(n)) => Some(v.max(n)),
                (Some(v), None) => Some(v),
                // Not a number: never trust the copy.
                (None, _) => Some(u64::MAX),
            },
        };
    }
}

/// A shared watch kept going while this is held, whether or not an
/// object is read from it yet: `canary run` starts its namespaces' watches
/// before the preflight, which then reads the target and the primary from
/// them (see [`Watched::join`]) instead of with requests of their own.
pub(crate) struct Watching(#[allow(dead_code)] Arc<dyn Any + Send + Sync>);

impl Watching {
    /// Starts, or joins, the watch of the objects of `api`.
    pub(crate) fn start<K>(api: &Api<K>) -> Self
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        Watching(Shared::of(api, ()))
    }
}

impl<K> Watched<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// The object `name` of `api` from the watch of its kind and
    /// namespace, when this process keeps one; `None` starts none.
    pub(crate) fn join(api: &Api<K>, name: &str) -> Option<Self> {
        Shared::<K>::existing(api)?;
        Some(Self::start(api, name))
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    /// The process's watch of the objects of `api`, started if there is
    /// none.
    fn of(api: &Api<K>, dyntype: K::DynamicType) -> Arc<Self> {
        let key = (api.resource_url().to_string(), TypeId::of::<K>());
        let mut registry = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let registry = registry.get_or_insert_with(HashMap::new);
        if let Some(shared) = registry.get(&key).and_then(Weak::upgrade)
            && let Ok(shared) = shared.downcast::<Self>()
        {
            return shared;
        }
        registry.retain(|_, w| w.strong_count() > 0);
        let shared = Arc::new(Self::start(api, dyntype));
        let erased: Arc<dyn Any + Send + Sync> = shared.clone();
        registry.insert(key, Arc::downgrade(&erased));
        shared
    }

    /// The process's watch of the objects of `api`, if it has one.
    fn existing(api: &Api<K>) -> Option<Arc<Self>> {
        let key = (api.resource_url().to_string(), TypeId::of::<K>());
        let registry = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let shared = registry.as_ref()?.get(&key)?.upgrade()?;
        shared.downcast::<Self>().ok()
    }

    fn start(api: &Api<K>, dyntype: K::DynamicType) -> Self {
        let writer = reflector::store::Writer::new(dyntype.clone());
        let store = writer.as_reader();
        let events = watcher::watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .modify(|o| o.meta_mut().managed_fields = None);
        let names: Arc<Mutex<HashMap<String, Tell<K>>>> = Arc::default();
        let tell = names.clone();
        let held = store.clone();
        let namespace = api.namespace().map(str::to_string);
        let key = {
            let (dyntype, namespace) = (dyntype.clone(), namespace.clone());
            move |name: &str| object_ref::<K>(name, &dyntype, namespace.as_deref())
        };
        let task = tokio::spawn(async move {
            // The stream only ends with the process; an error is retried
            // by the backoff, and the copies kept meanwhile.
            reflector::reflector(writer, events)
                .for_each(|event| {
                    let brought = match event {
                        Ok(watcher::Event::Apply(o)) => Some((o, false)),
                        Ok(watcher::Event::InitApply(o)) => Some((o, true)),
                        _ => None,
                    };
                    let names = tell.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((o, listed)) = brought
                        && let Some(name) = o.meta().name.as_deref()
                        && let Some(t) = names.get(name)
                    {
                        // The readers get the copy the store keeps; a
                        // (re)list fills the store only once it is done.
                        let copy = match listed {
                            false => held.get(&key(name)),
                            true => None,
                        };
                        t.send_replace(Some(copy.unwrap_or_else(|| Arc::new(o))));
                    }
                    async {}
                })
                .await;
        });
        Shared {
            store,
            task,
            namespace,
            dyntype,
            names,
        }
    }

    /// The object `name` as the watch holds it.
    fn get(&self, name: &str) -> Option<K> {
        self.get_arc(name).map(|o| (*o).clone())
    }

    /// The watch's own copy of the object `name`.
    fn get_arc(&self, name: &str) -> Option<Arc<K>> {
        let key = object_ref::<K>(name, &self.dyntype, self.namespace.as_deref());
        self.store.get(&key)
    }
}

/// The store's key of the object `name` of the kind `dyntype` describes.
fn object_ref<K>(name: &str, dyntype: &K::DynamicType, namespace: Option<&str>) -> ObjectRef<K>
where
    K: Resource,
    K::DynamicType: Eq + Hash + Clone,
{
    let key = ObjectRef::new_with(name, dyntype.clone());
    match namespace {
        Some(ns) => key.within(ns),
        None => key,
    }
}

/// Reads the object `name` of `api`: from `watched` when that copy is
/// current, else from the API server, noting what was read.
pub(crate) async fn get_opt<K>(
    watched: Option<&Watched<K>>,
    api: &Api<K>,
    name: &str,
) -> kube::Result<Option<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    if let Some(w) = watched
        && let Some(hit) = w.current_within(CATCH_UP).await
    {
        return Ok(hit);
    }
    let read = api.get_opt(name).await?;
    if let Some(w) = watched {
        w.saw(
            read.as_ref()
                .and_then(|o| o.meta().resource_version.as_deref()),
        );
    }
    Ok(read)
}

/// How long a read waits for a watch to catch up before it asks the API
/// server: a watch delivers a change within milliseconds of the write; a
/// watch that is broken costs each read this much, and no more.
pub(crate) const CATCH_UP: std::time::Duration = std::time::Duration::from_millis(300);

fn version(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::version;

    #[test]
    fn versions_are_numbers_or_nothing() {
        assert_eq!(version(Some("1234")), Some(1234));
        assert_eq!(version(Some("abc")), None);
        assert_eq!(version(None), None);
    }
}
