//! The kubeconfig that points `kube` and `kubectl` at a simulated cluster:
//! cluster `sim` (HTTPS, trusting the sim's own CA), a user holding the
//! bearer token, context `sim` with a default namespace.
//!
//! HTTPS because client-go (so `kubectl`) only sends user credentials over
//! TLS: against an `http://` server it silently drops the token.

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
                q(&base64(pem.as_bytes()))
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

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
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
