//! The profiles compiled into the binary. A test (tests/profiles.rs) checks that this list and
//! the files under `configs/` agree, so adding a file without listing it here fails CI.

macro_rules! embed {
    ($($dir:literal / $file:literal),* $(,)?) => {
        &[$((concat!("configs/", $dir, "/", $file), include_str!(concat!("../../configs/", $dir, "/", $file)))),*]
    };
}

/// `(repo-relative path, contents)` of every chip profile, in display order.
pub const CHIPS: &[(&str, &str)] = embed![
    "chips" / "h100-sxm.toml",
    "chips" / "h800.toml",
    "chips" / "h20.toml",
    "chips" / "h200.toml",
    "chips" / "a100-sxm-80gb.toml",
    "chips" / "b200.toml",
    "chips" / "mi300x.toml",
    "chips" / "ascend-910b.toml",
    "chips" / "ascend-910c.toml",
    "chips" / "ascend-950pr.toml",
    "chips" / "ascend-950dt.toml",
    "chips" / "rtx-4090.toml",
    "chips" / "apple-m4-max.toml",
];

/// `(repo-relative path, contents)` of every model profile.
pub const MODELS: &[(&str, &str)] = embed![
    "models" / "deepseek-v3.toml",
    "models" / "deepseek-v3.1.toml",
    "models" / "deepseek-r1.toml",
    "models" / "llama-3.1-8b.toml",
    "models" / "llama-3.1-70b.toml",
    "models" / "llama-3.1-405b.toml",
    "models" / "qwen2.5-72b.toml",
    "models" / "mixtral-8x7b.toml",
    "models" / "gpt-oss-120b.toml",
    "models" / "qwen3-235b-a22b.toml",
    "models" / "qwen3-30b-a3b.toml",
];
