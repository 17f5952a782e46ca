//! The hashes that tell revisions apart: a target's pod template and the
//! data of the ConfigMaps and Secrets it uses, hashed independently of the
//! order in which the API server lists fields.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// A stable hash of a JSON value: keys sorted, so field order in the API
/// server's answer does not matter.
pub(crate) fn canonical_hash(
    value: &serde_json::Value,
    extra: &BTreeMap<String, String>,
) -> String {
    fn canon(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                out.push('{');
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    canon(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canon(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canon(value, &mut text);
    for (k, v) in extra {
        text.push('\n');
        text.push_str(k);
        text.push('=');
        text.push_str(v);
    }
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
