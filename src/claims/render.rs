//! The claims table as people read it (Markdown) and as tools read it (JSON).

use super::{Assessment, Catalogue, Verdict};
use serde::Serialize;

/// Make text safe inside one Markdown table cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn cell_lines(lines: &[String]) -> String {
    lines.iter().map(|l| cell(l)).collect::<Vec<_>>().join("<br>")
}

/// Counts per verdict, e.g. "3 supported, 2 partly, ...".
pub fn summary(assessments: &[Assessment]) -> String {
    let order =
        [Verdict::Supported, Verdict::Partly, Verdict::NotSupported, Verdict::NoData, Verdict::NotTestable];
    order
        .iter()
        .map(|v| (v, assessments.iter().filter(|a| a.verdict == *v).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(v, n)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown table with a heading level of `level` (`##` for 2), then the sources.
pub fn markdown(cat: &Catalogue, assessments: &[Assessment], level: usize) -> String {
    let h = "#".repeat(level);
    let mut out = format!("{h} Claims\n\n{}.\n\n", summary(assessments));
    out.push_str("| Claim | Verdict | Numbers | From |\n|---|---|---|---|\n");
    for a in assessments {
        out.push_str(&format!(
            "| **{}** ({:?}): {} | {} | {} | {} |\n",
            cell(&a.id),
            a.category,
            cell(&a.statement),
            a.verdict,
            cell_lines(&a.numbers),
            cell_lines(&a.from)
        ));
    }
    out.push_str(&format!("\n{h}# Rules\n\n"));
    for a in assessments {
        out.push_str(&format!("- **{}**: evidence: {} Rule: {}\n", a.id, a.evidence, a.rule));
    }
    out.push_str(&format!("\n{h}# Sources\n\n"));
    for s in &cat.sources {
        out.push_str(&format!("- {}: \"{}\", {}; date {}.\n", s.id, s.title, s.outlet, s.date));
    }
    out
}

#[derive(Serialize)]
struct JsonOut<'a> {
    sources: &'a [super::Source],
    claims: &'a [Assessment],
}

pub fn json(cat: &Catalogue, assessments: &[Assessment]) -> String {
    serde_json::to_string_pretty(&JsonOut { sources: &cat.sources, claims: assessments }).expect("serialises")
}
