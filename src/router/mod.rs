//! Traffic routers: one module per provider, behind one trait.
//!
//! A router owns the object that splits traffic between the primary and
//! canary Services and is the truth for the current routing, as in
//! Flagger: after a crash, the weights are read back from it. A router
//! refuses a [`Routing`] its object cannot express rather than writing
//! something else. [`detect`] finds the mesh of a cluster when no
//! provider is named. [`Router::finalize`] removes what the router made,
//! for `canary revert`.

pub(crate) mod affinity;
pub(crate) mod apisix;
pub(crate) mod contour;
pub(crate) mod detect;
pub(crate) mod gateway_api;
pub(crate) mod gloo;
pub(crate) mod istio;
pub(crate) mod knative;
pub(crate) mod kuma;
pub(crate) mod nginx;
pub(crate) mod skipper;
pub(crate) mod smi;
pub(crate) mod traefik;

use crate::cluster::error::Result;
use crate::cluster::managed::Removal;
use canary_core::engine::schedule::Routing;
use canary_core::names;
use canary_core::provider::Provider;
use canary_core::spec::resolve::ResolvedCanary;

/// What every traffic provider does.
#[allow(async_fn_in_trait)]
pub(crate) trait Router {
    /// Creates the routing object at 100/0 when missing.
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()>;
    /// Follows the object that carries the routing with a watch, so that
    /// [`Router::current_routing`] reads it without a request while the
    /// watch's copy is as new as the router's own last write (see
    /// [`crate::cluster::cache`]). For a driver: one-shot commands read.
    fn watch(&self, _c: &ResolvedCanary) {}
    /// What the router does now; `None` when the object does not exist.
    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>>;
    /// Makes the router do `routing`, or fails when it cannot.
    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()>;
    /// Removes the mesh objects the router made, for `canary revert`
    /// (Flagger's `revertOnDeletion`, its routers' `Finalize`). The apex
    /// Service already selects the target's pods, so once they are gone
    /// the mesh sends it all traffic. Flagger leaves the objects to
    /// garbage collection through their owner reference to the Canary;
    /// `canary` has no such owner, so it deletes them here, each only when
    /// it carries `canary`'s label. Returns each object (`kind/name`) and
    /// what became of it; none for a router without objects. Running it
    /// again is harmless.
    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>>;
}

/// Notes the version of a router object this process wrote, so that its
/// watch's copy is not trusted until it is as new.
pub(crate) fn saw(
    watched: Option<&crate::cluster::cache::Watched<kube::api::DynamicObject>>,
    written: &kube::api::DynamicObject,
) {
    use kube::Resource as _;
    if let Some(w) = watched {
        w.saw(written.meta().resource_version.as_deref());
    }
}

/// The routing a router object carries, read from its watch (or the API
/// server while the watch lags behind the router's own writes): `None`
/// when the object does not exist, an error naming `what` it lacks when
/// `routing_of` finds no routing in its spec.
pub(crate) async fn watched_routing(
    watched: Option<&crate::cluster::cache::Watched<kube::api::DynamicObject>>,
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    object: &str,
    routing_of: impl FnOnce(&serde_json::Value) -> Option<Routing>,
    what: impl FnOnce() -> String,
) -> Result<Option<Routing>> {
    use crate::cluster::error::ClusterError;
    let Some(live) = crate::cluster::cache::get_opt(watched, api, name)
        .await
        .map_err(|e| ClusterError::api("read", object, e))?
    else {
        return Ok(None);
    };
    routing_of(&live.data["spec"]).map(Some).ok_or_else(|| {
        ClusterError::Invalid(format!(
            "{object} has no {}; delete it so canary recreates it",
            what()
        ))
    })
}

/// Replaces the spec of the router object `name` with a merge patch and
/// notes the version written for its watch.
pub(crate) async fn merge_spec(
    watched: Option<&crate::cluster::cache::Watched<kube::api::DynamicObject>>,
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    object: &str,
    spec: serde_json::Value,
) -> Result<()> {
    let patch = serde_json::json!({ "spec": spec });
    let patched = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|e| crate::cluster::error::ClusterError::api("update", object, e))?;
    saw(watched, &patched);
    Ok(())
}

/// The router for a provider, or why there is none.
pub(crate) enum AnyRouter {
    Smi(smi::SmiRouter),
    Istio(istio::IstioRouter),
    GatewayApi(gateway_api::GatewayApiRouter),
    Nginx(nginx::NginxRouter),
    Kuma(kuma::KumaRouter),
    Apisix(apisix::ApisixRouter),
    Contour(contour::ContourRouter),
    Traefik(traefik::TraefikRouter),
    Skipper(skipper::SkipperRouter),
    Gloo(gloo::GlooRouter),
    Knative(knative::KnativeRouter),
    /// The `kubernetes` provider: no traffic split, only Service selectors.
    None,
}

