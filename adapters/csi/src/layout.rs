//! Where each subcarrier sits in an ESP32 CSI buffer.
//!
//! The Wi-Fi driver hands over `wifi_csi_info_t.buf`: one or more long
//! training fields (LLTF, then HT-LTF, then STBC-HT-LTF), each a run of
//! entries of two signed bytes, **imaginary part first, then real part**
//! (Espressif's "Wi-Fi Channel State Information" guide). Which fields are
//! present, how many entries each has and in which subcarrier order they
//! come depends on four receive-control fields (`sig_mode`, `cwb`,
//! `secondary_channel`, `stbc`) and shows in the byte length. This module is
//! the one place that knows that table, so the extractor, the generator and
//! the tests cannot disagree about it; anything not in the table is refused
//! with [`CsiError::UnsupportedLayout`] rather than guessed.

use crate::CsiError;

/// The longest buffer in the table (HT40 with STBC): callers size their
/// buffers with it.
pub const MAX_CSI_LEN: usize = 612;

/// The byte length of one LLTF: 64 entries of two bytes. Every layout starts
/// with it, which is why a 128-byte buffer is always readable as LLTF only.
pub const LLTF_LEN: usize = 128;

/// The most data subcarriers any grid keeps (HT40).
pub const MAX_KEPT: usize = 108;

/// The fewest data subcarriers any grid keeps (legacy 20 MHz); the band count
/// is bounded by it so every grid can fill every band.
pub const MIN_KEPT: usize = 48;

/// The secondary-channel field (`wifi_second_chan_t`): it decides whether the
/// primary 20 MHz channel sits in the lower or upper half of the receiver's
/// 40 MHz grid, and so the subcarrier order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Secondary {
    /// `WIFI_SECOND_CHAN_NONE` (0): a 20 MHz receiver.
    None,
    /// `WIFI_SECOND_CHAN_ABOVE` (1): HT40+, the primary is the lower half.
    Above,
    /// `WIFI_SECOND_CHAN_BELOW` (2): HT40−, the primary is the upper half.
    Below,
}

impl Secondary {
    /// The driver's numeric code, as logs print it.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Above => 1,
            Self::Below => 2,
        }
    }

    /// The value for a driver code, `None` for codes the driver never uses.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Above),
            2 => Some(Self::Below),
            _ => None,
        }
    }
}

/// The set of data subcarriers a training field measures. Two packets can
/// share a feature stream only when they share a grid: the bands are cut
/// over the grid's subcarriers, so a different grid means different bands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Grid {
    /// LLTF of a 20 MHz channel: subcarriers ±1..±26 without the pilots
    /// ±7 and ±21 — 48 kept.
    Legacy20,
    /// HT-LTF of an HT20 packet: ±1..±28 without ±7, ±21 — 52 kept.
    Ht20,
    /// HT-LTF of an HT40 packet: ±2..±58 without ±11, ±25, ±53 — 108 kept.
    Ht40,
}

impl Grid {
    /// How many subcarriers the grid keeps.
    #[must_use]
    pub const fn kept(self) -> usize {
        match self {
            Self::Legacy20 => 48,
            Self::Ht20 => 52,
            Self::Ht40 => 108,
        }
    }

    /// The outermost occupied subcarrier (pilots and data reach it).
    #[must_use]
    pub const fn edge(self) -> i16 {
        match self {
            Self::Legacy20 => 26,
            Self::Ht20 => 28,
            Self::Ht40 => 58,
        }
    }

    /// Whether subcarrier `sc` (signed, relative to the field's centre) is
    /// a data subcarrier: inside the occupied band, not DC, not a pilot.
    #[must_use]
    pub const fn is_data(self, sc: i16) -> bool {
        let m = sc.unsigned_abs();
        if m > self.edge().unsigned_abs() {
            return false;
        }
        match self {
            Self::Legacy20 | Self::Ht20 => !matches!(m, 0 | 7 | 21),
            Self::Ht40 => !matches!(m, 0 | 1 | 11 | 25 | 53),
        }
    }

