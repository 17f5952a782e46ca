//! Session affinity (`analysis.sessionAffinity`), as Flagger's Istio and
//! Gateway API routers write it.
//!
//! While the canary has a share of the traffic, the answers the weights
//! send to the canary set a cookie (`<cookieName>=<10 random letters>`,
//! `Max-Age` from the spec), and a route placed before the weighted one
//! sends every request carrying that cookie to the canary: a client that
//! met the canary once stays on it. With `primaryCookieName`, the answers
//! of the primary set a cookie of their own (for one analysis interval,
//! a new value at each step) that a second route keeps on the primary.
//! Once the canary weight is back to 0 (promotion or rollback), the route
//! matching the last canary cookie answers with that cookie expired
//! (`Max-Age=-1`), so the clients holding it drop it.
//!
//! Flagger keeps the cookie in the Canary's status; here the router object
//! is the truth, as for the weights: the cookie of a release in progress
//! is read back from the `Set-Cookie` of the weighted route, the one being
//! expired from the first route. A/B testing (`analysis.match`) routes by
//! its matches only, as in Flagger.

use canary_core::spec::resolve::ResolvedCanary;

/// The request header carrying the cookies.
pub(crate) const COOKIE: &str = "Cookie";
/// The response header setting one.
pub(crate) const SET_COOKIE: &str = "Set-Cookie";

/// The cookies (`name=value`) a router writes for one routing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cookies {
    /// The canary's cookie of the release in progress.
    pub canary: Option<String>,
    /// The primary's cookie (`primaryCookieName`), while the canary has
    /// traffic.
    pub primary: Option<String>,
    /// The canary cookie of a release that ended, being expired.
    pub previous: Option<String>,
}

/// The cookies a live router object carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Live {
    /// Set by the weighted route's canary destination.
    pub canary: Option<String>,
    /// Expired by the first route.
    pub previous: Option<String>,
}

/// Whether the router writes session affinity for `c`: the spec asks for
/// it and no A/B match takes its place.
pub(crate) fn applies(c: &ResolvedCanary) -> bool {
    c.session_affinity.is_some() && c.matches.is_empty()
}

/// The cookies for a routing giving the canary `canary_weight`, after
/// what the live object carries: the release's canary cookie is kept from
/// step to step, made when the canary first gets traffic, expired once it
/// has none.
pub(crate) fn next(c: &ResolvedCanary, canary_weight: u32, live: Live) -> Cookies {
    let Some(sa) = c.session_affinity.as_ref().filter(|_| applies(c)) else {
        return Cookies::default();
    };
    if canary_weight == 0 {
        return Cookies {
            previous: live.canary.or(live.previous),
            ..Cookies::default()
        };
    }
    let name = sa.cookie_name.clone().unwrap_or_default();
    Cookies {
        canary: Some(
            live.canary
                .filter(|v| v.starts_with(&format!("{name}=")))
                .unwrap_or_else(|| format!("{name}={}", random_value())),
        ),
        primary: sa
            .primary_cookie_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| format!("{n}={}", random_value())),
        previous: None,
    }
}

/// Ten random letters, as Flagger's cookie values.
fn random_value() -> String {
    (0..10).map(|_| fastrand::alphabetic()).collect()
}

/// The `name=value` a `Set-Cookie` value sets.
pub(crate) fn cookie_of(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether a `Set-Cookie` value expires its cookie.
pub(crate) fn is_expiry(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=-1"))
}

/// The `Cookie` header pattern of requests carrying `cookie`:
/// `.*<name>.*<value>.*`, as Flagger writes it (the name and value
/// escaped, so that a name with a `.` matches only itself).
pub(crate) fn cookie_regex(cookie: &str) -> String {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    format!(".*{}.*{}.*", super::istio::regex_escape(name), value)
}

/// The canary cookie's `Set-Cookie`: the spec's `maxAge` and attributes.
pub(crate) fn canary_set_cookie(c: &ResolvedCanary, cookie: &str) -> String {
    c.session_affinity
        .as_ref()
        .map(|sa| sa.set_cookie(cookie))
        .unwrap_or_else(|| cookie.to_string())
}

/// The primary cookie's `Set-Cookie`: it lasts one analysis interval.
pub(crate) fn primary_set_cookie(c: &ResolvedCanary, cookie: &str) -> String {
    format!("{cookie}; Max-Age={}", c.interval.as_secs())
}

/// The `Set-Cookie` that makes clients drop `cookie`.
pub(crate) fn expiry(cookie: &str) -> String {
    format!("{cookie}; Max-Age=-1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    fn canary(affinity: &str) -> ResolvedCanary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: podinfo, namespace: prod}}
spec:
  provider: istio
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898}}
  analysis:
    interval: 30s
    stepWeight: 10
    sessionAffinity:
{affinity}"
        );
        let file = canary_core::spec::load_str("c.yaml", &yaml).expect("valid spec");
        resolve(&file, &file.canaries[0], &Overrides::default())
    }

    #[test]
    fn a_release_keeps_its_cookie_and_expires_it_at_the_end() {
        let c = canary("      cookieName: flagger-cookie\n");
        let first = next(&c, 10, Live::default());
        let cookie = first.canary.clone().unwrap();
        assert!(cookie.starts_with("flagger-cookie="), "{cookie}");
        assert_eq!(cookie.len(), "flagger-cookie=".len() + 10);
        assert_eq!(first.primary, None);
        let live = Live {
            canary: Some(cookie.clone()),
            previous: None,
        };
        assert_eq!(next(&c, 40, live.clone()).canary, Some(cookie.clone()));
        let done = next(&c, 0, live);
        assert_eq!(done.canary, None);
        assert_eq!(done.previous, Some(cookie.clone()));
        // Still expired by later rounds at 0, and replaced by the next
        // release's cookie.
        let later = Live {
            canary: None,
            previous: Some(cookie.clone()),
        };
        assert_eq!(next(&c, 0, later.clone()).previous, Some(cookie.clone()));
        assert_ne!(next(&c, 10, later).canary, Some(cookie));
    }

    #[test]
    fn the_set_cookie_values_carry_max_age_and_the_attributes() {
        let c = canary(
            "      cookieName: flagger-cookie\n      primaryCookieName: primary-cookie\n      \
             maxAge: 600\n      path: /\n      secure: true\n",
        );
        let cookies = next(&c, 10, Live::default());
        let primary = cookies.primary.unwrap();
        assert!(primary.starts_with("primary-cookie="));
        assert_eq!(
            canary_set_cookie(&c, "flagger-cookie=abc"),
            "flagger-cookie=abc; Max-Age=600; Path=/; Secure"
        );
        assert_eq!(
            primary_set_cookie(&c, "primary-cookie=x"),
            "primary-cookie=x; Max-Age=30"
        );
        assert!(is_expiry(&expiry("a=b")));
        assert!(!is_expiry(&canary_set_cookie(&c, "a=b")));
        assert_eq!(cookie_of("a=b; Max-Age=-1"), "a=b");
        assert_eq!(
            cookie_regex("flagger.cookie=AbC"),
            ".*flagger\\.cookie.*AbC.*"
        );
    }
}
