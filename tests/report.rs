//! `chipbench report`: merging runs from several hosts and backends, skipping what cannot be
//! read with one-line warnings, the Markdown (snapshot) and SVG plots that parse as XML and hold
//! every plotted series, and the no-overwrite rule.

use chipbench::report::merge;
use std::path::PathBuf;

/// Compare with a checked-in snapshot, or rewrite it when UPDATE_SNAPSHOTS is set.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new("tests/fixtures/expected").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with UPDATE_SNAPSHOTS=1)", path.display()));
    if let Some(i) = expected.lines().zip(actual.lines()).position(|(a, b)| a != b) {
        panic!(
            "{} differs at line {}:\n expected: {:?}\n   actual: {:?}\n(UPDATE_SNAPSHOTS=1 if intended)",
            path.display(),
            i + 1,
            expected.lines().nth(i),
            actual.lines().nth(i)
        );
    }
    assert_eq!(expected.lines().count(), actual.lines().count(), "{}: line count differs", path.display());
}

fn inputs() -> Vec<PathBuf> {
    ["tests/fixtures/results", "tests/fixtures/foreign", "tests/fixtures/missing.json"]
        .iter()
        .map(PathBuf::from)
        .collect()
}

#[test]
fn foreign_and_missing_files_are_skipped_with_one_line_warnings() {
    let loaded = merge::load(&inputs());
    assert_eq!(loaded.runs.len(), 2);
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
    let joined = loaded.warnings.join("\n");
    assert!(joined.contains("schema-99.json: schema_version: 99 is not supported"), "{joined}");
    assert!(joined.contains("not-results.json"), "{joined}");
    assert!(joined.contains("missing.json: not found"), "{joined}");
    assert!(loaded.warnings.iter().all(|w| !w.contains('\n') && w.ends_with("skipped")));
    // The same run twice is read once.
    let twice = merge::load(&[
        PathBuf::from("tests/fixtures/results"),
        PathBuf::from("tests/fixtures/results/node-a.json"),
    ]);
    assert_eq!(twice.runs.len(), 2);
    assert!(twice.warnings[0].contains("already read"), "{:?}", twice.warnings);
}

#[test]
fn merges_hosts_and_backends() {
    let loaded = merge::load(&inputs());
    let report = merge::build(&loaded.runs, &loaded.warnings, "report").unwrap();
    let md = &report.markdown;
    assert!(md.contains("from 2 hosts (node-a, node-b) and 3 backends (candle, cpu, wgpu)"), "{md}");
    for row in [
        "| node-a | cpu | 1x1031x2048 | e4m3",
        "| node-a | candle | 1x1031x2048 | e4m3",
        "| node-b | wgpu | 1x1031x2048 | e5m2",
        "| node-b | cpu | 33x1031x2048 | e4m3",
    ] {
        assert!(md.contains(row), "missing row {row}");
    }
    // The invalid record (mx32 GEMM on node-a) is never shown as a result.
    assert!(!md.contains("e4m3 mx32"));
    // Argument order does not change the report.
    let mut rev = inputs();
    rev.reverse();
    let again = merge::load(&rev);
    assert_eq!(merge::build(&again.runs, &loaded.warnings, "report").unwrap().markdown, *md);
}

#[test]
fn report_markdown_snapshot() {
    let loaded = merge::load(&inputs());
    let report = merge::build(&loaded.runs, &loaded.warnings, "report").unwrap();
    snapshot("report.md", &report.markdown);
    for (name, _) in &report.svgs {
        assert!(report.markdown.contains(&format!("]({name})")), "{name} not linked");
    }
}

/// Text content of every <text> element.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

