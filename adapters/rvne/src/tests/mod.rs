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

/// The header's default is the model's default shape, field for field (the
/// `u16` casts in `Header::default_aether` lose nothing), and the shape a
/// header declares is the one it was made from.
#[test]
fn default_aether_is_the_model_default() {
    let header = Header::default_aether(ElementType::F16);
    assert_eq!(header.shape(), aether_model::ModelShape::DEFAULT_AETHER);
    assert_eq!(
        Header::from_shape(header.shape(), ElementType::F16),
        Ok(header)
    );
    let too_wide = aether_model::ModelShape {
        head_dim: 70_000,
        ..aether_model::ModelShape::DEFAULT_AETHER
    };
    assert_eq!(
        Header::from_shape(too_wide, ElementType::F32),
        Err(crate::RvneError::FieldTooLarge {
            field: "head_dim",
            value: 70_000
        })
    );
}
