//! Traffic routers: one module per provider, behind one trait.
//!
//! A router owns the object that splits traffic between the primary and
//! canary Services and is the truth for the current weights, as in
//! Flagger: after a crash, the weights are read back from it.

pub mod smi;

use crate::cluster::error::Result;
use canary_core::engine::decide::Routes;
use canary_core::spec::resolve::ResolvedCanary;

/// What every traffic provider does.
#[allow(async_fn_in_trait)]
pub trait Router {
    /// Creates the routing object at 100/0 when missing.
    async fn reconcile(&self, c: &ResolvedCanary) -> Result<()>;
    /// The current weights; `None` when the object does not exist.
    async fn get_routes(&self, c: &ResolvedCanary) -> Result<Option<Routes>>;
    async fn set_routes(&self, c: &ResolvedCanary, routes: Routes) -> Result<()>;
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

    async fn get_routes(&self, c: &ResolvedCanary) -> Result<Option<Routes>> {
        match self {
            AnyRouter::Smi(r) => r.get_routes(c).await,
            // Without a router all traffic reaches the primary through the
            // apex Service.
            AnyRouter::None => Ok(Some(Routes {
                primary: 100,
                canary: 0,
                mirrored: false,
            })),
        }
    }

    async fn set_routes(&self, c: &ResolvedCanary, routes: Routes) -> Result<()> {
        match self {
            AnyRouter::Smi(r) => r.set_routes(c, routes).await,
            AnyRouter::None => Ok(()),
        }
    }
}
