//! Per-packet cost of the extractor: how many nanoseconds one HT20 packet
//! (256 bytes, 52 kept subcarriers, 16 bands, 50 Hz frames, running mean)
//! takes on this machine, so the firmware budget can be judged.
//!
//! `cargo run --release -p aether-csi --example cost` prints the median of
//! several runs over 60 s of generated packets.

use std::hint::black_box;
use std::time::Instant;

use aether_csi::sim::{SimConfig, generate};
use aether_csi::{Extractor, FeatureConfig, Frame};

fn main() {
    let packets = generate(&SimConfig {
        duration_s: 60.0,
        ..SimConfig::default()
    });
    let views: Vec<_> = packets.iter().map(|p| p.packet()).collect();
    let mut runs = Vec::new();
    for _ in 0..9 {
        let mut extractor =
            Extractor::new(FeatureConfig::default()).expect("default config is valid");
        let mut sum = 0.0_f32;
        let start = Instant::now();
        for packet in &views {
            let report = extractor.push(black_box(packet), &mut |f: &Frame<'_>| sum += f.values[0]);
            black_box(report.ok());
        }
        let elapsed = start.elapsed();
        black_box(sum);
        runs.push(elapsed.as_nanos() as f64 / views.len() as f64);
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "aether-csi extractor: {:.0} ns per HT20 packet (median of {} runs over {} packets; min {:.0}, max {:.0})",
        runs[runs.len() / 2],
        runs.len(),
        views.len(),
        runs[0],
        runs[runs.len() - 1]
    );
}
