//! Hostile input: files built to crash the loader, to make it take time in
//! the square of their size, or to print huge values. Each is refused with
//! a position, quickly, and without printing the value.

use super::*;

const PODINFO: &str = include_str!("../../fixtures/podinfo.yaml");

fn refused(name: &str, text: &str) -> Vec<Diagnostic> {
    match load_str(name, text) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e,
    }
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused_at_the_level_past_the_limit() {
    let block = format!("a:\n  {}x\n", "- ".repeat(10_000));
    let e = refused("deep.yaml", &block);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message
            .contains(&format!("nests more than {} levels", source::MAX_DEPTH)),
        "{e:?}"
    );
    // `a:` is the first level; the 128th `- ` opens the 129th.
    assert_eq!(
        (e[0].line, e[0].column),
        (2, 3 + 2 * (source::MAX_DEPTH - 1))
    );

    let flow = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let e = refused("flow.yaml", &flow);
    assert_eq!(e[0].line, 1, "{e:?}");
    assert!(e[0].column > 1, "{e:?}");

    let maps: String = (0..10_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let e = refused("maps.yaml", &maps);
    assert_eq!(e[0].line, source::MAX_DEPTH + 1, "{e:?}");
}

#[test]
fn an_alias_counts_at_the_depth_it_expands_to() {
    let half = source::MAX_DEPTH / 2 + 1;
    let anchored = format!("a: &deep {}x{}\n", "[".repeat(half), "]".repeat(half));
    let aliased = format!(
        "{anchored}b: {}*deep{}\n",
        "[".repeat(half),
        "]".repeat(half)
    );
    let e = refused("alias.yaml", &aliased);
    assert!(e[0].message.contains("nests more than"), "{e:?}");
    assert_eq!(e[0].line, 2, "{e:?}");
    // Either half alone is fine as far as depth goes.
    let e = refused("alias.yaml", &anchored);
    assert!(!e[0].message.contains("nests"), "{e:?}");
}

#[test]
fn an_alias_cannot_reach_into_another_document() {
    let e = refused("a.yaml", "a: &x 1\n---\nb: *x\n");
    assert_eq!((e[0].line, e[0].column), (3, 4), "{e:?}");
    assert!(e[0].message.contains("no anchor"), "{e:?}");
}

#[test]
fn the_deepest_document_allowed_is_read_without_exhausting_a_test_threads_stack() {
    // `status` is kept as a plain value, so deserializing it walks every
    // level; a test thread has a smaller stack than the main thread.
    let depth = source::MAX_DEPTH - 1;
    let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let text = format!(
        "{PODINFO}status: {nested}
"
    );
    let file = load_str("deep-ok.yaml", &text).expect("as deep as allowed");
    let status = file.canaries[0].value.status.clone().unwrap();
    let mut v = &status;
    let mut levels = 0;
    while let Some(inner) = v.as_array().and_then(|a| a.first()) {
        v = inner;
        levels += 1;
    }
    assert_eq!(levels, depth);
    let e = refused("too-deep.yaml", &format!("{PODINFO}status: [{nested}]\n"));
    assert!(e[0].message.contains("nests more than"), "{e:?}");
}

#[test]
fn eighty_thousand_documents_stop_at_the_document_limit() {
    let text = "---\nkind: X\n".repeat(80_000);
    let e = refused("many.yaml", &text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message.contains("more than 1000 YAML documents"),
        "{e:?}"
    );
    assert_eq!(e[0].line, 2 * source::MAX_DOCUMENTS + 1, "{e:?}");
}

#[test]
fn a_file_of_bad_documents_reports_a_bounded_number_of_problems() {
    let text = "---\nkind: X\n".repeat(source::MAX_DOCUMENTS);
    let started = std::time::Instant::now();
    let e = refused("bad.yaml", &text);
    // Printed, not asserted: machines differ.
    eprintln!(
        "{} bad documents: {:?}",
        source::MAX_DOCUMENTS,
        started.elapsed()
    );
    assert_eq!(e.len(), MAX_PROBLEMS + 1, "{:?}", e.last());
    assert!(
        e.last().unwrap().message.contains("stopped reading"),
        "{e:?}"
    );
    assert_eq!(e.last().unwrap().line, 2 * MAX_PROBLEMS + 2);
}

#[test]
fn loading_many_documents_takes_time_in_proportion_to_them() {
    // Each valid document adds the same work: the line of a problem is
    // found through an index, not by counting lines from the top.
    let doc = |i: usize| {
        PODINFO.replace(
            "name: podinfo\n  namespace",
            &format!("name: p{i}\n  namespace"),
        )
    };
    let time = |n: usize| {
        let mut text: String = (0..n).map(|i| doc(i) + "---\n").collect();
        text.push_str("kind: X\n");
        let started = std::time::Instant::now();
        let e = refused("many.yaml", &text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].line > n * 20, "{e:?}");
        started.elapsed()
    };
    let (small, large) = (time(50), time(500));
    eprintln!("50 documents: {small:?}; 500 documents: {large:?}");
}

#[test]
fn long_keys_nested_deep_over_many_nodes_do_not_multiply_memory() {
    // With the full path stored per node, this file would need
    // 100 levels × 1000-character keys × 30,000 nodes: 3 GB.
    let mut text = String::from("a:\n");
    let mut indent = String::from("  ");
    for i in 0..100 {
        text.push_str(&format!("{indent}{}{i}:\n", "k".repeat(1000)));
        indent.push(' ');
    }
    for i in 0..30_000 {
        text.push_str(&format!("{indent}v{i}: 1\n"));
    }
    let docs = source::parse_documents(&text).unwrap();
    let deepest = format!(
        "a.{}.v29999",
        (0..100)
            .map(|i| format!("{}{i}", "k".repeat(1000)))
            .collect::<Vec<_>>()
            .join(".")
    );
    assert_eq!(
        docs[0].spans.get(&deepest).unwrap().value.start.line,
        30_101
    );
}