    /// The kept subcarriers in ascending frequency order.
    pub fn subcarriers(self) -> impl Iterator<Item = i16> {
        let edge = self.edge();
        (-edge..=edge).filter(move |&sc| self.is_data(sc))
    }
}

/// How an entry's position inside one field maps to its subcarrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// FFT order: entries `0..positive` are subcarriers `0..positive`, the
    /// rest are `-(count - positive)..-1` (e.g. "0~31, -32~-1").
    Wrap { positive: u16 },
    /// Ascending: entry `j` is subcarrier `first + j` (e.g. "0~63" of the
    /// upper 20 MHz half, whose centre is entry 32, so `first = -32`).
    Linear { first: i16 },
}

/// One training field inside the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    /// First entry (two bytes each) of the field in the buffer.
    start: u16,
    /// Number of entries.
    count: u16,
    order: Order,
    grid: Grid,
}

impl Field {
    const fn wrap(start: u16, count: u16, positive: u16, grid: Grid) -> Self {
        Self {
            start,
            count,
            order: Order::Wrap { positive },
            grid,
        }
    }

    const fn linear(start: u16, count: u16, first: i16, grid: Grid) -> Self {
        Self {
            start,
            count,
            order: Order::Linear { first },
            grid,
        }
    }

    /// The subcarrier held by buffer entry `entry`, if the field has it.
    fn subcarrier(self, entry: usize) -> Option<i16> {
        let j = entry.checked_sub(usize::from(self.start))?;
        if j >= usize::from(self.count) {
            return None;
        }
        let j = i16::try_from(j).ok()?;
        Some(match self.order {
            Order::Wrap { positive } if j >= positive as i16 => j - self.count as i16,
            Order::Wrap { .. } => j,
            Order::Linear { first } => first + j,
        })
    }

    /// The buffer entry holding subcarrier `sc`, if the field has it.
    fn entry(self, sc: i16) -> Option<usize> {
        let j = match self.order {
            Order::Wrap { positive } => {
                let j = if sc >= 0 {
                    i32::from(sc)
                } else {
                    i32::from(sc) + i32::from(self.count)
                };
                let positive = i32::from(positive);
                // A non-negative subcarrier must land in the positive run and
                // a negative one in the negative run, or the field lacks it.
                if (sc >= 0) != (j < positive) {
                    return None;
                }
                j
            }
            Order::Linear { first } => i32::from(sc) - i32::from(first),
        };
        if j < 0 || j >= i32::from(self.count) {
            return None;
        }
        usize::try_from(j).ok().map(|j| j + usize::from(self.start))
    }
}

/// Which training field the features come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FieldChoice {
    /// HT-LTF when the packet has one, else LLTF. The HT-LTF is sent with the
    /// packet's own bandwidth and covers 52 (HT20) or 108 (HT40) data
    /// subcarriers, where the LLTF only covers the 48 of the primary 20 MHz;
    /// the STBC-HT-LTF is never used (it estimates the second space-time
    /// stream, which a single-stream link does not add information with).
    #[default]
    HtLtfWhenPresent,
    /// Always the LLTF, which every packet carries: a stream mixing non-HT
    /// and HT packets then keeps one grid ([`Grid::Legacy20`]).
    Lltf,
}

/// The receive-control fields that decide a buffer's layout, as the driver
/// reports them (`wifi_pkt_rx_ctrl_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayoutFields {
    /// `sig_mode`: 0 non-HT (11b/g), 1 HT (11n); 3 (VHT) is not an ESP32 mode.
    pub sig_mode: u8,
    /// `cwb`: 0 for 20 MHz, 1 for 40 MHz.
    pub cwb: u8,
    /// `secondary_channel`: 0 none, 1 above, 2 below.
    pub secondary: u8,
    /// `stbc`: 1 when the packet is space-time block coded.
    pub stbc: u8,
}

