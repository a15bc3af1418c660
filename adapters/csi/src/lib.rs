//! Raw ESP32 CSI in: the crate that turns what an ESP32 prints or hands over
//! (`wifi_csi_info_t.buf` plus a few receive-control fields) into the
//! fixed-rate feature frames the temporal model reads (`docs/csi-features.md`
//! is the definition).
//!
//! It exists so that one definition of a "feature frame" serves the host
//! (`aether features` reading a log file) and the firmware (a C-ABI push per
//! received packet) bit for bit: the core is `no_std`, allocation-free and
//! uses `libm` for every transcendental function.
//!
//! - [`layout`]: Espressif's subcarrier table — which bytes are which
//!   subcarrier for each `sig_mode` / bandwidth / secondary channel / STBC.
//! - [`extract`]: packet → amplitudes → per-packet (AGC) normalisation →
//!   bands → fixed-rate frames → running normalisation, streaming.
//! - [`log`]: one line of an esp-csi `csi_recv` or ESP32-CSI-Tool log →
//!   a borrowed record, never panicking on any bytes.
//! - `sim` (feature `std`): a seeded raw-CSI generator writing both log
//!   formats, for tests and demos.
//!
//! ```
//! use aether_csi::{CsiPacket, Extractor, FeatureConfig};
//!
//! let mut extractor = Extractor::new(FeatureConfig::default())?;
//! let mut buf = [0_i8; 256]; // HT20: LLTF then HT-LTF, (imaginary, real) pairs
//! for (k, b) in buf.iter_mut().enumerate() {
//!     *b = if k % 2 == 0 { 3 } else { 20 };
//! }
//! let mut frames = 0;
//! for n in 0..100_u32 {
//!     let packet = CsiPacket { buf: &buf, sig_mode: 1, cwb: 0, secondary: 0, stbc: 0, timestamp_us: n * 10_000 };
//!     extractor.push(&packet, &mut |frame| {
//!         assert_eq!(frame.values.len(), 16);
//!         frames += 1;
//!     })?;
//! }
//! assert_eq!(frames, 49); // 0.99 s at 50 Hz: the 50th interval is still open
//! # Ok::<(), aether_csi::CsiError>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]

mod error;
pub mod extract;
pub mod layout;
pub mod log;
#[cfg(feature = "std")]
pub mod sim;

pub use error::CsiError;
pub use extract::{
    AmplitudeScale, CsiPacket, Dropped, Extractor, FeatureConfig, Frame, MAX_BANDS, PushReport,
    RunningNorm, Stats,
};
pub use layout::{FieldChoice, Grid, Layout, LayoutFields, MAX_CSI_LEN, Secondary};
pub use log::{ColumnMap, CsiRecord, FieldProblem, LogError, LogFormat, LogParser, Parsed};
