//! kubectl's JSONPath templates (`-o jsonpath=...`, `-o custom-columns=...`)
//! over the JSON `status` prints.
//!
//! kubectl's template language is text with actions in braces: a path
//! (`{.items[*].status.phase}`), a quoted string (`{"\n"}`) and
//! `{range PATH}...{end}`. The paths are evaluated by `jsonpath-rust`, an
//! RFC 9535 implementation; this module only reads the template around
//! them and writes kubectl's path dialect (no `$`, `.` for the current
//! element inside a range, any character in a `.name`) as RFC 9535.

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// One path, as kubectl writes it (`.status.phase`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    /// The same path in RFC 9535 syntax, rooted at the current element.
    rfc: String,
}

impl Path {
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        let text = text.trim();
        let rfc = to_rfc9535(text)?;
        // Checks the syntax once, so that evaluation cannot fail later.
        Value::Null
            .query(&rfc)
            .map_err(|e| format!("invalid JSONPath `{text}`: {e}"))?;
        Ok(Path { rfc })
    }

    /// The values the path selects in `root`; none when it names a field
    /// that is not there (kubectl's `--allow-missing-template-keys`).
    pub(crate) fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        root.query(&self.rfc).unwrap_or_default()
    }
}

/// kubectl's path dialect as RFC 9535: `$` first, and `.name` with
/// characters RFC 9535 leaves out of a shorthand name (`-`, `/`, an
/// escaped `\.`) as `['name']`. Brackets and quotes are kept as written.
fn to_rfc9535(text: &str) -> Result<String, String> {
    let rest = if let Some(r) = text.strip_prefix('$') {
        r
    } else if let Some(r) = text.strip_prefix('@') {
        r
    } else if text.starts_with('.') || text.starts_with('[') || text.is_empty() {
        text
    } else {
        return Err(format!(
            "invalid JSONPath `{text}`: a path starts with `.` (e.g. `.status.phase`)"
        ));
    };
    let mut out = String::from("$");
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                out.push('.');
                i += 1;
                if chars.get(i) == Some(&'.') {
                    out.push('.');
                    i += 1;
                }
                if matches!(chars.get(i), Some('*') | Some('[')) {
                    continue;
                }
                let mut name = String::new();
                let mut escaped = false;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && chars.get(i + 1) == Some(&'.') {
                        escaped = true;
                        name.push('.');
                        i += 2;
                        continue;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name.is_empty() {
                    return Err(format!("invalid JSONPath `{text}`: a `.` with no name"));
                }
                if !escaped && is_shorthand(&name) {
                    out.push_str(&name);
                } else {
                    // `.['a-b']` is not RFC 9535; `['a-b']` and `..['a-b']` are.
                    if out.ends_with("..") {
                    } else {
                        out.pop();
                    }
                    let quoted = name.replace('\\', "\\\\").replace('\'', "\\'");
                    out.push_str(&format!("['{quoted}']"));
                }
            }
            '[' => {
                let end = closing(&chars, i, '[', ']')
                    .ok_or_else(|| format!("invalid JSONPath `{text}`: an unclosed `[`"))?;
                out.extend(&chars[i..=end]);
                i = end + 1;
            }
            c => {
                return Err(format!(
                    "invalid JSONPath `{text}`: unexpected `{c}` (fields are named after a `.`)"
                ));
            }
        }
    }
    Ok(out)
}

/// Whether `name` is an RFC 9535 member-name-shorthand.
fn is_shorthand(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii();
    match chars.next() {
        Some(c) if first_ok(c) => chars.all(|c| first_ok(c) || c.is_ascii_digit()),
        _ => false,
    }
}

/// The index of the `close` that matches the `open` at `from`, skipping
/// quoted strings and nested pairs.
fn closing(chars: &[char], from: usize, open: char, close: char) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == open => depth += 1,
            None if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            None => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Path),
    Range(Path, Vec<Node>),
}

