//! Traffic routers: one module per provider, behind one trait.
//!
//! A router owns the object that splits traffic between the primary and
//! canary Services and is the truth for the current routing, as in
//! Flagger: after a crash, the weights are read back from it. A router
//! refuses a [`Routing`] its object cannot express rather than writing
//! something else.

pub mod smi;

use crate::cluster::error::Result;
use canary_core::engine::schedule::Routing;
use canary_core::spec::resolve::ResolvedCanary;

/// What every traffic provider does.
#[allow(async_fn_in_trait)]
pub trait Router {
    /// Creates the routing object at 100/0 when missing.
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()>;
    /// What the router does now; `None` when the object does not exist.
    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>>;
    /// Makes the router do `routing`, or fails when it cannot.
    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()>;
}

/// The router for a provider, or why there is none.
pub enum AnyRouter {
    Smi(smi::SmiRouter),
    /// The `kubernetes` provider: no traffic split, only Service selectors.
    None,
}

impl AnyRouter {
    pub fn for_provider(
        client: &kube::Client,
        provider: &str,
    ) -> std::result::Result<Self, String> {
        match provider {
            "linkerd" => Ok(AnyRouter::Smi(smi::SmiRouter::new(
                client.clone(),
                "v1alpha2",
            ))),
            "osm" => Ok(AnyRouter::Smi(smi::SmiRouter::new(
                client.clone(),
                "v1alpha3",
            ))),
            p if p.starts_with("smi:") => {
                let v = &p["smi:".len()..];
                if ["v1alpha1", "v1alpha2", "v1alpha3"].contains(&v) {
                    Ok(AnyRouter::Smi(smi::SmiRouter::new(client.clone(), v)))
                } else {
                    Err(format!("unknown SMI version in provider `{p}`"))
                }
            }
            "kubernetes" => Ok(AnyRouter::None),
            other => Err(format!(
                "provider `{other}` is not supported by `canary run` yet; supported: linkerd, \
                 smi:v1alpha1, smi:v1alpha2, smi:v1alpha3, osm, kubernetes"
            )),
        }
    }
}

impl Router for AnyRouter {
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()> {
        match self {
            AnyRouter::Smi(r) => r.reconcile(c).await,
            AnyRouter::None => Ok(()),
        }
    }

    async fn current_routing(&self, c: &ResolvedCanary) -> Result<Option<Routing>> {
        match self {
            AnyRouter::Smi(r) => r.current_routing(c).await,
            // Without a router all traffic reaches the primary through the
            // apex Service.
            AnyRouter::None => Ok(Some(Routing::all_primary())),
        }
    }

    async fn set_routing(&self, c: &ResolvedCanary, routing: &Routing) -> Result<()> {
        match self {
            AnyRouter::Smi(r) => r.set_routing(c, routing).await,
            // The apex Service keeps selecting the primary; the checks of a
            // blue/green step reach the canary through its own Service.
            AnyRouter::None => Ok(()),
        }
    }
}
