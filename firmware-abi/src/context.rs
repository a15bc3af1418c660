//! The safe core behind `ruv_temporal_ctx_t`: a model, a ring of the most
//! recent frames, the scratch a classification writes into, and the CSI
//! extractor that turns raw packets into frames for the ring.
//!
//! Why a separate module: everything here is ordinary safe Rust over
//! slices, so it can be reasoned about (and tested) without the C
//! boundary; `ffi.rs` only turns pointers into slices and results into
//! codes.
//!
//! **Invariant:** every method validates its inputs before changing
//! anything, so a method that returns `Err` leaves the context as it was
//! (the ring's frames, their order, the count, the extractor's signal
//! state); `classify` writes only into its own scratch, which the caller
//! copies out on success.
//!
//! **Invariant:** nothing here can panic on any input: lengths are
//! checked before slicing, arithmetic on caller sizes is checked, and
//! every index is produced by a bounded iterator or `get`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::num::NonZeroUsize;

use aether_csi::{CsiPacket, Extractor, FeatureConfig, MAX_BANDS};
use aether_domain::HeadConfig;
use aether_model::TemporalModel;
use aether_rvne::RvneView;
use aether_sparse::SparseBackend;

use crate::codes::Error;

/// The model plus its frame ring and CSI extractor.
#[derive(Debug)]
pub(crate) struct Context {
    model: TemporalModel<SparseBackend>,
    ring: Ring,
    /// The last classification's logits, copied out only on success.
    logits: Box<[f32]>,
    /// Raw CSI → frames of `input_dim` bands (`ruv_temporal_push_csi`);
    /// `None` when the model's `input_dim` is not a band count the
    /// extractor can cut (1..=[`MAX_BANDS`]). Held inline (≈0.9 KiB of the
    /// context) so a packet never allocates.
    csi: Option<Extractor>,
}

/// The most recent `window_len` frames, oldest first from `start`.
///
/// A struct of its own so `push_csi` can lend it to the extractor's frame
/// sink while the extractor itself is borrowed mutably.
#[derive(Debug)]
struct Ring {
    /// `window_len × input_dim` floats: frame slot `s` is
    /// `frames[s·D .. (s+1)·D]`.
    frames: Box<[f32]>,
    /// Values per frame (`input_dim`).
    dim: usize,
    /// Frames the ring holds at most (`window_len`).
    window: NonZeroUsize,
    /// Slot of the oldest frame (`< window`).
    start: usize,
    /// Frames held (`≤ window_len`).
    len: usize,
}

/// The extractor config the firmware runs: `docs/csi-features.md`'s
/// defaults (50 frames/s, HT-LTF when present, linear amplitudes, running
/// mean over 4 s, 500 ms gap limit) with one band per model input. Why
/// fixed: the C ABI has no options struct, and the host's `aether
/// features` defaults are what a model is trained on, so the device must
/// compute the same frames. `None` when `input_dim` is outside
/// 1..=[`MAX_BANDS`].
pub fn csi_config(input_dim: usize) -> Option<FeatureConfig> {
    (1..=MAX_BANDS).contains(&input_dim).then(|| FeatureConfig {
        bands: input_dim,
        ..FeatureConfig::default()
    })
}

/// The head config the firmware runs: the AETHER default head (sparse,
/// causal, window 32, block 16, token 0 global, f32 cache) with the blob's
/// shape. Why from the blob: the shape is a property of the trained
/// weights, the sparsity pattern a property of the runtime, exactly as
/// `aether classify` builds it on the host, so both compute the same
/// logits.
pub fn head_config(view: &RvneView<'_>) -> HeadConfig {
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
        let frames = zeroed(ring_len)?;
        let logits = zeroed(model.n_classes())?;
        // The default config with a valid band count passes validation;
        // were it ever refused, `push_csi` reports NOT_SUPPORTED instead
        // of `init` failing for callers that never use CSI.
        let csi = csi_config(model.input_dim()).and_then(|config| Extractor::new(config).ok());
        Ok(Self {
            ring: Ring {
                frames,
                dim: model.input_dim(),
                window,
                start: 0,
                len: 0,
            },
            model,
            logits,
            csi,
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
        self.ring.push(frame)
    }

    /// Feeds one raw CSI packet to the extractor and appends every frame it
    /// emits to the ring, exactly as [`Context::push`] would; returns how
    /// many. Allocates nothing.
    ///
    /// A refused packet changes nothing the model sees (the extractor only
    /// counts it); a duplicate or out-of-order packet is dropped by the
    /// extractor and gives `Ok(0)`.
    ///
    /// # Errors
    /// [`Error::CsiUnavailable`] when the model's `input_dim` is not a band
    /// count; [`Error::Csi`] with the extractor's refusal (layout, grid,
    /// silent packet). [`Error::CsiFrame`] if the ring refused an emitted
    /// frame, which cannot happen: the extractor's frames have `bands ==
    /// input_dim` values, each finite (amplitudes of int8 I/Q over a
    /// non-zero RMS, means, interpolations and a running mean of those).
    /// Were it to happen anyway, the packet has been consumed, the other
    /// frames are in the ring and the refused one is not.
    pub(crate) fn push_csi(&mut self, packet: &CsiPacket<'_>) -> Result<u32, Error> {
        let Self { ring, csi, .. } = self;
        let extractor = csi.as_mut().ok_or(Error::CsiUnavailable)?;
        let mut refused = false;
        let report = extractor.push(packet, &mut |frame| {
            refused |= ring.push(frame.values).is_err();
        })?;
        if refused {
            return Err(Error::CsiFrame);
        }
        Ok(report.frames)
    }

    /// Runs the model over the held frames, oldest first (the ring is
    /// rotated in place, see [`Ring::oldest_first`]), and returns the
    /// logits (`n_classes` values, all finite).
    ///
    /// # Errors
    /// [`Error::LogitsCount`] when `n_classes` is not the model's;
    /// [`Error::NoFrames`] before any push; the model's error.
    pub(crate) fn classify(&mut self, n_classes: u32) -> Result<&[f32], Error> {
        if usize::try_from(n_classes).ok() != Some(self.n_classes()) {
            return Err(Error::LogitsCount);
        }
        let frames = self.ring.oldest_first()?;
        self.model.classify_into(frames, &mut self.logits)?;
        // The model never returns a non-finite logit; checked again because
        // this is the promise C relies on.
        if !self.logits.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteLogits);
        }
        Ok(&self.logits)
    }
}

impl Ring {
    /// See [`Context::push`].
    fn push(&mut self, frame: &[f32]) -> Result<(), Error> {
        let dim = self.dim;
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
        let Some(target) = self.frames.get_mut(at..at + dim) else {
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

    /// The held frames, contiguous and oldest first.
    ///
    /// The ring is first rotated in place (its logical content is
    /// unchanged: same frames, same order), which saves a second
    /// window-sized buffer.
    ///
    /// # Errors
    /// [`Error::NoFrames`] when empty.
    fn oldest_first(&mut self) -> Result<&[f32], Error> {
        if self.len == 0 {
            return Err(Error::NoFrames);
        }
        // `start < window_len`, so `start·D ≤ frames.len()`.
        self.frames.rotate_left(self.start * self.dim);
        self.start = 0;
        self.frames
            .get(..self.len * self.dim)
            .ok_or(Error::NoFrames)
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