/// A parsed kubectl JSONPath template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let chars: Vec<char> = text.chars().collect();
        // The nodes of each open range, innermost last.
        let mut stack: Vec<(Option<Path>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut i = 0;
        let mut literal = String::new();
        while i < chars.len() {
            if chars[i] != '{' {
                literal.push(chars[i]);
                i += 1;
                continue;
            }
            let end = closing(&chars, i, '{', '}')
                .ok_or_else(|| format!("invalid template `{text}`: an unclosed `{{`"))?;
            let action: String = chars[i + 1..end].iter().collect();
            let action = action.trim();
            i = end + 1;
            let top = &mut stack.last_mut().expect("the template's own level").1;
            if !literal.is_empty() {
                top.push(Node::Text(std::mem::take(&mut literal)));
            }
            if let Some(path) = action.strip_prefix("range ") {
                stack.push((Some(Path::parse(path)?), Vec::new()));
            } else if action == "end" {
                match stack.pop() {
                    Some((Some(path), body)) => stack
                        .last_mut()
                        .expect("a range is inside the template")
                        .1
                        .push(Node::Range(path, body)),
                    _ => {
                        return Err(format!(
                            "invalid template `{text}`: `{{end}}` without `{{range}}`"
                        ));
                    }
                }
            } else if action.starts_with('"') {
                let s: String = serde_json::from_str(action)
                    .map_err(|e| format!("invalid template `{text}`: string {action}: {e}"))?;
                top.push(Node::Text(s));
            } else {
                top.push(Node::Path(Path::parse(action)?));
            }
        }
        if !literal.is_empty() {
            stack.last_mut().expect("level").1.push(Node::Text(literal));
        }
        if stack.len() != 1 {
            return Err(format!(
                "invalid template `{text}`: `{{range}}` without `{{end}}`"
            ));
        }
        Ok(Template {
            nodes: stack.pop().expect("level").1,
        })
    }

    /// The template applied to `root`.
    pub(crate) fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, root, &mut out);
        out
    }
}

fn render(nodes: &[Node], at: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let values: Vec<String> = p.select(at).into_iter().map(text).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(p, body) => {
                let selected = p.select(at);
                let items: Vec<&Value> = match selected.as_slice() {
                    [Value::Array(a)] => a.iter().collect(),
                    _ => selected,
                };
                for item in items {
                    render(body, item, out);
                }
            }
        }
    }
}

/// A value as kubectl prints it in a template: strings bare, anything
/// else as JSON.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"apiVersion": "v1", "kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
             "status": {"phase": "Succeeded", "canaryWeight": 0, "failed-checks": 1}},
            {"metadata": {"name": "b"}, "status": {"phase": "Failed", "canaryWeight": 20}},
        ]})
    }

    fn render(template: &str, v: &Value) -> String {
        Template::parse(template).unwrap().render(v)
    }

    #[test]
    fn paths_text_strings_and_ranges_render_as_kubectl_renders_them() {
        let l = list();
        assert_eq!(render("{.items[*].status.phase}", &l), "Succeeded Failed");
        assert_eq!(
            render("phase: {.items[0].status.phase}!", &l),
            "phase: Succeeded!"
        );
        assert_eq!(
            render(
                r#"{range .items[*]}{.metadata.name}={.status.canaryWeight}{"\n"}{end}"#,
                &l
            ),
            "a=0\nb=20\n"
        );
        assert_eq!(render("{range .items}{.metadata.name},{end}", &l), "a,b,");
        assert_eq!(
            render("{.items[1].status}", &l),
            r#"{"phase":"Failed","canaryWeight":20}"#
        );
        assert_eq!(render("{$.kind}", &l), "List");
        assert_eq!(
            render(r#"{.items[?(@.status.phase=="Failed")].metadata.name}"#, &l),
            "b"
        );
    }

    #[test]
    fn names_rfc_9535_cannot_shorten_are_quoted() {
        let l = list();
        assert_eq!(render("{.items[0].status.failed-checks}", &l), "1");
        assert_eq!(
            render(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}", &l),
            "x"
        );
        assert_eq!(render("{..failed-checks}", &l), "1");
    }

    #[test]
    fn a_missing_field_prints_nothing() {
        assert_eq!(render("[{.items[0].status.nope}]", &list()), "[]");
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in ["{.a", "{range .items[*]}{.a}", "{end}", "{status}", "{.a[}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
