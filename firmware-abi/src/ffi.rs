//! The C boundary: every exported function, and the only module that
//! touches a raw pointer.
//!
//! Why one module: the safety of the whole library rests on how C's
//! pointers become Rust references, so that happens in a handful of small
//! helpers ([`slice`], [`slice_mut`], [`context_mut`], [`write_out`]) that
//! null-check and convert, and each exported function is a thin wrapper:
//! convert the arguments (an `Err` becomes the returned code before
//! anything happens), call safe Rust ([`Context`], [`self_test`]), map the
//! result through the one code table ([`crate::codes`]).
//!
//! Conventions C can rely on (also in the header):
//! - every function returns an `esp_err_t`-compatible `int32_t`
//!   (`RUV_TEMPORAL_OK` = 0), except `ruv_temporal_destroy`;
//! - every pointer is checked for NULL (INVALID_ARG); a length follows
//!   every buffer whose length the callee cannot know; output parameters
//!   come last;
//! - no partial success: a call that fails changes neither the context
//!   nor any output parameter;
//! - no panic can reach C: the safe core indexes only through checked
//!   operations, and the firmware profile aborts on panic in any case
//!   (unwinding out of an `extern "C"` function aborts too).

use alloc::boxed::Box;

use aether_csi::CsiPacket;

use crate::codes::{Error, code_of};
use crate::context::Context;
use crate::packet;
use crate::self_test;

/// The opaque context C holds (`ruv_temporal_ctx_t`): made by
/// [`ruv_temporal_init`], freed by [`ruv_temporal_destroy`]. Not
/// thread-safe: one owner task.
#[derive(Debug)]
pub struct RuvTemporalCtx {
    inner: Context,
}

/// `ptr[..len]` as a slice; NULL is [`Error::NullPointer`].
///
/// # Safety
/// A non-null `ptr` must point to `len` initialised, readable `T` that stay
/// valid and unmodified for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], Error> {
    if ptr.is_null() {
        return Err(Error::NullPointer);
    }
    // SAFETY: non-null (checked above); validity, length and lifetime are
    // this function's documented precondition, passed on to every caller.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `ptr[..len]` as a mutable slice; NULL is [`Error::NullPointer`].
///
/// # Safety
/// A non-null `ptr` must point to `len` writable `T`, aligned, not aliased
/// by anything else for `'a`.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> Result<&'a mut [T], Error> {
    if ptr.is_null() {
        return Err(Error::NullPointer);
    }
    // SAFETY: non-null (checked above); the rest is the precondition.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// The context behind `ctx`; NULL is [`Error::NullPointer`].
///
/// # Safety
/// A non-null `ctx` must come from [`ruv_temporal_init`], not yet be
/// destroyed, and not be in use by another call for `'a`.
unsafe fn context_mut<'a>(ctx: *mut RuvTemporalCtx) -> Result<&'a mut Context, Error> {
    if ctx.is_null() {
        return Err(Error::NullPointer);
    }
    // SAFETY: a live, exclusively used Box allocation (the precondition).
    Ok(unsafe { &mut (*ctx).inner })
}

/// Writes `value` to the out-parameter `out`; NULL is
/// [`Error::NullPointer`].
///
/// # Safety
/// A non-null `out` must be valid for a write of `T` (C's `T *`, aligned).
unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::NullPointer);
    }
    // SAFETY: non-null and writable (the precondition).
    unsafe { out.write(value) };
    Ok(())
}

/// `usize` from a C `uint32_t` length; every supported target has at least
/// 32-bit pointers, and a target without would get INVALID_SIZE, not a
/// truncated length.
fn len_of(n: u32) -> Result<usize, Error> {
    usize::try_from(n).map_err(|_| Error::BufferTooSmall)
}

/// `dst = src`, refusing (instead of panicking) when lengths differ.
fn copy<T: Copy>(src: &[T], dst: &mut [T]) -> Result<(), Error> {
    if src.len() != dst.len() {
        return Err(Error::LogitsCount);
    }
    dst.copy_from_slice(src);
    Ok(())
}

