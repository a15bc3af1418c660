//! The safe core behind `ruv_temporal_ctx_t`: a model, a ring of the most
//! recent frames, and the scratch a classification writes into.
//!
//! Why a separate module: everything here is ordinary safe Rust over
//! slices, so it can be reasoned about (and tested) without the C
//! boundary; `ffi.rs` only turns pointers into slices and results into
//! codes.
//!
//! **Invariant:** every method validates its inputs before changing
//! anything, so a method that returns `Err` leaves the context as it was
//! (the ring's frames, their order, the count); `classify` writes only
//! into its own scratch, which the caller copies out on success.
//!
//! **Invariant:** nothing here can panic on any input: lengths are
//! checked before slicing, arithmetic on caller sizes is checked, and
//! every index is produced by a bounded iterator or `get`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::num::NonZeroUsize;

use aether_domain::HeadConfig;
use aether_model::TemporalModel;
use aether_rvne::RvneView;
use aether_sparse::SparseBackend;

use crate::codes::Error;

/// The model plus its frame ring.
#[derive(Debug)]
pub(crate) struct Context {
    model: TemporalModel<SparseBackend>,
    /// `window_len × input_dim` floats: frame slot `s` is
    /// `ring[s·D .. (s+1)·D]`.
    ring: Box<[f32]>,
    /// Frames the ring holds at most (`window_len`).
    window: NonZeroUsize,
    /// Slot of the oldest frame (`< window`).
    start: usize,
    /// Frames held (`≤ window_len`).
    len: usize,
    /// The last classification's logits, copied out only on success.
    logits: Box<[f32]>,
}

/// The head config the firmware runs: the AETHER default head (sparse,
/// causal, window 32, block 16, token 0 global, f32 cache) with the blob's
/// shape. Why from the blob: the shape is a property of the trained
/// weights, the sparsity pattern a property of the runtime, exactly as
/// `aether classify` builds it on the host, so both compute the same
/// logits.
pub(crate) fn head_config(view: &RvneView<'_>) -> HeadConfig {
    let header = view.header();
    HeadConfig {
        q_heads: usize::from(header.n_q_heads),
        kv_heads: usize::from(header.n_kv_heads),
        head_dim: usize::from(header.head_dim),
        ..HeadConfig::default_aether()
    }
}

impl Context {
    /// Parses and checks `blob`, builds the model and an empty ring of
    /// `window_len` frames.
    ///
    /// # Errors
    /// [`Error::ZeroDimension`] for a zero argument; the parser's error;
    /// [`Error::InputDimMismatch`] / [`Error::ClassCountMismatch`] when the
    /// blob disagrees with the caller; the model's refusal (non-finite
    /// weights); [`Error::RingTooLarge`] / [`Error::OutOfMemory`] when the
    /// ring cannot be sized or allocated.
    pub(crate) fn new(
        blob: &[u8],
        input_dim: u32,
        window_len: u32,
        n_classes: u32,
    ) -> Result<Self, Error> {
        if input_dim == 0 || window_len == 0 || n_classes == 0 {
            return Err(Error::ZeroDimension);
        }
        let view = RvneView::parse(blob)?;
        let header = view.header();
        if u32::from(header.input_dim) != input_dim {
            return Err(Error::InputDimMismatch);
        }
        if u32::from(header.n_classes) != n_classes {
            return Err(Error::ClassCountMismatch);
        }
        let backend = SparseBackend::new(head_config(&view))?;
        let model = TemporalModel::new(view.to_weights()?, backend)?;
        let window = usize::try_from(window_len)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or(Error::RingTooLarge)?;
        let ring_len = window
            .get()
            .checked_mul(model.input_dim())
            .ok_or(Error::RingTooLarge)?;
        let ring = zeroed(ring_len)?;
        let logits = zeroed(model.n_classes())?;
        Ok(Self {
            model,
            ring,
            window,
            start: 0,
            len: 0,
            logits,
        })
    }

    /// Values per frame.
    pub(crate) fn input_dim(&self) -> usize {
        self.model.input_dim()
    }

    /// Classes.
    pub(crate) fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    /// Appends `frame` (exactly `input_dim` values), dropping the oldest
    /// frame when the ring is full. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::NonFiniteFrame`] for NaN/±inf (the ring is unchanged);
    /// [`Error::InputDimMismatch`] for a frame of another length (the
    /// boundary always passes `input_dim` values, so only a Rust caller can
    /// hit it).
    pub(crate) fn push(&mut self, frame: &[f32]) -> Result<(), Error> {
        let dim = self.input_dim();
        if frame.len() != dim {
            return Err(Error::InputDimMismatch);
        }
        if !frame.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteFrame);
        }
        // `start < window` and `len ≤ window`, and `window × dim` fits in
        // memory, so none of this can overflow; `% NonZeroUsize` has no
        // division-by-zero path.
        let slot = (self.start + self.len) % self.window;
        let at = slot * dim;
        let Some(target) = self.ring.get_mut(at..at + dim) else {
            return Err(Error::InputDimMismatch);
        };
        target.copy_from_slice(frame);
        if self.len < self.window.get() {
            self.len += 1;
        } else {
            self.start = (self.start + 1) % self.window;
        }
        Ok(())
    }

    /// Runs the model over the held frames, oldest first, and returns the
    /// logits (`n_classes` values, all finite).
    ///
    /// The ring is first rotated in place so that the frames are
    /// contiguous and oldest first (its logical content is unchanged:
    /// same frames, same order), which saves a second window-sized buffer.
    ///
    /// # Errors
    /// [`Error::LogitsCount`] when `n_classes` is not the model's;
    /// [`Error::NoFrames`] before any push; the model's error.
    pub(crate) fn classify(&mut self, n_classes: u32) -> Result<&[f32], Error> {
        if usize::try_from(n_classes).ok() != Some(self.n_classes()) {
            return Err(Error::LogitsCount);
        }
        if self.len == 0 {
            return Err(Error::NoFrames);
        }
        let dim = self.input_dim();
        // `start < window_len`, so `start·D ≤ ring.len()`.
        self.ring.rotate_left(self.start * dim);
        self.start = 0;
        let frames = self.ring.get(..self.len * dim).ok_or(Error::NoFrames)?;
        self.model.classify_into(frames, &mut self.logits)?;
        // The model never returns a non-finite logit; checked again because
        // this is the promise C relies on.
        if !self.logits.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteLogits);
        }
        Ok(&self.logits)
    }
}

/// `len` zeros, or [`Error::OutOfMemory`] instead of aborting when the heap
/// cannot hold them.
fn zeroed(len: usize) -> Result<Box<[f32]>, Error> {
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory)?;
    buffer.resize(len, 0.0);
    Ok(buffer.into_boxed_slice())
}
