//! The typed failures of the extractor: each names what was wrong so a
//! caller (the CLI's summary, the firmware's status code) can count and
//! report it without parsing a message.

use core::fmt;

use crate::layout::Grid;

/// Why a packet or a configuration was refused. A refused packet leaves the
/// extractor's signal state as it was; only [`crate::Stats::rejected`] moves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CsiError {
    /// The receive-control fields and the byte length are not a layout of
    /// Espressif's table (or one this crate reads).
    UnsupportedLayout {
        /// `sig_mode` as received.
        sig_mode: u8,
        /// `cwb` as received (0 = 20 MHz, 1 = 40 MHz).
        bandwidth: u8,
        /// `secondary_channel` as received.
        secondary: u8,
        /// `stbc` as received.
        stbc: u8,
        /// The buffer length in bytes.
        len: usize,
    },
    /// The packet's chosen field measures another grid than the stream's
    /// (e.g. a non-HT packet in an HT40 stream): its bands would be other
    /// frequencies.
    GridChanged {
        /// The grid the stream locked to (or was pinned to).
        expected: Grid,
        /// The grid of this packet.
        found: Grid,
    },
    /// Every kept subcarrier is zero, so there is no amplitude to normalise.
    SilentPacket,
    /// A configuration value is out of its documented range.
    InvalidConfig {
        /// The [`crate::FeatureConfig`] field.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
}

impl fmt::Display for CsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnsupportedLayout {
                sig_mode,
                bandwidth,
                secondary,
                stbc,
                len,
            } => write!(
                f,
                "unsupported CSI layout: sig_mode {sig_mode}, bandwidth {bandwidth}, \
                 secondary channel {secondary}, stbc {stbc}, {len} bytes"
            ),
            Self::GridChanged { expected, found } => {
                write!(
                    f,
                    "packet measures grid {found:?}, the stream uses {expected:?}"
                )
            }
            Self::SilentPacket => f.write_str("every kept subcarrier of the packet is zero"),
            Self::InvalidConfig { field, rule } => {
                write!(f, "invalid feature config: {field} {rule}")
            }
        }
    }
}

impl core::error::Error for CsiError {}
