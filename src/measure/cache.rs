//! The last-level cache size, for deciding which problems stream from memory.

/// Size in bytes of the largest data/unified cache of CPU 0 (the LLC), from Linux sysfs; 0 when
/// unknown.
pub fn llc_bytes() -> u64 {
    let mut best = 0;
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let Ok(kind) = std::fs::read_to_string(format!("{dir}/type")) else { break };
        if kind.trim() == "Instruction" {
            continue;
        }
        if let Ok(size) = std::fs::read_to_string(format!("{dir}/size")) {
            best = best.max(parse_size(size.trim()).unwrap_or(0));
        }
    }
    best
}

/// "32768K", "1M", "512" → bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok().map(|v| v * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn reads_a_cache_size_on_linux() {
        if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists() {
            let b = llc_bytes();
            assert!((64 << 10..4 << 30).contains(&b), "{b}");
        }
    }
}