/// A validated buffer layout: the fields present, their positions and orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    len: u16,
    secondary: Secondary,
    lltf: Field,
    ht_ltf: Option<Field>,
    stbc_ht_ltf: Option<Field>,
}

/// The table row for the fields, or `None` when the combination cannot occur
/// on an ESP32/ESP32-S3 (or is one this crate does not read).
fn row(f: LayoutFields) -> Option<(Secondary, bool, bool)> {
    let secondary = Secondary::from_code(f.secondary)?;
    let ht = match f.sig_mode {
        0 => false,
        1 => true,
        _ => return None,
    };
    let wide = match f.cwb {
        0 => false,
        1 => true,
        _ => return None,
    };
    let stbc = match f.stbc {
        0 => false,
        1 => true,
        _ => return None,
    };
    // Non-HT packets are 20 MHz and never STBC; a 40 MHz packet needs a
    // secondary channel to exist.
    if (!ht && (wide || stbc)) || (wide && secondary == Secondary::None) {
        return None;
    }
    Some((secondary, wide, stbc))
}

impl Layout {
    /// Looks the fields and the buffer length up in Espressif's table.
    ///
    /// A 128-byte buffer is accepted for every valid field combination as
    /// "LLTF only": the LLTF always comes first and is always 128 bytes, and
    /// ESP32-CSI-Tool's LLTF-only setting prints exactly those bytes while
    /// keeping the longer `len`.
    ///
    /// # Errors
    /// [`CsiError::UnsupportedLayout`] for any combination or length not in
    /// the table.
    pub fn new(fields: LayoutFields, len: usize) -> Result<Self, CsiError> {
        let unsupported = CsiError::UnsupportedLayout {
            sig_mode: fields.sig_mode,
            bandwidth: fields.cwb,
            secondary: fields.secondary,
            stbc: fields.stbc,
            len,
        };
        let Some((secondary, wide, stbc)) = row(fields) else {
            return Err(unsupported);
        };
        let ht = fields.sig_mode == 1;
        let lltf = match secondary {
            Secondary::None => Field::wrap(0, 64, 32, Grid::Legacy20),
            // "0~63" (below) and "-64~-1" (above) both list the primary
            // channel's 64 bins in ascending order, centre at entry 32.
            Secondary::Above | Secondary::Below => Field::linear(0, 64, -32, Grid::Legacy20),
        };
        let lltf_only = Self {
            len: LLTF_LEN as u16,
            secondary,
            lltf,
            ht_ltf: None,
            stbc_ht_ltf: None,
        };
        if len == LLTF_LEN {
            return Ok(lltf_only);
        }
        if !ht {
            return Err(unsupported);
        }
        let (expected, ht_ltf, stbc_ht_ltf) = match (secondary, wide, stbc) {
            (Secondary::None, _, false) => (256, Field::wrap(64, 64, 32, Grid::Ht20), None),
            (Secondary::None, _, true) => (
                384,
                Field::wrap(64, 64, 32, Grid::Ht20),
                Some(Field::wrap(128, 64, 32, Grid::Ht20)),
            ),
            (Secondary::Above | Secondary::Below, false, false) => {
                (256, Field::linear(64, 64, -32, Grid::Ht20), None)
            }
            // "0~62": 63 bins from the bottom of the upper half.
            (Secondary::Below, false, true) => (
                380,
                Field::linear(64, 63, -32, Grid::Ht20),
                Some(Field::linear(127, 63, -32, Grid::Ht20)),
            ),
            // "-62~-1": 62 bins ending at the top of the lower half, whose
            // centre is bin -32, so entry 0 is subcarrier -30.
            (Secondary::Above, false, true) => (
                376,
                Field::linear(64, 62, -30, Grid::Ht20),
                Some(Field::linear(126, 62, -30, Grid::Ht20)),
            ),
            (_, true, false) => (384, Field::wrap(64, 128, 64, Grid::Ht40), None),
            // "0~60, -60~-1": 121 entries.
            (_, true, true) => (
                612,
                Field::wrap(64, 121, 61, Grid::Ht40),
                Some(Field::wrap(185, 121, 61, Grid::Ht40)),
            ),
        };
        if len != expected {
            return Err(unsupported);
        }
        Ok(Self {
            len: expected as u16,
            secondary,
            lltf,
            ht_ltf: Some(ht_ltf),
            stbc_ht_ltf,
        })
    }

