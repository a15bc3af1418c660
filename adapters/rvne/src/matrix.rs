//! Typed, zero-copy access to one weight matrix inside a blob.
//!
//! The model reads every weight through [`Matrix`], so this is the one place
//! that turns stored bytes into `f32`. Bytes are decoded with
//! `from_le_bytes` on `[u8; N]` chunks — never a pointer cast — because a
//! blob in flash or inside a file buffer has no alignment guarantee and the
//! target may be big- or little-endian.
//!
//! **Invariant:** a `Matrix` holds exactly `rows × cols × element size`
//! bytes: its constructor is crate-private and only ever fed spans of the
//! [`Layout`](crate::Layout) of a validated blob.

use crate::error::RvneError;
use crate::format::ElementType;

/// Decodes one little-endian f32.
#[inline]
const fn decode_f32(bytes: [u8; 4]) -> f32 {
    f32::from_le_bytes(bytes)
}

/// Decodes one little-endian f16, widened to f32 (exact).
#[inline]
fn decode_f16(bytes: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(bytes)).to_f32()
}

/// Decodes the `index`-th element of `bytes`, or `None` past the end.
#[inline]
pub(crate) fn read_element(element_type: ElementType, bytes: &[u8], index: usize) -> Option<f32> {
    match element_type {
        ElementType::F32 => {
            let (chunks, _) = bytes.as_chunks::<4>();
            chunks.get(index).map(|c| decode_f32(*c))
        }
        ElementType::F16 => {
            let (chunks, _) = bytes.as_chunks::<2>();
            chunks.get(index).map(|c| decode_f16(*c))
        }
    }
}

/// Decodes every element of `bytes` into `out`, pairwise; the caller has
/// checked that the lengths agree.
#[inline]
fn decode_slice(element_type: ElementType, bytes: &[u8], out: &mut [f32]) {
    match element_type {
        ElementType::F32 => {
            let (chunks, _) = bytes.as_chunks::<4>();
            for (o, c) in out.iter_mut().zip(chunks) {
                *o = decode_f32(*c);
            }
        }
        ElementType::F16 => {
            let (chunks, _) = bytes.as_chunks::<2>();
            for (o, c) in out.iter_mut().zip(chunks) {
                *o = decode_f16(*c);
            }
        }
    }
}

/// A row-major `[rows][cols]` weight matrix borrowed from a blob (y = x·W).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix<'a> {
    bytes: &'a [u8],
    rows: usize,
    cols: usize,
    element_type: ElementType,
}

impl<'a> Matrix<'a> {
    /// Wraps exactly `rows × cols` elements of `bytes` (see the invariant).
    pub(crate) const fn new(
        bytes: &'a [u8],
        rows: usize,
        cols: usize,
        element_type: ElementType,
    ) -> Self {
        Self {
            bytes,
            rows,
            cols,
            element_type,
        }
    }

    /// Rows: the input width of y = x·W.
    #[must_use]
    pub const fn rows(&self) -> usize {
        self.rows
    }

    /// Columns: the output width of y = x·W.
    #[must_use]
    pub const fn cols(&self) -> usize {
        self.cols
    }

    /// Number of weights (`rows × cols`).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the matrix has no weights (never, for a valid blob).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How the weights are stored.
    #[must_use]
    pub const fn element_type(&self) -> ElementType {
        self.element_type
    }

    /// The raw little-endian bytes of the matrix, row-major.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Weight `[row][col]`, or `None` when either index is out of range.
    #[inline]
    #[must_use]
    pub fn checked_get(&self, row: usize, col: usize) -> Option<f32> {
        if row >= self.rows || col >= self.cols {
            return None;
        }
        read_element(self.element_type, self.bytes, row * self.cols + col)
    }

    /// Weight `[row][col]`.
    ///
    /// # Panics
    ///
    /// When `row >= rows()` or `col >= cols()`, like slice indexing. Use
    /// [`Matrix::checked_get`] where the indices are not known to be valid.
    #[inline]
    #[must_use]
    pub fn get(&self, row: usize, col: usize) -> f32 {
        match self.checked_get(row, col) {
            Some(v) => v,
            None => panic!(
                "weight [{row}][{col}] is out of range for a {}x{} matrix",
                self.rows, self.cols
            ),
        }
    }