#[test]
fn svgs_are_xml_and_hold_every_series() {
    let loaded = merge::load(&inputs());
    let report = merge::build(&loaded.runs, &loaded.warnings, "r").unwrap();
    let names: Vec<&str> = report.svgs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "r-gemm-throughput.svg",
            "r-gemv-throughput.svg",
            "r-memory.svg",
            "r-gemv-ceiling.svg",
            "r-roofline.svg"
        ]
    );
    let svg = |n: &str| report.svgs.iter().find(|(x, _)| x == n).unwrap().1.as_str();

    let ceiling = svg_texts(svg("r-gemv-ceiling.svg"));
    for want in [
        "f32",
        "bf16",
        "e4m3",
        "e5m2",
        "node-a cpu 1x1031x2048",
        "node-a candle 1x1031x2048",
        "node-b wgpu 1x1031x2048",
        "node-a read ceiling 20.0 GB/s",
        "node-b read ceiling 60.0 GB/s",
    ] {
        assert!(ceiling.iter().any(|t| t == want), "{want} not in {ceiling:?}");
    }
    let gemm = svg_texts(svg("r-gemm-throughput.svg"));
    assert!(gemm.iter().any(|t| t == "node-a cpu 129x1031x2048"), "{gemm:?}");
    assert!(gemm.iter().any(|t| t == "node-b cpu 33x1031x2048"), "{gemm:?}");
    let memory = svg_texts(svg("r-memory.svg"));
    assert!(memory.iter().any(|t| t == "weights 1031x2048"), "{memory:?}");
    let roof = svg_texts(svg("r-roofline.svg"));
    for want in [
        "node-a roof (400 GFLOP/s, 20.0 GB/s)",
        "node-b roof (800 GFLOP/s, 60.0 GB/s)",
        "node-b wgpu",
        "node-a candle",
    ] {
        assert!(roof.iter().any(|t| t == want), "{want} not in {roof:?}");
    }
    // One bar per (series, format) with data: 4 GEMV series; node-a candle has no e5m2 and node-b
    // has no f16 → 15 bars, plus background, plot area and legend boxes.
    let doc = roxmltree::Document::parse(svg("r-gemv-throughput.svg")).unwrap();
    let rects = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(rects >= 15 + 4, "{rects} rects");
    // The roofline draws one circle per measured point (23 valid records) plus legend markers.
    let doc = roxmltree::Document::parse(svg("r-roofline.svg")).unwrap();
    let circles = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
    assert!(circles >= 23, "{circles} circles");
}

#[test]
fn cli_writes_report_and_plots_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fleet.md");
    let run = |force: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chipbench"));
        cmd.arg("report").args(inputs()).arg("--out").arg(&out);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let first = run(false);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("chipbench: warning:") && l.contains("schema-99.json")),
        "{stderr}"
    );
    for f in ["fleet.md", "fleet-gemv-ceiling.svg", "fleet-roofline.svg", "fleet-memory.svg"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    std::fs::write(dir.path().join("fleet-roofline.svg"), "mine").unwrap();
    let second = run(false);
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(dir.path().join("fleet-roofline.svg")).unwrap(), "mine");
    assert!(run(true).status.success());
    assert_ne!(std::fs::read_to_string(dir.path().join("fleet-roofline.svg")).unwrap(), "mine");
    // Nothing readable at all is an error, not an empty report.
    let none = std::process::Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["report", "tests/fixtures/foreign", "--out"])
        .arg(dir.path().join("empty.md"))
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
}

/// The legend of an SVG chart: each label with the colour of its marker. plotters draws the
/// legend box (a black-stroked rect), then the labels, then the markers in the same order
/// (filled rects or circles, or stroked lines).
fn legend(svg: &str) -> Vec<(String, String)> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let nodes: Vec<_> = doc.descendants().filter(|n| n.is_element()).collect();
    let is_box = |n: &roxmltree::Node| {
        n.has_tag_name("rect")
            && n.attribute("fill") == Some("none")
            && n.attribute("stroke") == Some("#000000")
    };
    let start = nodes.iter().rposition(is_box).expect("a legend box") + 1;
    let texts: Vec<String> = nodes[start..]
        .iter()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    let colours: Vec<String> = nodes[start..]
        .iter()
        .filter(|n| ["rect", "circle", "polyline", "path", "line"].contains(&n.tag_name().name()))
        .filter_map(|n| n.attribute("fill").filter(|f| *f != "none").or(n.attribute("stroke")))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    assert_eq!(texts.len(), colours.len(), "{texts:?} {colours:?}");
    texts.into_iter().zip(colours).collect()
}

#[test]
fn one_backend_keeps_one_colour_across_every_svg() {
    let loaded = merge::load(&inputs());
    let report = merge::build(&loaded.runs, &loaded.warnings, "r").unwrap();
    // "node-a candle" -> (colour, the SVGs it was seen in)
    let mut seen: std::collections::BTreeMap<String, (String, Vec<String>)> = Default::default();
    for (name, svg) in &report.svgs {
        for (label, colour) in legend(svg) {
            let words: Vec<&str> = label.split_whitespace().collect();
            if words.len() < 2
                || !words[0].starts_with("node-")
                || !["cpu", "candle", "wgpu"].contains(&words[1])
            {
                continue;
            }
            let key = format!("{} {}", words[0], words[1]);
            let entry = seen.entry(key.clone()).or_insert_with(|| (colour.clone(), Vec::new()));
            assert_eq!(entry.0, colour, "{key} is {} in {:?} but {colour} in {name}", entry.0, entry.1);
            entry.1.push(name.clone());
        }
    }
    assert!(seen.len() >= 4, "{seen:?}");
    // Each backend appears in several charts (throughput, GEMV ceiling, roofline) ...
    assert!(seen.values().all(|(_, svgs)| svgs.len() >= 2), "{seen:?}");
    // ... and two backends never share a colour.
    let colours: std::collections::BTreeSet<&String> = seen.values().map(|(c, _)| c).collect();
    assert_eq!(colours.len(), seen.len(), "{seen:?}");
}