    /// The buffer length this layout reads, in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: every layout has at least the LLTF (clippy wants the
    /// pair with [`Layout::len`]).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The secondary channel the layout was read for.
    #[must_use]
    pub const fn secondary(&self) -> Secondary {
        self.secondary
    }

    /// Whether the buffer carries an HT-LTF.
    #[must_use]
    pub const fn has_ht_ltf(&self) -> bool {
        self.ht_ltf.is_some()
    }

    /// Whether the buffer carries an STBC-HT-LTF (read, never used).
    #[must_use]
    pub const fn has_stbc_ht_ltf(&self) -> bool {
        self.stbc_ht_ltf.is_some()
    }

    /// What buffer entry `entry` holds: the field's grid (LLTF entries say
    /// [`Grid::Legacy20`]) and the signed subcarrier index relative to the
    /// field's centre. `None` past the end. Guard and DC entries are listed
    /// too: this is the whole table, not just the kept part.
    #[must_use]
    pub fn entry_subcarrier(&self, entry: usize) -> Option<(Grid, i16)> {
        [Some(self.lltf), self.ht_ltf, self.stbc_ht_ltf]
            .into_iter()
            .flatten()
            .find_map(|field| field.subcarrier(entry).map(|sc| (field.grid, sc)))
    }

    fn field(&self, choice: FieldChoice) -> Field {
        match (choice, self.ht_ltf) {
            (FieldChoice::HtLtfWhenPresent, Some(ht)) => ht,
            _ => self.lltf,
        }
    }

    /// The grid the chosen field measures.
    #[must_use]
    pub fn grid(&self, choice: FieldChoice) -> Grid {
        self.field(choice).grid
    }

    /// The kept subcarriers of the chosen field in ascending frequency
    /// order, each with the index of its entry in the buffer (the entry's
    /// imaginary byte is `2 * entry`, its real byte `2 * entry + 1`).
    pub fn kept(&self, choice: FieldChoice) -> impl Iterator<Item = (i16, usize)> {
        let field = self.field(choice);
        // Every grid subcarrier exists in its field (checked by the tests
        // for every layout), so `filter_map` never drops one in practice.
        field
            .grid
            .subcarriers()
            .filter_map(move |sc| field.entry(sc).map(|e| (sc, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(sig_mode: u8, cwb: u8, secondary: u8, stbc: u8) -> LayoutFields {
        LayoutFields {
            sig_mode,
            cwb,
            secondary,
            stbc,
        }
    }

    #[test]
    fn grids_keep_the_documented_counts() {
        for grid in [Grid::Legacy20, Grid::Ht20, Grid::Ht40] {
            assert_eq!(grid.subcarriers().count(), grid.kept());
        }
        assert!(!Grid::Ht40.is_data(1) && Grid::Ht40.is_data(2) && !Grid::Ht40.is_data(59));
        assert!(Grid::Ht20.is_data(28) && !Grid::Legacy20.is_data(27));
    }

    #[test]
    fn wrap_order_maps_negative_subcarriers_to_the_top() {
        let l = Layout::new(fields(0, 0, 0, 0), 128).unwrap();
        let kept: Vec<_> = l.kept(FieldChoice::Lltf).collect();
        assert_eq!(kept.len(), 48);
        assert_eq!(kept[0], (-26, 38));
        assert_eq!(kept[23], (-1, 63));
        assert_eq!(kept[24], (1, 1));
        assert_eq!(kept[47], (26, 26));
    }
}
