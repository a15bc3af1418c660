//! The `.rvne` weight format (`docs/rvne-format.md`): the one artefact that
//! carries a trained temporal model from the host to the ESP32 firmware.
//!
//! The crate exists so that both ends of that trip share one parser and one
//! writer, and so the parser can be trusted with untrusted bytes:
//!
//! - [`RvneView`] is a borrowed, zero-copy view over `&[u8]` that works in
//!   `no_std` without an allocator. The bytes may sit in flash at any
//!   alignment: every number is read with `from_le_bytes` on a byte chunk,
//!   never through a pointer cast.
//! - [`RvneBlob`] (feature `alloc`) owns a validated blob and writes new ones
//!   ([`RvneBlob::from_f32_weights`], [`RvneBlob::random`]).
//! - [`RvneBlob::read_file`] / [`RvneBlob::write_file`] (feature `std`) move
//!   blobs through the file system.
//!
//! **Invariant:** a value of type [`RvneView`] or [`RvneBlob`] has passed
//! every parse check, so its weight accessors never fail for a reason the
//! format could have caught. Parsing checks run in exactly the documented
//! order (see [`RvneView::parse`]), each failing with its own [`RvneError`]
//! variant, with overflow-checked arithmetic on every header field and no
//! allocation sized by an unchecked length.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use aether_rvne::{ElementType, Header, RvneBlob, RvneView, DEFAULT_SEED};
//!
//! let blob = RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED)?;
//! assert_eq!(blob.as_bytes().len(), 41_244);
//!
//! let view = RvneView::parse(blob.as_bytes())?;
//! let wq = view.layer(0)?.wq(); // Wq of layer 0: [D][Hq·d] = [16][128]
//! let mut row = [0.0_f32; 128];
//! wq.row_into(3, &mut row)?;
//! assert_eq!(row[5], wq.get(3, 5));
//! # }
//! # Ok::<(), aether_rvne::RvneError>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod error;
mod format;
mod matrix;
mod view;

#[cfg(feature = "alloc")]
mod blob;

#[cfg(feature = "std")]
mod file;

pub use error::RvneError;
pub use format::{
    ElementType, FLAG_F16, FOOTER_LEN, HEADER_LEN, HEADER_LEN_V2, Header, MAGIC, MAX_BLOB_LEN,
    MIN_BLOB_LEN, OPTIONS_LEN, RESERVED_FLAG_BITS, VERSION, VERSION_2,
};
pub use matrix::{Elements, Matrix};
// The body order and the random init belong to the model; re-exported so a
// reader of blobs needs one import.
pub use aether_model::{DEFAULT_SEED, Layout, MatrixKind, MatrixSpan, ModelShape, ModelWeights};
pub use view::{Layer, RvneView};

#[cfg(feature = "alloc")]
pub use blob::RvneBlob;

#[cfg(feature = "std")]
pub use file::FileError;

// The in-crate tests use std (timing, proptest); the no_std build has none.
#[cfg(all(test, feature = "std"))]
mod tests;
