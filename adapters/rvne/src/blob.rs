//! The owned blob and the writer (feature `alloc`).
//!
//! Hosts and trainers need to *make* blobs, and the only safe way to make
//! one is to let the same code that defines the format compute its
//! `weights_len` and CRC. Every constructor here either writes the bytes
//! itself from a validated header or parses them, so an [`RvneBlob`]
//! always holds a blob that [`RvneView::parse`] accepts.

use alloc::vec::Vec;

use crate::error::RvneError;
use crate::format::{ElementType, FOOTER_LEN, Header};
use aether_model::{Layout, ModelWeights};

use crate::view::RvneView;

/// A validated `.rvne` blob that owns its bytes.
///
/// **Invariant:** `bytes` always passes [`RvneView::parse`], and `header` /
/// `layout` are what that parse returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RvneBlob {
    bytes: Vec<u8>,
    header: Header,
    layout: Layout,
}

impl RvneBlob {
    /// Takes ownership of bytes after validating them with
    /// [`RvneView::parse`].
    ///
    /// # Errors
    ///
    /// Any format error [`RvneView::parse`] reports.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, RvneError> {
        let view = RvneView::parse(&bytes)?;
        let (header, layout) = (view.header(), view.layout());
        Ok(Self {
            bytes,
            header,
            layout,
        })
    }

    /// Validates borrowed bytes, then copies them. Nothing is allocated
    /// before every check has passed.
    ///
    /// # Errors
    ///
    /// Any format error [`RvneView::parse`] reports.
    pub fn parse(bytes: &[u8]) -> Result<Self, RvneError> {
        let view = RvneView::parse(bytes)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            header: view.header(),
            layout: view.layout(),
        })
    }

    /// Writes a blob from weights in body order (`docs/model.md`; see
    /// [`Layout::spans`] for where each matrix starts). For an f16 header
    /// each weight is rounded to the nearest f16 (ties to even).
    ///
    /// # Errors
    ///
    /// A [`Header::validate`] error; [`RvneError::SizeOverflow`] when the
    /// body would not fit the `u32` `weights_len`;
    /// [`RvneError::WeightCountMismatch`] when `weights` has the wrong
    /// length; [`RvneError::UnrepresentableWeight`] for the first weight
    /// that is NaN, infinite, or (f16) beyond ±65504 after rounding.
    pub fn from_f32_weights(header: Header, weights: &[f32]) -> Result<Self, RvneError> {
        let expected = header.weight_count()?;
        if weights.len() != expected {
            return Err(RvneError::WeightCountMismatch {
                expected,
                actual: weights.len(),
            });
        }
        Self::write(header, weights)
    }

    /// Writes `weights` as a blob storing `element_type` (the model's one
    /// weights type in, the wire format out).
    ///
    /// # Errors
    ///
    /// [`RvneError::FieldTooLarge`] for a dimension above 65535;
    /// otherwise as [`RvneBlob::from_f32_weights`].
    pub fn from_weights(
        weights: &ModelWeights,
        element_type: ElementType,
    ) -> Result<Self, RvneError> {
        let header = Header::from_shape(weights.shape(), element_type)?;
        Self::write(header, weights.values())
    }

    /// A deterministic random-init blob: [`ModelWeights::random`] for the
    /// header's shape and `seed`, stored in the header's element type, so
    /// the same `header` and `seed` give the same bytes on every run and
    /// platform.
    ///
    /// # Errors
    ///
    /// A [`Header::validate`] error, or [`RvneError::SizeOverflow`] when the
    /// body would not fit the `u32` `weights_len`.
    pub fn random(header: Header, seed: u64) -> Result<Self, RvneError> {
        header.validate()?;
        let weights =
            ModelWeights::random(header.shape(), seed).map_err(|_| RvneError::SizeOverflow)?;
        Self::write(header, weights.values())
    }

    /// Encodes a blob of `header` over `weights`, which the caller has
    /// checked to hold the header's weight count.
    fn write(header: Header, weights: &[f32]) -> Result<Self, RvneError> {
        let layout = header.layout()?;
        // `blob_len` is overflow-checked and guarantees `weights_len` fits
        // the u32 field, so this allocation size is a checked length.
        let blob_len = header.blob_len()?;
        let weights_len = u32::try_from(blob_len - header.header_len() - FOOTER_LEN)
            .map_err(|_| RvneError::SizeOverflow)?;
        let mut bytes = Vec::with_capacity(blob_len);
        bytes.extend_from_slice(&header.encode(weights_len)[..header.header_len()]);
        for (index, &value) in weights.iter().enumerate() {
            let unrepresentable = RvneError::UnrepresentableWeight { index };
            if !value.is_finite() {
                return Err(unrepresentable);
            }
            match header.element_type {
                ElementType::F32 => bytes.extend_from_slice(&value.to_le_bytes()),
                ElementType::F16 => {
                    let half = half::f16::from_f32(value);
                    if !half.is_finite() {
                        return Err(unrepresentable);
                    }
                    bytes.extend_from_slice(&half.to_bits().to_le_bytes());
                }
            }
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(bytes.len(), blob_len);
        Ok(Self {
            bytes,
            header,
            layout,
        })
    }

    /// A borrowed view, for the weight accessors. Costs nothing: the bytes
    /// were validated when this blob was made.
    #[must_use]
    pub const fn view(&self) -> RvneView<'_> {
        RvneView::from_trusted(self.bytes.as_slice(), self.header, self.layout)
    }

    /// The header the blob declares.
    #[must_use]
    pub const fn header(&self) -> Header {
        self.header
    }

    /// The encoded blob, header and CRC included.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// The encoded blob, giving up ownership.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Every weight decoded to f32, in body order (the inverse of
    /// [`RvneBlob::from_f32_weights`], exact for f32 blobs).
    #[must_use]
    pub fn to_f32_weights(&self) -> Vec<f32> {
        self.view().weights().collect()
    }

    /// The model's weights (see [`RvneView::to_weights`]).
    ///
    /// # Errors
    ///
    /// As [`RvneView::to_weights`] (none for a valid blob).
    pub fn to_weights(&self) -> Result<ModelWeights, RvneError> {
        self.view().to_weights()
    }
}

impl AsRef<[u8]> for RvneBlob {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl TryFrom<Vec<u8>> for RvneBlob {
    type Error = RvneError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, RvneError> {
        Self::from_bytes(bytes)
    }
}

impl TryFrom<&[u8]> for RvneBlob {
    type Error = RvneError;

    fn try_from(bytes: &[u8]) -> Result<Self, RvneError> {
        Self::parse(bytes)
    }
}
