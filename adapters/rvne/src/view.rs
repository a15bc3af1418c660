//! The zero-copy parser: the only way untrusted bytes become model weights.
//!
//! [`RvneView::parse`] runs the checks of `docs/rvne-format.md` in order and
//! borrows the input for as long as the view lives, so the firmware can
//! parse a blob that sits in flash without copying or allocating. Every
//! length it slices by has been checked against the input length first, so
//! parsing cannot panic and never allocates, whatever the bytes are.

use crate::error::RvneError;
use crate::format::{
    ElementType, FOOTER_LEN, HEADER_LEN, HEADER_LEN_V2, Header, MAGIC, MIN_BLOB_LEN, OPTIONS_LEN,
    RESERVED_FLAG_BITS, VERSION, VERSION_2, read_u16, read_u32,
};
use crate::matrix::{Elements, Matrix, read_element};
#[cfg(feature = "alloc")]
use aether_model::ModelWeights;
use aether_model::{Layout, MatrixKind, MatrixSpan};

/// A validated `.rvne` blob, borrowed.
///
/// Construct with [`RvneView::parse`]; every accessor then relies on the
/// checks having passed (see the crate-level invariant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RvneView<'a> {
    bytes: &'a [u8],
    header: Header,
    layout: Layout,
}

impl<'a> RvneView<'a> {
    /// Parses and validates a blob without copying it.
    ///
    /// Checks, in this order (`docs/rvne-format.md`), stopping at the first
    /// failure:
    ///
    /// 1. length >= 28 — [`RvneError::TooShort`]
    /// 2. magic — [`RvneError::BadMagic`]
    /// 3. version == 1 — [`RvneError::UnsupportedVersion`]
    /// 4. reserved flag bits, then the reserved byte, are zero —
    ///    [`RvneError::ReservedFlagBits`], [`RvneError::ReservedByte`]
    /// 5. length == 28 + `weights_len` — [`RvneError::LengthMismatch`]
    /// 6. CRC-32/IEEE of every byte before the last four equals them —
    ///    [`RvneError::CrcMismatch`]
    /// 7. header rules ([`Header::validate`]) — [`RvneError::ZeroDimension`],
    ///    [`RvneError::GroupRatio`], [`RvneError::NoLayers`],
    ///    [`RvneError::TooFewClasses`]
    /// 8. `weights_len` == weight count × element size —
    ///    [`RvneError::SizeOverflow`] if that product does not fit in
    ///    `usize`, else [`RvneError::WeightsLenMismatch`]
    ///
    /// # Errors
    ///
    /// The variant of the first failing check above.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RvneError> {
        Self::parse_with_crc(bytes, crc32fast::hash)
    }

    /// [`RvneView::parse`] with the CRC of the covered bytes supplied by
    /// `covered_crc`. Production code always passes `crc32fast::hash`; the
    /// exhaustive bit-flip test passes an incrementally updated CRC so it
    /// can run all 329,952 flips through every other line of the parser in
    /// a debug build.
    pub(crate) fn parse_with_crc(
        bytes: &'a [u8],
        covered_crc: impl FnOnce(&[u8]) -> u32,
    ) -> Result<Self, RvneError> {
        // 1. Length. After this, the fixed header and the CRC both exist;
        // the `let else` only turns that fact into typed slices.
        if bytes.len() < MIN_BLOB_LEN {
            return Err(RvneError::TooShort { len: bytes.len() });
        }
        let (Some(head), Some((covered, stored))) = (
            bytes.first_chunk::<HEADER_LEN>(),
            bytes.split_last_chunk::<FOOTER_LEN>(),
        ) else {
            return Err(RvneError::TooShort { len: bytes.len() });
        };

        // 2. Magic.
        let magic = read_u32(head, 0);
        if magic != MAGIC {
            return Err(RvneError::BadMagic { found: magic });
        }

        // 3. Version: 1 or 2; anything else is a hard break, no "newer but
        // compatible".
        let version = read_u16(head, 4);
        let header_len = match version {
            VERSION => HEADER_LEN,
            VERSION_2 => HEADER_LEN_V2,
            found => return Err(RvneError::UnsupportedVersion { found }),
        };

        // 4. Reserved flag bits, then the reserved byte.
        let flags = head[6];
        if flags & RESERVED_FLAG_BITS != 0 {
            return Err(RvneError::ReservedFlagBits { flags });
        }
        if head[7] != 0 {
            return Err(RvneError::ReservedByte { value: head[7] });
        }

        // 5. Total length. Computed in u64 so `28 + u32::MAX` cannot
        // overflow on a 32-bit target.
        let weights_len = read_u32(head, 20);
        let declared = (header_len + FOOTER_LEN) as u64 + u64::from(weights_len);
        if bytes.len() as u64 != declared {
            return Err(RvneError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }

        // 6. CRC over every byte before the stored CRC.
        let stored = u32::from_le_bytes(*stored);
        let computed = covered_crc(covered);
        if stored != computed {
            return Err(RvneError::CrcMismatch { stored, computed });
        }

        // 7. Header rules: a version-2 options block first (it exists: the
        // length check passed with the longer header), then the shape.
        let mut header = Header::decode_fields(head);
        if version == VERSION_2 {
            let block = bytes
                .get(HEADER_LEN..HEADER_LEN_V2)
                .and_then(|b| b.first_chunk::<OPTIONS_LEN>())
                .ok_or(RvneError::TooShort { len: bytes.len() })?;
            header.options = Header::decode_options(block)?;
            // A version-2 blob with every option off would be a second
            // spelling of a version-1 blob; there is exactly one.
            if header.options.is_v1() {
                return Err(RvneError::UnsupportedVersion { found: version });
            }
        }
        header.validate()?;

        // 8. Body size. `weights_len` fits in usize: it equals
        // `bytes.len()` minus the header and CRC.
        let layout = header.layout()?;
        let expected = layout
            .weight_count()
            .checked_mul(header.element_type.size())
            .ok_or(RvneError::SizeOverflow)?;
        let actual = bytes.len() - header_len - FOOTER_LEN;
        if expected != actual {
            return Err(RvneError::WeightsLenMismatch { expected, actual });
        }

        Ok(Self {
            bytes,
            header,
            layout,
        })
    }

    /// Wraps bytes this crate has just written for `header` and `layout`,
    /// skipping the CRC pass. Only [`RvneBlob`](crate::RvneBlob) calls this,
    /// on bytes it either wrote itself or parsed.
    #[cfg(feature = "alloc")]
    pub(crate) const fn from_trusted(bytes: &'a [u8], header: Header, layout: Layout) -> Self {
        Self {
            bytes,
            header,
            layout,
        }
    }

    /// The header the blob declares (already validated).
    #[must_use]
    pub const fn header(&self) -> Header {
        self.header
    }

    /// Where each matrix sits in the body.
    #[must_use]
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// How the weights are stored.
    #[must_use]
    pub const fn element_type(&self) -> ElementType {
        self.header.element_type
    }

    /// The whole blob, header and CRC included.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The weight body: `weights_len` bytes after the header.
    #[must_use]
    pub fn weight_bytes(&self) -> &'a [u8] {
        &self.bytes[self.header.header_len()..self.bytes.len() - FOOTER_LEN]
    }

    /// The stored CRC-32/IEEE (it matched the bytes when parsed).
    #[must_use]
    pub fn crc(&self) -> u32 {
        let mut tail = [0_u8; FOOTER_LEN];
        tail.copy_from_slice(&self.bytes[self.bytes.len() - FOOTER_LEN..]);
        u32::from_le_bytes(tail)
    }

    /// Total weights in the body.
    #[must_use]
    pub const fn weight_count(&self) -> usize {
        self.layout.weight_count()
    }

    /// Layers in the model.
    #[must_use]
    pub const fn n_layers(&self) -> usize {
        self.layout.n_layers()
    }

    /// Weight `index` of the body (`docs/model.md` order), or `None` past
    /// the end.
    #[inline]
    #[must_use]
    pub fn checked_weight(&self, index: usize) -> Option<f32> {
        read_element(self.element_type(), self.weight_bytes(), index)
    }

    /// Weight `index` of the body (`docs/model.md` order).
    ///
    /// # Panics
    ///
    /// When `index >= weight_count()`, like slice indexing. Use
    /// [`RvneView::checked_weight`] where the index is not known to be valid.
    #[inline]
    #[must_use]
    pub fn weight(&self, index: usize) -> f32 {
        match self.checked_weight(index) {
            Some(v) => v,
            None => panic!(
                "weight {index} is out of range for a body of {} weights",
                self.weight_count()
            ),
        }
    }

    /// Iterates over every weight of the body (`docs/model.md` order).
    #[must_use]
    pub fn weights(&self) -> Elements<'a> {
        Elements::new(self.weight_bytes(), self.element_type())
    }

    /// Decodes the whole body into `out` (`out.len() == weight_count()`),
    /// in body order (`docs/model.md`).
    ///
    /// # Errors
    ///
    /// [`RvneError::BufferLength`] when `out` has the wrong length; `out` is
    /// left untouched on error.
    pub fn decode_weights_into(&self, out: &mut [f32]) -> Result<(), RvneError> {
        self.whole_body().decode_into(out)
    }

    /// The model's weights, decoded once to f32 (an f16 blob is widened
    /// exactly): the one allocation of the weight count's f32s a model
    /// needs. The view itself stays zero-copy.
    ///
    /// # Errors
    ///
    /// None for a parsed view (its header is a valid shape and its body
    /// holds exactly that shape's weights); the `Result` spares callers a
    /// panic path.
    #[cfg(feature = "alloc")]
    pub fn to_weights(&self) -> Result<ModelWeights, RvneError> {
        let mut values = alloc::vec![0.0; self.weight_count()];
        self.decode_weights_into(&mut values)?;
        let actual = values.len();
        ModelWeights::new(self.header().shape(), values).map_err(|_| {
            RvneError::WeightCountMismatch {
                expected: self.weight_count(),
                actual,
            }
        })
    }

    /// The body as one `[1][weight_count]` matrix, for bulk decoding.
    fn whole_body(&self) -> Matrix<'a> {
        Matrix::new(
            self.weight_bytes(),
            1,
            self.weight_count(),
            self.element_type(),
        )
    }

    /// Every matrix of the body in order, named (version 2's norms,
    /// convolutions and MLPs included).
    pub fn matrices(&self) -> impl Iterator<Item = (aether_model::WeightMatrix, Matrix<'a>)> + '_ {
        self.layout
            .parts()
            .map(|(matrix, span)| (matrix, self.matrix_at(span)))
    }

    /// The matrix at `span` (a span of this view's own layout).
    fn matrix_at(&self, span: MatrixSpan) -> Matrix<'a> {
        let size = self.element_type().size();
        let bytes = &self.weight_bytes()[span.offset * size..(span.offset + span.len()) * size];
        Matrix::new(bytes, span.rows, span.cols, self.element_type())
    }

    /// The four projections of layer `layer`.
    ///
    /// # Errors
    ///
    /// [`RvneError::LayerOutOfRange`] when `layer >= n_layers()`.
    pub fn layer(&self, layer: usize) -> Result<Layer<'a>, RvneError> {
        if layer >= self.n_layers() {
            return Err(RvneError::LayerOutOfRange {
                layer,
                n_layers: self.n_layers(),
            });
        }
        Ok(self.layer_in_range(layer))
    }

    /// The projections of a layer known to be below `n_layers()`.
    fn layer_in_range(&self, layer: usize) -> Layer<'a> {
        let at = |kind| self.matrix_at(self.layout.matrix_in_range(layer, kind));
        Layer {
            index: layer,
            wq: at(MatrixKind::Query),
            wk: at(MatrixKind::Key),
            wv: at(MatrixKind::Value),
            wo: at(MatrixKind::Output),
        }
    }

    /// Every layer, in order.
    pub fn layers(&self) -> impl ExactSizeIterator<Item = Layer<'a>> + use<'a> {
        let view = *self;
        (0..self.n_layers()).map(move |l| view.layer_in_range(l))
    }

    /// The classifier Wc, `[D][C]`: logits = x·Wc.
    #[must_use]
    pub fn classifier(&self) -> Matrix<'a> {
        self.matrix_at(self.layout.classifier())
    }

    /// Index of the first NaN or infinite weight, if any. The format does
    /// not forbid such weights (`docs/rvne-format.md`), but a loader
    /// may want to refuse a model that would only ever output NaN.
    #[must_use]
    pub fn first_non_finite(&self) -> Option<usize> {
        self.weights().position(|w| !w.is_finite())
    }
}

