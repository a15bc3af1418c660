//! In-crate tests: the ones that need crate-private hooks or proptest's
//! default regression directory.
//!
//! Tests that only use the public API live in `tests/`. These live here
//! because the exhaustive bit-flip test drives the parser through its
//! crate-private CRC hook, and because proptest's default persistence
//! (`proptest-regressions/` beside `src/`) only applies to files under
//! `src/`, so shrunk failures are kept where the next run replays them.

mod exhaustive;
mod props;

use crate::{ElementType, Header, RvneBlob};

/// The default AETHER f32 blob from the default seed: the fixture every
/// robustness test mutates.
pub(crate) fn default_blob() -> RvneBlob {
    match RvneBlob::random(
        Header::default_aether(ElementType::F32),
        crate::DEFAULT_SEED,
    ) {
        Ok(blob) => blob,
        Err(e) => panic!("the default header must encode: {e}"),
    }
}
