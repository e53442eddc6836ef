//! Chip and model profiles: the embedded set loads, every figure is sourced, broken files fail
//! with a one-line error naming file and field, and parameter counts computed from the
//! architecture match the published totals within 1 %.

use chipbench::profiles::{self, Chip, Precision, Status};
use std::path::Path;

fn configs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

#[test]
fn embedded_list_matches_config_files() {
    for (dir, embedded) in [("chips", profiles::embedded::CHIPS), ("models", profiles::embedded::MODELS)] {
        let mut on_disk: Vec<String> = std::fs::read_dir(configs().join(dir))
            .unwrap()
            .map(|e| format!("configs/{dir}/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|n| n.ends_with(".toml"))
            .collect();
        let mut listed: Vec<String> = embedded.iter().map(|(n, _)| n.to_string()).collect();
        on_disk.sort();
        listed.sort();
        assert_eq!(on_disk, listed, "src/profiles/embedded.rs must list every file in configs/{dir}");
    }
    // The directory loader reads the same profiles.
    let ids = |v: Vec<profiles::Chip>| {
        let mut ids: Vec<String> = v.into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(profiles::chips_in(Some(&configs())).unwrap()), ids(profiles::chips().unwrap()));
}

#[test]
fn required_chips_present_with_aliases() {
    let chips = profiles::chips().unwrap();
    for key in
        ["h20", "h800", "h100", "h200", "b200", "a100", "rtx-4090", "910b", "ascend-910c", "910c", "mi300x"]
    {
        profiles::find_chip(&chips, key).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    assert_eq!(profiles::chip("H20").unwrap().id, "nvidia-h20");
    assert_eq!(profiles::chip("nvidia-h20").unwrap().id, "nvidia-h20");
    let err = profiles::chip("h30").unwrap_err().to_string();
    assert!(!err.contains('\n') && err.contains("h30") && err.contains("h20"), "{err}");
}

#[test]
fn every_chip_figure_carries_a_source() {
    let mut walked = 0;
    for chip in profiles::chips().unwrap() {
        let figs = chip.figures();
        assert!(figs.len() >= 10, "{}: {} figures", chip.id, figs.len());
        for (field, fig) in figs {
            walked += 1;
            assert!(fig.source.trim().len() > 5, "{} {field}: no source", chip.id);
            for alt in &fig.alternatives {
                assert!(!alt.source.trim().is_empty(), "{} {field}: alternative without source", chip.id);
            }
            if fig.status() == Status::Sourced {
                assert!(fig.get().unwrap() > 0.0);
            }
        }
        // Each required peak is present, as a value or an explicit status.
        for p in Precision::REQUIRED {
            assert!(chip.peak_figure(p).is_some(), "{} peak.{p}", chip.id);
        }
    }
    assert!(walked > 100, "walked {walked} figures");
}

#[test]
fn conflicts_and_missing_formats_are_kept_visible() {
    let c = profiles::chip("910c").unwrap();
    assert_eq!(c.peak_figure(Precision::Fp8).unwrap().status(), Status::NotNative);
    assert!(!c.is_native(Precision::Fp8));
    assert_eq!(c.peak_flops(Precision::Bf16), Some(780e12));
    let link = c.interconnect.as_ref().unwrap();
    assert_eq!(link.alternatives[0].value, 400.0);
    let h800 = profiles::chip("h800").unwrap();
    assert!(h800.interconnect.as_ref().unwrap().alternatives.iter().any(|a| a.value == 300.0));
    assert_eq!(h800.link_per_direction_bytes_s().unwrap().0, 200e9);
    assert_eq!(
        profiles::chip("a100").unwrap().peak_figure(Precision::Fp8).unwrap().status(),
        Status::NotNative
    );
    assert!(profiles::chip("rtx-4090").unwrap().link_per_direction_bytes_s().is_none());
    let h20 = profiles::chip("h20").unwrap();
    assert_eq!(h20.memory_bytes(), Some(96e9));
    assert_eq!(h20.memory_bw_bytes_s(), Some(4e12));
    assert_eq!(h20.peak_flops(Precision::Fp8), Some(296e12));
}

const GOOD: &str = include_str!("../configs/chips/h20.toml");

fn parse(text: &str) -> Result<Chip, String> {
    Chip::parse(Path::new("configs/chips/broken.toml"), text).map_err(|e| e.to_string())
}

fn assert_one_line_error(text: &str, field: &str) {
    let err = parse(text).expect_err("must fail");
    assert!(!err.contains('\n'), "multi-line error: {err}");
    assert!(err.contains("broken.toml"), "no file in: {err}");
    assert!(err.contains(field), "no field '{field}' in: {err}");
}

#[test]
fn broken_chip_files_fail_with_one_line_naming_file_and_field() {
    assert!(parse(GOOD).is_ok());
    // Missing required table.
    let no_bw = GOOD.replace("[memory_bw]", "[memory_bw_gone]");
    assert_one_line_error(&no_bw, "memory_bw");
    // Missing required peak.
    let no_fp8 = GOOD.replace("[peak.fp8]", "[peak.fp8x]");
    assert_one_line_error(&no_fp8, "fp8x");
    let no_fp8 = {
        let start = GOOD.find("[peak.fp8]").unwrap();
        let end = GOOD[start..].find("[peak.int8]").unwrap() + start;
        format!("{}{}", &GOOD[..start], &GOOD[end..])
    };
    assert_one_line_error(&no_fp8, "peak.fp8");
    // Negative and absurd values.
    assert_one_line_error(
        &GOOD.replace("value = 4.0\nunit = \"TB/s\"", "value = -4.0\nunit = \"TB/s\""),
        "memory_bw",
    );
    assert_one_line_error(
        &GOOD.replace("value = 4.0\nunit = \"TB/s\"", "value = 4000.0\nunit = \"TB/s\""),
        "memory_bw",
    );
    assert_one_line_error(&GOOD.replace("value = 96.0", "value = 0.0"), "memory");
    // Missing source, wrong unit, unknown key, missing direction.
    let no_src =
        GOOD.replacen("source = \"https://willitrunai.com/es/gpus/h20-96gb (4,000", "note = \"x (", 1);
    assert_one_line_error(&no_src, "memory_bw");
    assert_one_line_error(&GOOD.replace("unit = \"TB/s\"", "unit = \"GB/s\""), "memory_bw");
    assert_one_line_error(&GOOD.replace("[tdp]\n", "[tdp]\nwatts = 3\n"), "watts");
    assert_one_line_error(&GOOD.replace("direction = \"bidirectional\"\n", ""), "interconnect.direction");
    assert_one_line_error(&GOOD.replace("id = \"nvidia-h20\"", "id = \"\""), "id");
}

/// Half a unit in the last written digit of a published figure: 3.3 → 0.05, 37 → 0.5, 36.7 → 0.05.
fn half_unit_in_last_digit(v: f64) -> f64 {
    let text = format!("{v}");
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    0.5 * 10f64.powi(-decimals)
}

#[test]
fn parameter_counts_match_published_within_one_percent() {
    let models = profiles::models().unwrap();
    assert!(models.len() >= 8);
    for m in &models {
        let c = m.param_counts();
        let total = c.total as f64 / 1e9;
        let published = m.params.total_b.get().unwrap();
        let err = (total - published).abs() / published;
        assert!(
            err < 0.01,
            "{}: computed total {total:.2}B vs published {published}B ({:.2} %)",
            m.id,
            err * 100.0
        );
        // Active: the closest published figure (main or alternative), in the publisher's convention,
        // within 1 % beyond the figure's own rounding (Qwen3-30B-A3B's "3.3B" is 3.35B computed).
        let active = c.active_as_published(m) as f64 / 1e9;
        let fig = &m.params.active_b;
        let best = std::iter::once(fig.get().unwrap())
            .chain(fig.alternatives.iter().map(|a| a.value))
            .map(|p| ((active - p).abs() - half_unit_in_last_digit(p)).max(0.0) / p)
            .fold(f64::INFINITY, f64::min);
        assert!(
            best < 0.01,
            "{}: computed active {active:.2}B ({:.2} % from closest published)",
            m.id,
            best * 100.0
        );
    }
}

#[test]
fn deepseek_v3_counts_match_the_hand_arithmetic() {
    let m = profiles::model("deepseek-v3").unwrap();
    let c = m.param_counts();
    // Reference arithmetic from config_671B.json (shared/reference/models.toml).
    assert_eq!(c.total, 671_026_419_200);
    assert_eq!(c.active + c.embedding, 37_552_297_472);
    assert_eq!(c.embedding, 129_280 * 7168);
    let llama = profiles::model("llama-3.1-8b").unwrap().param_counts();
    assert_eq!(llama.total, 8_030_261_248);
    // KV cache: MLA latent 512 + RoPE key 64 per layer; GQA 2 × 8 heads × 128.
    assert_eq!(m.kv_elements_per_token_layer(), 576);
    assert_eq!(profiles::model("llama-3.1-8b").unwrap().kv_elements(1), 2 * 8 * 128 * 32);
    let oss = profiles::model("gpt-oss-120b").unwrap();
    // 18 full layers × 1000 + 18 sliding layers × 128 tokens.
    assert_eq!(oss.kv_elements(1000), 2 * 8 * 64 * (18 * 1000 + 18 * 128));
}

#[test]
fn qwen3_counts_match_the_hand_arithmetic_and_the_model_cards() {
    // Per layer: q 64·128×4096, k and v 4·128×4096 each, o 4096×64·128, 128 experts of
    // 3×1536×4096, router 128×4096, two norms; plus embedding and head 151936×4096, final norm.
    let big = profiles::model("qwen3-235b-a22b").unwrap().param_counts();
    assert_eq!(big.total, 235_093_610_496);
    assert_eq!(big.embedding, 151_936 * 4096);
    assert_eq!(big.active, 21_568_409_600);
    // Model card: 235B total, 22B activated (with the input embedding: 22.19B), 234B non-embedding
    // (total less embedding and head: 233.85B).
    assert!((big.total as f64 / 1e9 - 235.0).abs() < 0.5);
    assert!(((big.active + big.embedding) as f64 / 1e9 - 22.0).abs() < 0.5);
    assert!(((big.total - 2 * big.embedding) as f64 / 1e9 - 234.0).abs() < 0.5);
    let small = profiles::model("qwen3-30b-a3b").unwrap().param_counts();
    assert_eq!(small.total, 30_532_110_336);
    assert_eq!(small.active, 3_041_855_488);
    // Card: 30.5B total, 3.3B activated, 29.9B non-embedding.
    assert!((small.total as f64 / 1e9 - 30.5).abs() < 0.05);
    assert!(((small.active + small.embedding) as f64 / 1e9 - 3.3).abs() < 0.06);
    assert!(((small.total - 2 * small.embedding) as f64 / 1e9 - 29.9).abs() < 0.05);
}