/// The four projection matrices of one layer, borrowed from a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer<'a> {
    index: usize,
    wq: Matrix<'a>,
    wk: Matrix<'a>,
    wv: Matrix<'a>,
    wo: Matrix<'a>,
}

impl<'a> Layer<'a> {
    /// Which layer this is (0-based).
    #[must_use]
    pub const fn index(&self) -> usize {
        self.index
    }

    /// Wq, `[D][Hq·d]`: frames to queries.
    #[must_use]
    pub const fn wq(&self) -> Matrix<'a> {
        self.wq
    }

    /// Wk, `[D][Hkv·d]`: frames to keys.
    #[must_use]
    pub const fn wk(&self) -> Matrix<'a> {
        self.wk
    }

    /// Wv, `[D][Hkv·d]`: frames to values.
    #[must_use]
    pub const fn wv(&self) -> Matrix<'a> {
        self.wv
    }

    /// Wo, `[Hq·d][D]`: attention output back to the residual stream.
    #[must_use]
    pub const fn wo(&self) -> Matrix<'a> {
        self.wo
    }

    /// The projection of the given kind; `None` for the other kinds,
    /// which a version-1 blob does not have.
    #[must_use]
    pub const fn matrix(&self, kind: MatrixKind) -> Option<Matrix<'a>> {
        match kind {
            MatrixKind::Query => Some(self.wq),
            MatrixKind::Key => Some(self.wk),
            MatrixKind::Value => Some(self.wv),
            MatrixKind::Output => Some(self.wo),
            _ => None,
        }
    }
}
