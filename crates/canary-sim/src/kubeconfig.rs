//! The kubeconfig that points `kube` and `kubectl` at a simulated cluster:
//! cluster `sim` (HTTPS, trusting the sim's own CA), a user holding the
//! bearer token, context `sim` with a default namespace.
//!
//! HTTPS because client-go (so `kubectl`) only sends user credentials over
//! TLS: against an `http://` server it silently drops the token.

use base64::prelude::{BASE64_STANDARD, Engine as _};

/// Renders the kubeconfig YAML. `ca_pem`, when given, is embedded as
/// `certificate-authority-data`.
pub fn render(server: &str, ca_pem: Option<&str>, token: &str, namespace: &str) -> String {
    // Every value is written as a YAML double-quoted (JSON) string, so no
    // name or token can break the document.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                q(&BASE64_STANDARD.encode(pem))
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster:
    server: {server}
{ca}contexts:
- name: sim
  context:
    cluster: sim
    user: sim
    namespace: {namespace}
current-context: sim
users:
- name: sim
  user:
    token: {token}
preferences: {{}}
",
        server = q(server),
        token = q(token),
        namespace = q(namespace),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kubeconfig_is_valid_yaml_with_one_context() {
        let y = super::render("https://127.0.0.1:1234", Some("PEM"), "t0ken", "prod");
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        assert_eq!(v["current-context"], "sim");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "prod");
        assert_eq!(v["users"][0]["user"]["token"], "t0ken");
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
    }
}