impl AnyRouter {
    /// The router for `provider`: the only place that matches on it. A
    /// provider `canary run` does not drive was refused before any write
    /// (`canary_core::support`); asking for one anyway is an error, never
    /// a guess.
    pub(crate) fn for_provider(
        client: &kube::Client,
        provider: Provider,
    ) -> std::result::Result<Self, String> {
        match provider {
            Provider::Linkerd | Provider::Osm | Provider::Smi(_) => Ok(AnyRouter::Smi(
                smi::SmiRouter::new(client.clone(), names::smi_version(provider)),
            )),
            Provider::Istio => Ok(AnyRouter::Istio(istio::IstioRouter::new(client.clone()))),
            Provider::GatewayApi(v) => Ok(AnyRouter::GatewayApi(
                gateway_api::GatewayApiRouter::new(client.clone(), v),
            )),
            Provider::Nginx => Ok(AnyRouter::Nginx(nginx::NginxRouter::new(client.clone()))),
            Provider::Kuma => Ok(AnyRouter::Kuma(kuma::KumaRouter::new(client.clone()))),
            Provider::Apisix => Ok(AnyRouter::Apisix(apisix::ApisixRouter::new(client.clone()))),
            Provider::Contour => Ok(AnyRouter::Contour(contour::ContourRouter::new(
                client.clone(),
            ))),
            Provider::Traefik => Ok(AnyRouter::Traefik(traefik::TraefikRouter::new(
                client.clone(),
            ))),
            Provider::Skipper => Ok(AnyRouter::Skipper(skipper::SkipperRouter::new(
                client.clone(),
            ))),
            Provider::Gloo => Ok(AnyRouter::Gloo(gloo::GlooRouter::new(client.clone()))),
            Provider::Knative => Ok(AnyRouter::Knative(knative::KnativeRouter::new(
                client.clone(),
            ))),
            Provider::Kubernetes => Ok(AnyRouter::None),
            other => Err(format!(
                "provider `{other}`: {}",
                other
                    .capabilities()
                    .not_driven
                    .unwrap_or("`canary run` does not drive it")
            )),
        }
    }
}

impl Router for AnyRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        match self {
            AnyRouter::Smi(r) => r.reconcile(c).await,
            AnyRouter::Istio(r) => r.reconcile(c).await,
            AnyRouter::GatewayApi(r) => r.reconcile(c).await,
            AnyRouter::Nginx(r) => r.reconcile(c).await,
            AnyRouter::Kuma(r) => r.reconcile(c).await,
            AnyRouter::Apisix(r) => r.reconcile(c).await,
            AnyRouter::Contour(r) => r.reconcile(c).await,
            AnyRouter::Traefik(r) => r.reconcile(c).await,
            AnyRouter::Skipper(r) => r.reconcile(c).await,
            AnyRouter::Gloo(r) => r.reconcile(c).await,
            AnyRouter::Knative(r) => r.reconcile(c).await,
            AnyRouter::None => Ok(()),
        }
    }

    fn watch(&self, c: &ResolvedCanary) {
        match self {
            AnyRouter::Smi(r) => r.watch(c),
            AnyRouter::Istio(r) => r.watch(c),
            AnyRouter::GatewayApi(r) => r.watch(c),
            AnyRouter::Nginx(r) => r.watch(c),
            AnyRouter::Kuma(r) => r.watch(c),
            AnyRouter::Apisix(r) => r.watch(c),
            AnyRouter::Contour(r) => r.watch(c),
            AnyRouter::Traefik(r) => r.watch(c),
            AnyRouter::Skipper(r) => r.watch(c),
            AnyRouter::Gloo(r) => r.watch(c),
            AnyRouter::Knative(r) => r.watch(c),
            AnyRouter::None => {}
        }
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        match self {
            AnyRouter::Smi(r) => r.current_routing(c).await,
            AnyRouter::Istio(r) => r.current_routing(c).await,
            AnyRouter::GatewayApi(r) => r.current_routing(c).await,
            AnyRouter::Nginx(r) => r.current_routing(c).await,
            AnyRouter::Kuma(r) => r.current_routing(c).await,
            AnyRouter::Apisix(r) => r.current_routing(c).await,
            AnyRouter::Contour(r) => r.current_routing(c).await,
            AnyRouter::Traefik(r) => r.current_routing(c).await,
            AnyRouter::Skipper(r) => r.current_routing(c).await,
            AnyRouter::Gloo(r) => r.current_routing(c).await,
            AnyRouter::Knative(r) => r.current_routing(c).await,
            // Without a router all traffic reaches the primary through the
            // apex Service.
            AnyRouter::None => Ok(Some(Routing::all_primary())),
        }
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        match self {
            AnyRouter::Smi(r) => r.set_routing(c, routing).await,
            AnyRouter::Istio(r) => r.set_routing(c, routing).await,
            AnyRouter::GatewayApi(r) => r.set_routing(c, routing).await,
            AnyRouter::Nginx(r) => r.set_routing(c, routing).await,
            AnyRouter::Kuma(r) => r.set_routing(c, routing).await,
            AnyRouter::Apisix(r) => r.set_routing(c, routing).await,
            AnyRouter::Contour(r) => r.set_routing(c, routing).await,
            AnyRouter::Traefik(r) => r.set_routing(c, routing).await,
            AnyRouter::Skipper(r) => r.set_routing(c, routing).await,
            AnyRouter::Gloo(r) => r.set_routing(c, routing).await,
            AnyRouter::Knative(r) => r.set_routing(c, routing).await,
            // The apex Service keeps selecting the primary; the checks of a
            // blue/green step reach the canary through its own Service.
            AnyRouter::None => Ok(()),
        }
    }

    async fn finalize(&self, c: &ResolvedCanary) -> Result<Vec<(String, Removal)>> {
        match self {
            AnyRouter::Smi(r) => r.finalize(c).await,
            AnyRouter::Istio(r) => r.finalize(c).await,
            AnyRouter::GatewayApi(r) => r.finalize(c).await,
            AnyRouter::Nginx(r) => r.finalize(c).await,
            AnyRouter::Kuma(r) => r.finalize(c).await,
            AnyRouter::Apisix(r) => r.finalize(c).await,
            AnyRouter::Contour(r) => r.finalize(c).await,
            AnyRouter::Traefik(r) => r.finalize(c).await,
            AnyRouter::Skipper(r) => r.finalize(c).await,
            AnyRouter::Gloo(r) => r.finalize(c).await,
            AnyRouter::Knative(r) => r.finalize(c).await,
            // Only Service selectors, which the revert has already set.
            AnyRouter::None => Ok(Vec::new()),
        }
    }
}
