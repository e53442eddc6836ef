//! Scratch: the read ceiling's variants now, repeatedly.
use chipbench::measure::read_bw::{variants, ReadProbe};
fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let p = ReadProbe::new(128 << 20, 2);
    let v = variants();
    for _ in 0..reps {
        let r = p.measure(&v, 3, 4);
        let mut line = String::new();
        for x in &r.variants {
            line += &format!("{}={:.1} ", x.variant.name(), x.gbs);
        }
        println!("{line}");
    }
}