    /// Bytes of one row; `row` must be in range.
    fn row_bytes(&self, row: usize) -> &'a [u8] {
        let width = self.cols * self.element_type.size();
        let start = row * width;
        &self.bytes[start..start + width]
    }

    /// Iterates over the weights of one row, or `None` when `row` is out of
    /// range.
    #[must_use]
    pub fn row(&self, row: usize) -> Option<Elements<'a>> {
        (row < self.rows).then(|| Elements::new(self.row_bytes(row), self.element_type))
    }

    /// Decodes row `row` into `out` (`out.len() == cols()`).
    ///
    /// # Errors
    ///
    /// [`RvneError::RowOutOfRange`] when `row >= rows()`,
    /// [`RvneError::BufferLength`] when `out.len() != cols()`; `out` is left
    /// untouched on error.
    pub fn row_into(&self, row: usize, out: &mut [f32]) -> Result<(), RvneError> {
        if row >= self.rows {
            return Err(RvneError::RowOutOfRange {
                row,
                rows: self.rows,
            });
        }
        check_len(self.cols, out.len())?;
        decode_slice(self.element_type, self.row_bytes(row), out);
        Ok(())
    }

    /// Iterates over every weight, row-major.
    #[must_use]
    pub fn iter(&self) -> Elements<'a> {
        Elements::new(self.bytes, self.element_type)
    }

    /// Decodes the whole matrix, row-major, into `out`
    /// (`out.len() == rows() × cols()`).
    ///
    /// # Errors
    ///
    /// [`RvneError::BufferLength`] when `out` has the wrong length; `out` is
    /// left untouched on error.
    pub fn decode_into(&self, out: &mut [f32]) -> Result<(), RvneError> {
        check_len(self.len(), out.len())?;
        decode_slice(self.element_type, self.bytes, out);
        Ok(())
    }

    /// Writes the row-vector product `y = x·W` (`x.len() == rows()`,
    /// `y.len() == cols()`), the projection of `docs/model.md`.
    ///
    /// Each `y[c]` is accumulated in `f32` over rows in increasing order,
    /// starting from 0.0, one multiply and one add per weight; a trainer
    /// that wants bit-identical results sums in the same order.
    ///
    /// # Errors
    ///
    /// [`RvneError::BufferLength`] when `x` or `y` has the wrong length; `y`
    /// is left untouched on error.
    pub fn product_into(&self, x: &[f32], y: &mut [f32]) -> Result<(), RvneError> {
        check_len(self.rows, x.len())?;
        check_len(self.cols, y.len())?;
        y.fill(0.0);
        for (row, &xr) in x.iter().enumerate() {
            for (yc, w) in y
                .iter_mut()
                .zip(Elements::new(self.row_bytes(row), self.element_type))
            {
                *yc += xr * w;
            }
        }
        Ok(())
    }

    /// The whole matrix decoded into a new row-major vector.
    #[cfg(feature = "alloc")]
    #[must_use]
    pub fn to_vec(&self) -> alloc::vec::Vec<f32> {
        self.iter().collect()
    }
}

impl<'a> IntoIterator for Matrix<'a> {
    type Item = f32;
    type IntoIter = Elements<'a>;

    fn into_iter(self) -> Elements<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Matrix<'a> {
    type Item = f32;
    type IntoIter = Elements<'a>;

    fn into_iter(self) -> Elements<'a> {
        self.iter()
    }
}

/// `BufferLength` unless `actual == expected`.
const fn check_len(expected: usize, actual: usize) -> Result<(), RvneError> {
    if expected == actual {
        Ok(())
    } else {
        Err(RvneError::BufferLength { expected, actual })
    }
}

/// An iterator that decodes stored weights to `f32`, in storage order.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    inner: Chunks<'a>,
}

/// The stored elements as fixed-size byte arrays, one variant per type.
#[derive(Debug, Clone)]
enum Chunks<'a> {
    F32(core::slice::Iter<'a, [u8; 4]>),
    F16(core::slice::Iter<'a, [u8; 2]>),
}

impl<'a> Elements<'a> {
    /// Iterates over the whole elements of `bytes` (a trailing partial
    /// element, which a valid blob never has, is ignored).
    pub(crate) fn new(bytes: &'a [u8], element_type: ElementType) -> Self {
        let inner = match element_type {
            ElementType::F32 => Chunks::F32(bytes.as_chunks::<4>().0.iter()),
            ElementType::F16 => Chunks::F16(bytes.as_chunks::<2>().0.iter()),
        };
        Self { inner }
    }
}

impl Iterator for Elements<'_> {
    type Item = f32;

    #[inline]
    fn next(&mut self) -> Option<f32> {
        match &mut self.inner {
            Chunks::F32(it) => it.next().map(|c| decode_f32(*c)),
            Chunks::F16(it) => it.next().map(|c| decode_f16(*c)),
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Chunks::F32(it) => it.size_hint(),
            Chunks::F16(it) => it.size_hint(),
        }
    }

    #[inline]
    fn nth(&mut self, n: usize) -> Option<f32> {
        match &mut self.inner {
            Chunks::F32(it) => it.nth(n).map(|c| decode_f32(*c)),
            Chunks::F16(it) => it.nth(n).map(|c| decode_f16(*c)),
        }
    }
}

impl DoubleEndedIterator for Elements<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<f32> {
        match &mut self.inner {
            Chunks::F32(it) => it.next_back().map(|c| decode_f32(*c)),
            Chunks::F16(it) => it.next_back().map(|c| decode_f16(*c)),
        }
    }
}

impl ExactSizeIterator for Elements<'_> {}

impl core::iter::FusedIterator for Elements<'_> {}