/// Creates a context over a borrowed `.rvne` blob.
///
/// Parses and validates `weights[..weights_len]` (every `.rvne` check; a
/// NaN or infinite weight is refused), checks that the blob's `input_dim`
/// and `n_classes` are the caller's, builds the model and allocates an
/// empty ring of `window_len` frames. On success `*out_ctx` is the new
/// context; on failure `*out_ctx` is not written.
///
/// Codes: OK; INVALID_ARG (a NULL pointer, a zero `input_dim`,
/// `window_len` or `n_classes`, a dimension mismatch, a bad magic, a bad
/// blob shape, a non-finite weight); INVALID_SIZE, INVALID_CRC,
/// INVALID_VERSION (the blob's length, CRC, version or reserved fields);
/// NO_MEM (the ring).
///
/// # Safety
/// `weights` must point to `weights_len` readable bytes that stay valid
/// and unchanged until the context is destroyed (the blob is borrowed:
/// later library versions may read weights in place); `out_ctx` must be
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ruv_temporal_init(
    weights: *const u8,
    weights_len: usize,
    input_dim: u32,
    window_len: u32,
    n_classes: u32,
    out_ctx: *mut *mut RuvTemporalCtx,
) -> i32 {
    let result = (|| {
        if out_ctx.is_null() {
            return Err(Error::NullPointer);
        }
        // SAFETY: the caller's contract on `weights`.
        let blob = unsafe { slice(weights, weights_len) }?;
        let inner = Context::new(blob, input_dim, window_len, n_classes)?;
        let ctx = Box::into_raw(Box::new(RuvTemporalCtx { inner }));
        // SAFETY: `out_ctx` is non-null (checked first) and writable by the
        // caller's contract.
        unsafe { write_out(out_ctx, ctx) }
    })();
    code_of(&result)
}

/// Copies one frame of `input_dim` floats into the ring, dropping the
/// oldest frame when the ring is full. Allocates nothing.
///
/// Codes: OK; INVALID_ARG (NULL `ctx` or `frame`, a NaN or infinite value:
/// the ring is then unchanged).
///
/// # Safety
/// `ctx` must be a live context from [`ruv_temporal_init`] used by no other
/// call at the same time; `frame` must point to `input_dim` readable
/// floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ruv_temporal_push(ctx: *mut RuvTemporalCtx, frame: *const f32) -> i32 {
    let result = (|| {
        // SAFETY: the caller's contract on `ctx`.
        let context = unsafe { context_mut(ctx) }?;
        // SAFETY: the caller's contract: `input_dim` floats.
        let frame = unsafe { slice(frame, context.input_dim()) }?;
        context.push(frame)
    })();
    code_of(&result)
}

/// Feeds one raw ESP32 CSI packet (`wifi_csi_info_t`) to the context's
/// feature extractor and pushes every feature frame it completes into the
/// ring, each exactly as [`ruv_temporal_push`] would; `*out_frames` is how
/// many (0 or 1 in a steady stream: at 100 packets/s and 50 frames/s about
/// every other packet closes a frame; a packet after a gap also brings
/// the gap's interpolated frames). Allocates nothing.
///
/// The arguments are the callback's fields as they are: `buf`/`len` are
/// `info->buf`/`info->len`, then `info->rx_ctrl.sig_mode`, `.cwb`,
/// `.secondary_channel`, `.stbc` and `.timestamp` (microseconds, wrapping
/// at 2^32).
/// Plain scalars rather than a struct: the C caller copies bitfields out
/// of `rx_ctrl` either way, and no second struct layout has to be kept in
/// sync. The extractor is `aether-csi` with the host's default config
/// (`docs/csi-features.md`: 50 frames/s, running mean over 4 s, 500 ms
/// gap limit) and `input_dim` bands, so frames are the bits
/// `aether features` computes on the host. A duplicate or out-of-order
/// timestamp is dropped: OK with 0 frames.
///
/// Codes: OK; INVALID_ARG (NULL `ctx`, `buf` or `out_frames`; a packet
/// whose kept subcarriers are all zero); NOT_SUPPORTED (the fields and
/// `len` are no layout of Espressif's table; or the model's `input_dim`
/// is not a band count, 1..=48); INVALID_STATE (the packet measures
/// another subcarrier grid than the stream locked to at its first packet,
/// e.g. non-HT in an HT20 stream). On any error the ring, the stream and
/// `*out_frames` are unchanged. FAIL is reserved for a frame the ring
/// refuses, which the extractor's construction rules out; were it to
/// happen, the packet is consumed and the other frames are pushed.
///
/// # Safety
/// `ctx` as for [`ruv_temporal_push`]; `buf` must point to `len` readable
/// bytes; `out_frames` must be writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ruv_temporal_push_csi(
    ctx: *mut RuvTemporalCtx,
    buf: *const i8,
    len: u16,
    sig_mode: u8,
    cwb: u8,
    secondary_channel: u8,
    stbc: u8,
    timestamp_us: u32,
    out_frames: *mut u32,
) -> i32 {
    let result = (|| {
        // SAFETY: the caller's contract on `ctx`.
        let context = unsafe { context_mut(ctx) }?;
        if out_frames.is_null() {
            return Err(Error::NullPointer);
        }
        // SAFETY: the caller's contract: `len` readable bytes.
        let buf = unsafe { slice(buf, usize::from(len)) }?;
        let packet = CsiPacket {
            buf,
            sig_mode,
            cwb,
            secondary: secondary_channel,
            stbc,
            timestamp_us,
        };
        let frames = context.push_csi(&packet)?;
        // SAFETY: non-null (checked above) and writable by the caller's
        // contract.
        unsafe { write_out(out_frames, frames) }
    })();
    code_of(&result)
}

