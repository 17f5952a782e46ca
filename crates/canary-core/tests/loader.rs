//! Property tests of the spec loader: whatever bytes or YAML it is given,
//! loading, validating and resolving never panic, and every refusal names
//! the file and a line (exit 2 with a location, for the command line).
//! Inputs are byte mutations of the fixtures and of the malformed corpus,
//! and random YAML values grafted into a valid Canary.

use canary_core::spec::resolve::{Overrides, resolve};
use canary_core::spec::{self, Diagnostic, load_str, validate};
use proptest::prelude::*;

const FIXTURES: &[(&str, &str)] = &[
    ("podinfo.yaml", include_str!("../fixtures/podinfo.yaml")),
    (
        "ab-testing.yaml",
        include_str!("../fixtures/ab-testing.yaml"),
    ),
    (
        "blue-green.yaml",
        include_str!("../fixtures/blue-green.yaml"),
    ),
    (
        "gateway-api.yaml",
        include_str!("../fixtures/gateway-api.yaml"),
    ),
];

/// Loads, validates and resolves `text` as the commands do; returns the
/// diagnostics of a refusal.
fn load_everything(text: &str) -> Vec<Diagnostic> {
    match load_str("input.yaml", text) {
        Err(diagnostics) => diagnostics,
        Ok(file) => {
            let diagnostics = validate::file(&file);
            if diagnostics.is_empty() {
                for doc in &file.canaries {
                    let _ = resolve(&file, doc, &Overrides::default());
                }
            }
            diagnostics
        }
    }
}

fn assert_located(text: &str, diagnostics: &[Diagnostic]) {
    let lines = text.lines().count().max(1);
    for d in diagnostics {
        assert_eq!(d.file, "input.yaml", "{d:?}");
        // Line 0 is the file as a whole ("the file holds no YAML
        // documents").
        assert!(d.line <= lines + 1, "line {} of {lines}: {d:?}", d.line);
        assert!(d.line >= 1 || d.column == 0, "{d:?}");
        assert!(!d.message.is_empty(), "{d:?}");
        // Rendering (what the user sees) never panics either.
        let _ = d.render();
    }
}

/// One way of damaging a text.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes YAML gives meaning to, more often than chance would.
    let interesting = prop_oneof![
        Just(b":".to_vec()),
        Just(b"- ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"  ".to_vec()),
        Just(b"{".to_vec()),
        Just(b"[".to_vec()),
        Just(b"&a ".to_vec()),
        Just(b"*a".to_vec()),
        Just(b"!!binary ".to_vec()),
        Just(b"---\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"<<: *a\n".to_vec()),
        Just(b"? ".to_vec()),
        Just(b"|".to_vec()),
        Just("é\u{0}\u{feff}".as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..12).prop_map(|(i, n)| Mutation::Indent(i, n)),
    ]
}

fn apply(text: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = text.to_vec();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match m {
        Mutation::Flip(i, b) if !out.is_empty() => {
            let n = out.len();
            out[i % n] = *b;
        }
        Mutation::Flip(..) => {}
        Mutation::Insert(i, bytes) => {
            let i = at(*i, out.len());
            out.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let i = at(*i, out.len());
            let end = (i + n).min(out.len());
            out.drain(i..end);
        }
        Mutation::Truncate(i) => out.truncate(at(*i, out.len())),
        Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) | Mutation::Indent(i, _) => {
            let mut lines: Vec<Vec<u8>> = out.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let n = lines.len();
            let i = i % n;
            match m {
                Mutation::DuplicateLine(_) => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                Mutation::SwapLines(_, j) => lines.swap(i, j % n),
                Mutation::Indent(_, k) => {
                    let mut line = vec![b' '; *k];
                    line.extend(lines[i].iter().skip_while(|b| **b == b' '));
                    lines[i] = line;
                }
                _ => unreachable!(),
            }
            out = lines.join(&b'\n');
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Damaged fixtures: loading never panics; a refusal is located.
    #[test]
    fn damaged_specs_are_refused_with_a_location(
        which in 0..FIXTURES.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = FIXTURES[which].1.as_bytes().to_vec();
        for m in &mutations {
            bytes = apply(&bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        let diagnostics = load_everything(&text);
        assert_located(&text, &diagnostics);
    }

    /// Random YAML in place of any one line's value of a valid Canary.
    #[test]
    fn any_value_anywhere_is_loaded_or_refused_with_a_location(
        which in 0..FIXTURES.len(),
        line in any::<usize>(),
        value in yaml_value(),
    ) {
        let text = FIXTURES[which].1;
        let lines: Vec<&str> = text.lines().collect();
        let i = line % lines.len();
        let mut out = String::new();
        for (n, l) in lines.iter().enumerate() {
            if n == i && let Some((key, _)) = l.split_once(':') {
                out.push_str(key);
                out.push_str(": ");
                out.push_str(&value);
            } else {
                out.push_str(l);
            }
            out.push('\n');
        }
        let diagnostics = load_everything(&out);
        assert_located(&out, &diagnostics);
    }

    /// Damaged documents of the malformed corpus, many in one stream.
    #[test]
    fn streams_of_damaged_documents_are_refused_with_a_location(
        picks in prop::collection::vec((0..FIXTURES.len(), mutation()), 1..20),
    ) {
        let mut text = String::new();
        for (which, m) in &picks {
            let bytes = apply(FIXTURES[*which].1.as_bytes(), m);
            text.push_str("---\n");
            text.push_str(&String::from_utf8_lossy(&bytes));
            text.push('\n');
        }
        let diagnostics = load_everything(&text);
        assert_located(&text, &diagnostics);
    }
}

/// A flow-style YAML value: scalars of every kind YAML reads, and nested
/// sequences and mappings.
fn yaml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("~".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e400".to_string()),
        Just(".nan".to_string()),
        Just("-.inf".to_string()),
        Just("18446744073709551616".to_string()),
        Just("0x1F".to_string()),
        Just("\"\"".to_string()),
        Just("1m".to_string()),
        Just("-5s".to_string()),
        Just("http://[::1".to_string()),
        Just("'../../etc'".to_string()),
        "[a-zA-Z0-9 ._/-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
    ];
    scalar.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(("[a-zA-Z]{1,8}", inner), 0..4).prop_map(|v| {
                let fields: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
}

#[test]
fn nesting_far_past_the_limit_is_refused_without_overflowing_the_stack() {
    for depth in [200, 5_000, 50_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("- ", "")] {
            let text = if close.is_empty() {
                format!("a:\n  {}x\n", open.repeat(depth))
            } else {
                format!("a: {}x{}\n", open.repeat(depth), close.repeat(depth))
            };
            let diagnostics = load_everything(&text);
            assert!(!diagnostics.is_empty(), "depth {depth} accepted");
            assert_located(&text, &diagnostics);
        }
    }
}

#[test]
fn the_valid_fixtures_load() {
    for (name, text) in FIXTURES {
        let file = spec::load_str(name, text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        assert!(validate::file(&file).is_empty(), "{name}");
    }
}
