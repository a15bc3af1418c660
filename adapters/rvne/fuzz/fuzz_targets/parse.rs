//! libFuzzer target for [`RvneView::parse`]: no input may panic, abort,
//! overflow or read out of bounds, and every accepted blob must be fully
//! readable and re-encode to the same bytes.
//!
//! Each input is parsed twice: as given (which exercises the checks up to
//! the CRC), and with its last four bytes replaced by the CRC of the rest
//! (which lets the fuzzer reach the header rules, the size arithmetic and
//! the accessors — a fuzzer cannot otherwise forge CRC-32).
#![no_main]

use aether_rvne::{MatrixKind, RvneBlob, RvneView};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let Ok(view) = RvneView::parse(bytes) else {
        return;
    };
    let count = view.weight_count();
    assert_eq!(
        view.weight_bytes().len(),
        count * view.element_type().size()
    );
    let mut all = vec![0.0_f32; count];
    view.decode_weights_into(&mut all).expect("body fits");
    for layer in view.layers() {
        for kind in MatrixKind::PROJECTIONS {
            let Some(m) = layer.matrix(kind) else {
                continue;
            };
            let mut row = vec![0.0_f32; m.cols()];
            for r in 0..m.rows() {
                m.row_into(r, &mut row).expect("row fits");
            }
            let x = vec![1.0_f32; m.rows()];
            m.product_into(&x, &mut row).expect("shapes fit");
            let _ = m.get(m.rows() - 1, m.cols() - 1);
        }
    }
    let _ = view.classifier().to_vec();
    // Differential check: the writer reproduces every finite blob exactly.
    if view.first_non_finite().is_none() {
        let again = RvneBlob::from_f32_weights(view.header(), &all).expect("finite weights encode");
        assert_eq!(again.as_bytes(), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 4 {
        let mut sealed = data.to_vec();
        let covered = sealed.len() - 4;
        let crc = crc32(&sealed[..covered]);
        sealed[covered..].copy_from_slice(&crc.to_le_bytes());
        check(&sealed);
    }
});

/// CRC-32/IEEE, bitwise: independent of the parser's crc32fast so a bug
/// there would surface as a mismatch rather than be shared.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