/// Runs the model over the frames in the ring, oldest first, and writes
/// the `n_classes` logits. On failure `logits` is not written.
///
/// Codes: OK; INVALID_ARG (NULL `ctx` or `logits`, `n_classes` not the
/// model's); INVALID_STATE (no frame pushed yet); FAIL (the arithmetic
/// left f32 although frames and weights are finite: no logits); NO_MEM.
///
/// # Safety
/// `ctx` as for [`ruv_temporal_push`]; `logits` must point to `n_classes`
/// writable floats not otherwise in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ruv_temporal_classify(
    ctx: *mut RuvTemporalCtx,
    logits: *mut f32,
    n_classes: u32,
) -> i32 {
    let result = (|| {
        // SAFETY: the caller's contract on `ctx`.
        let context = unsafe { context_mut(ctx) }?;
        if logits.is_null() {
            return Err(Error::NullPointer);
        }
        let computed = context.classify(n_classes)?;
        // SAFETY: non-null (checked above); `n_classes` writable floats by
        // the caller's contract, and `classify` checked that it equals
        // `computed.len()`.
        let out = unsafe { slice_mut(logits, len_of(n_classes)?) }?;
        copy(computed, out)
    })();
    code_of(&result)
}

/// Frees a context. NULL is a no-op.
///
/// # Safety
/// A non-null `ctx` must be a live context from [`ruv_temporal_init`]; it
/// must not be used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ruv_temporal_destroy(ctx: *mut RuvTemporalCtx) {
    if !ctx.is_null() {
        // SAFETY: made by `Box::into_raw` in `ruv_temporal_init` and not
        // freed before (the caller's contract).
        drop(unsafe { Box::from_raw(ctx) });
    }
}

/// Known-answer check of the attention kernel as compiled for this
/// device: the fast sparse backend against the reference on a fixed small
/// input, prefill and streaming.
///
/// Codes: OK when they agree to 1e-5, FAIL otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn ruv_temporal_kernel_self_test() -> i32 {
    code_of(&self_test::run())
}

/// Fills the 40-byte classification packet from `n_classes` logits
/// (magic, version, `n_classes`, `node_id`, `ts_us`, `seq`, the first
/// argmax, the top logit, top1 − top2, CRC-32 of bytes 0..36), little-endian,
/// into `out[0..40]`. Nothing is written on failure.
///
/// Codes: OK; INVALID_ARG (NULL `logits` or `out`, `n_classes` outside
/// 2..=255, a NaN or infinite logit, finite logits whose margin overflows
/// f32); INVALID_SIZE (`out_len` < 40).
///
/// # Safety
/// `logits` must point to `n_classes` readable floats; `out` to `out_len`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ruv_temporal_encode_packet(
    logits: *const f32,
    n_classes: u32,
    node_id: u8,
    ts_us: u64,
    seq: u32,
    out: *mut u8,
    out_len: usize,
) -> i32 {
    let result = (|| {
        if logits.is_null() || out.is_null() {
            return Err(Error::NullPointer);
        }
        let count = packet::class_count(n_classes)?;
        // SAFETY: non-null; `count == n_classes` readable floats by the
        // caller's contract.
        let logits = unsafe { slice(logits, count) }?;
        // SAFETY: non-null; `out_len` writable bytes by the contract.
        let out = unsafe { slice_mut(out, out_len) }?;
        packet::encode_into(logits, node_id, ts_us, seq, out)
    })();
    code_of(&result)
}
