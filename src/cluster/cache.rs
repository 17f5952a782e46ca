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

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Mutex;

use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// One named object of `K` as a watch sees it.
pub(crate) struct Watched<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
    /// The object as each event of the watch brought it.
    latest: tokio::sync::watch::Receiver<Option<K>>,
    /// The newest resourceVersion this process wrote or read; `None`
    /// after it read that the object does not exist.
    newest: Mutex<Option<u64>>,
}

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
    /// describes (an object read as [`kube::api::DynamicObject`]).
    pub(crate) fn start_with(api: &Api<K>, name: &str, dyntype: K::DynamicType) -> Self {
        let writer = reflector::store::Writer::new(dyntype);
        let store = writer.as_reader();
        let events = watcher::watcher(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff();
        let (tell, latest) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(async move {
            // The stream only ends with the process; an error is retried
            // by the backoff, and the copy kept meanwhile.
            reflector::reflector(writer, events)
                .for_each(|event| {
                    if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event {
                        tell.send_replace(Some(o));
                    }
                    async {}
                })
                .await;
        });
        Watched {
            store,
            task,
            latest,
            newest: Mutex::new(None),
        }
    }

    /// The object as the watch holds it, when that is known to be current:
    /// `Some(None)` for an object that does not exist. `None`: read it.
    pub(crate) fn current(&self) -> Option<Option<K>> {
        self.store.wait_until_ready().now_or_never()?.ok()?;
        let held = self.store.state().into_iter().next();
        let newest = *self.newest.lock().unwrap_or_else(|e| e.into_inner());
        match (held, newest) {
            (None, None) => Some(None),
            (None, Some(_)) => None,
            (Some(o), newest) => {
                let v = version(o.meta().resource_version.as_deref())?;
                (newest.is_none_or(|n| v >= n)).then(|| Some((*o).clone()))
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
                if self.store.wait_until_ready().now_or_never().is_none() {
                    self.store.wait_until_ready().await.is_ok()
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

    /// The object each time the watch brings a change of it (the newest
    /// when several came meanwhile), starting with the one it holds;
    /// ends when the watch does.
    pub(crate) fn changes(&self) -> futures::stream::BoxStream<'static, K> {
        futures::stream::unfold(self.latest.clone(), |mut latest| async move {
            loop {
                latest.changed().await.ok()?;
                let held = latest.borrow_and_update().clone();
                if let Some(o) = held {
                    return Some((o, latest));
                }
            }
        })
        .boxed()
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

impl<K: Resource + 'static> Drop for Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
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