#[test]
fn a_huge_bad_value_is_shown_by_its_start_and_length() {
    let value = "x".repeat(5_000_000);
    let text = format!("apiVersion: flagger.app/v1beta1\nkind: {value}\n");
    let e = refused("huge.yaml", &text);
    let shown = e[0].render();
    assert!(shown.len() < 2_000, "{} bytes", shown.len());
    assert!(shown.contains("5000000 characters"), "{shown}");
    assert_eq!((e[0].line, e[0].column), (2, 7));

    let text = PODINFO.replace("interval: 1m", &format!("interval: {value}"));
    let e = refused("huge.yaml", &text);
    let shown: String = e.iter().map(Diagnostic::render).collect();
    assert!(
        shown.len() < 4_000,
        "{} bytes: {}",
        shown.len(),
        &shown[..4000]
    );
    assert!(shown.contains("5000000 characters"), "{shown}");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let dir = std::env::temp_dir().join(format!("canary-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("big.yaml");
    std::fs::write(&f, "#".repeat(2048)).unwrap();
    let limits = Limits {
        max_input_size: 1024,
        ..Limits::default()
    };
    let e = load_file_with(&f, &limits).unwrap_err();
    assert!(e[0].message.contains("larger than 1 KiB"), "{e:?}");
    #[cfg(unix)]
    {
        // A device that never ends is read to the limit and no further.
        let e = load_file_with(Path::new("/dev/zero"), &limits).unwrap_err();
        assert!(e[0].message.contains("larger than 1 KiB"), "{e:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(format_size(4 * 1024 * 1024), "4 MiB");
    assert_eq!(format_size(1536), "1.5 KiB");
    assert_eq!(format_size(100), "100 bytes");
}

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn byte_mutations_of_the_fixtures_never_panic_and_every_problem_has_a_place() {
    const BYTES: &[u8] = b" \n\t:-[]{}&*!|>'\"#%@`,?0a\x00\xff";
    let fixtures = [
        include_str!("../../fixtures/podinfo.yaml"),
        include_str!("../../fixtures/ab-testing.yaml"),
        include_str!("../../fixtures/blue-green.yaml"),
        include_str!("../../fixtures/gateway-api.yaml"),
    ];
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    for round in 0..600 {
        let mut bytes = fixtures[round % fixtures.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = BYTES[rng.below(BYTES.len())],
                1 => bytes.insert(at, BYTES[rng.below(BYTES.len())]),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        // Invalid UTF-8 is refused before the loader (see load_file).
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let result = std::panic::catch_unwind(|| load_str("m.yaml", &text));
        let Ok(result) = result else {
            panic!("round {round} panicked on:\n{text}");
        };
        if let Err(errors) = result {
            assert!(!errors.is_empty(), "round {round}");
            for d in &errors {
                assert!(
                    d.line > 0 || d.message.contains("no YAML documents"),
                    "round {round}: {d:?} has no place\n{text}"
                );
            }
        }
    }
}

#[test]
fn urls_must_parse_with_a_host_and_a_port_that_fits() {
    use validate::check_url;
    assert!(check_url("http://flagger-loadtester.prod/").is_ok());
    assert!(check_url("https://[::1]:8443/x").is_ok());
    // Other Services of the namespace `default` may be called.
    assert!(check_url("http://kubernetes-dashboard.default/").is_ok());
    for (bad, why) in [
        ("http://[::1", "IPv6"),
        ("http://127.0.0.1:99999/", "port"),
        ("http://127.0.0.1:0/", "port"),
        ("flagger-loadtester.prod", "no scheme"),
        ("ftp://h/", "scheme"),
        ("http://", "host"),
        ("https://kubernetes.default/api/v1/secrets", "API server"),
        ("https://kubernetes.default.svc:443/", "API server"),
        (
            "http://KUBERNETES.default.svc.cluster.local./x",
            "API server",
        ),
        ("https://kubernetes.default.svc.corp.example/", "API server"),
    ] {
        let e = check_url(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn a_password_in_a_url_is_never_shown() {
    use crate::redact::redact_url;
    assert_eq!(redact_url("http://u:p@h:1/x?q"), "http://***@h:1/x?q");
    assert_eq!(redact_url("http://u:p@[::1/x"), "http://***@[::1/x");
    assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    let text = PODINFO.replacen(
        "url: http://flagger-loadtester.prod/",
        "url: http://admin:s3cret@[::1/",
        1,
    );
    let e = refused("p.yaml", &text);
    let shown: String = e.iter().map(Diagnostic::render).collect();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("http://***@[::1/"), "{shown}");
}

#[test]
fn names_follow_the_kubernetes_rules_of_their_kind() {
    use validate::NameKind;
    assert!(NameKind::Object.accepts("podinfo.v2"));
    assert!(!NameKind::Object.accepts("../../etc"));
    assert!(!NameKind::Object.accepts("Pod Info"));
    assert!(!NameKind::Object.accepts("a?b"));
    assert!(!NameKind::Namespace.accepts("prod.eu"));
    assert!(!NameKind::Namespace.accepts(&"a".repeat(64)));
    assert!(!NameKind::Service.accepts("9lives"));
    assert!(NameKind::Service.accepts("podinfo-2"));
}
