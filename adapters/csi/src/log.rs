//! One line of a serial CSI log → a borrowed record.
//!
//! People with ESP32 boards have logs, not packets: the esp-csi `csi_recv`
//! example prints a header line and then `CSI_DATA,…,len,first_word,"[i,q,…]"`
//! lines; ESP32-CSI-Tool prints `CSI_DATA,<role>,<mac>,…,len,[i q … ]`.
//! Both are mixed with boot and driver messages, and serial lines get cut or
//! garbled. This parser reads one line with no allocation (the I/Q values go
//! into the caller's buffer), tells CSI from noise, and refuses a broken CSI
//! line with an error naming the column; it never panics on any bytes.
//!
//! Column positions come from the last header line of the same format, or
//! from the formats' published defaults ([`ColumnMap::ESP_CSI`],
//! [`ColumnMap::CSI_TOOL`]). The format of a `CSI_DATA` line is told by its
//! data field: esp-csi quotes a comma-separated list (`"[1,-2]"`),
//! ESP32-CSI-Tool writes a bare space-separated one (`[1 -2 ]`).

use core::fmt;

use crate::extract::CsiPacket;
use crate::layout::LLTF_LEN;

/// The header line esp-csi's `csi_recv` prints before its first packet.
pub const ESP_CSI_HEADER: &str = "type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,\
stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,\
first_word,data";

/// The header line ESP32-CSI-Tool prints at start-up.
pub const CSI_TOOL_HEADER: &str = "type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,\
stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,\
real_time_set,real_timestamp,len,CSI_DATA";

/// The most columns a header may name (positions are kept as `u8`).
const MAX_COLUMNS: usize = 64;

/// Which tool wrote a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Espressif's esp-csi `csi_recv` example.
    EspCsi,
    /// ESP32-CSI-Tool (`_components/csi_component.h`).
    CsiTool,
}

/// Where each needed column is in a `CSI_DATA` line. The data list is always
/// the last column, so its position is also the number of columns before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    format: LogFormat,
    data: u8,
    sig_mode: u8,
    cwb: u8,
    secondary: u8,
    stbc: u8,
    timestamp: u8,
    len: u8,
    seq: Option<u8>,
    mac: Option<u8>,
    rssi: Option<u8>,
    noise_floor: Option<u8>,
    channel: Option<u8>,
    first_word: Option<u8>,
}

impl ColumnMap {
    /// The columns of [`ESP_CSI_HEADER`], for logs whose header scrolled away.
    pub const ESP_CSI: Self = Self {
        format: LogFormat::EspCsi,
        data: 24,
        sig_mode: 5,
        cwb: 7,
        secondary: 17,
        stbc: 11,
        timestamp: 18,
        len: 22,
        seq: Some(1),
        mac: Some(2),
        rssi: Some(3),
        noise_floor: Some(14),
        channel: Some(16),
        first_word: Some(23),
    };

    /// The columns of [`CSI_TOOL_HEADER`].
    pub const CSI_TOOL: Self = Self {
        format: LogFormat::CsiTool,
        data: 25,
        sig_mode: 5,
        cwb: 7,
        secondary: 17,
        stbc: 11,
        timestamp: 18,
        len: 24,
        seq: None,
        mac: Some(2),
        rssi: Some(3),
        noise_floor: Some(14),
        channel: Some(16),
        first_word: None,
    };

    /// The format this map reads.
    #[must_use]
    pub const fn format(&self) -> LogFormat {
        self.format
    }

    /// Reads a header line (`type,…,data` or `type,…,CSI_DATA`). Returns
    /// `Ok(None)` when the line is not a header.
    ///
    /// # Errors
    /// [`LogError::HeaderMissingColumn`] when a column the layout needs is
    /// absent, [`LogError::HeaderTooLong`] past 64 columns.
    pub fn from_header(line: &[u8]) -> Result<Option<Self>, LogError> {
        let line = trim(line);
        if !line.starts_with(b"type,") {
            return Ok(None);
        }
        let count = line.split(|&b| b == b',').count();
        if count > MAX_COLUMNS {
            return Err(LogError::HeaderTooLong);
        }
        let last = line
            .split(|&b| b == b',')
            .next_back()
            .map(trim)
            .unwrap_or_default();
        let format = match last {
            b"data" => LogFormat::EspCsi,
            b"CSI_DATA" => LogFormat::CsiTool,
            _ => return Ok(None),
        };
        let find = |names: &[&[u8]]| -> Option<u8> {
            line.split(|&b| b == b',')
                .position(|name| names.contains(&trim(name)))
                .and_then(|p| u8::try_from(p).ok())
        };
        let need = |names: &[&[u8]], column: &'static str| {
            find(names).ok_or(LogError::HeaderMissingColumn { column })
        };
        let data = u8::try_from(count - 1).map_err(|_| LogError::HeaderTooLong)?;
        Ok(Some(Self {
            format,
            data,
            sig_mode: need(&[b"sig_mode"], "sig_mode")?,
            cwb: need(&[b"bandwidth", b"cwb"], "bandwidth")?,
            secondary: need(&[b"secondary_channel"], "secondary_channel")?,
            stbc: need(&[b"stbc"], "stbc")?,
            timestamp: need(&[b"local_timestamp", b"timestamp"], "local_timestamp")?,
            len: need(&[b"len"], "len")?,
            seq: find(&[b"id", b"seq"]),
            mac: find(&[b"mac"]),
            rssi: find(&[b"rssi"]),
            noise_floor: find(&[b"noise_floor"]),
            channel: find(&[b"channel"]),
            first_word: find(&[b"first_word", b"first_word_invalid"]),
        }))
    }
}

/// What is wrong with one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    /// Not an integer (or, for `mac`, not six hex bytes).
    NotANumber,
    /// An integer outside the column's range.
    OutOfRange,
}

/// Why a `CSI_DATA` line (or a header) was refused. The caller adds the line
/// number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogError {
    /// The line has no data list (`[` … `]`).
    MissingData,
    /// The number of columns before the data list is not the map's.
    ColumnCount {
        /// Columns the map expects before the data list.
        expected: u8,
        /// Columns found.
        found: usize,
    },
    /// A header column's value is unreadable.
    Field {
        /// The column's header name.
        column: &'static str,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// Value number `index` (from 0) of the data list is unreadable.
    Data {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// The data list does not end with `]` (`]"` for esp-csi): a cut line.
    DataUnterminated,
    /// Bytes other than white space follow the data list.
    TrailingBytes,
    /// The list has more values than the caller's buffer holds.
    TooManyValues {
        /// The buffer's length.
        capacity: usize,
    },
    /// The number of values is neither `len` nor an LLTF-only 128.
    LengthMismatch {
        /// The `len` column.
        declared: u16,
        /// Values in the list.
        found: usize,
    },
    /// A header lacks a column the layout needs.
    HeaderMissingColumn {
        /// The missing column's name.
        column: &'static str,
    },
    /// A header with more than 64 columns.
    HeaderTooLong,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MissingData => f.write_str("CSI line has no [ ] data list"),
            Self::ColumnCount { expected, found } => {
                write!(
                    f,
                    "{found} columns before the data list, expected {expected}"
                )
            }
            Self::Field { column, problem } => write!(f, "column {column}: {problem:?}"),
            Self::Data { index, problem } => write!(f, "data value {index}: {problem:?}"),
            Self::DataUnterminated => f.write_str("data list is not terminated (line cut?)"),
            Self::TrailingBytes => f.write_str("bytes after the data list"),
            Self::TooManyValues { capacity } => write!(f, "more than {capacity} data values"),
            Self::LengthMismatch { declared, found } => {
                write!(f, "len column says {declared}, list has {found}")
            }
            Self::HeaderMissingColumn { column } => write!(f, "header lacks column {column}"),
            Self::HeaderTooLong => write!(f, "header has more than {MAX_COLUMNS} columns"),
        }
    }
}

impl core::error::Error for LogError {}

/// One `CSI_DATA` line, its I/Q values in the caller's buffer. Columns the
/// line's format (or header) does not have are `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsiRecord<'b> {
    /// The tool that wrote the line.
    pub format: LogFormat,
    /// esp-csi's `id` (a packet counter).
    pub seq: Option<u32>,
    /// The transmitter's MAC address.
    pub mac: Option<[u8; 6]>,
    /// RSSI, dBm.
    pub rssi: Option<i8>,
    /// Noise floor, dBm.
    pub noise_floor: Option<i8>,
    /// Primary channel number.
    pub channel: Option<u8>,
    /// `sig_mode`.
    pub sig_mode: u8,
    /// `cwb` (the `bandwidth` column).
    pub cwb: u8,
    /// `secondary_channel`.
    pub secondary: u8,
    /// `stbc`.
    pub stbc: u8,
    /// `local_timestamp`, µs. esp-csi prints it with `%d`, so values past
    /// 2³¹ appear negative; they are read back modulo 2³².
    pub timestamp_us: u32,
    /// The `len` column (bytes the driver delivered).
    pub declared_len: u16,
    /// esp-csi's `first_word` column.
    pub first_word_invalid: Option<bool>,
    /// The I/Q bytes, (imaginary, real) pairs.
    pub data: &'b [i8],
}

impl<'b> CsiRecord<'b> {
    /// The packet the extractor reads.
    #[must_use]
    pub const fn packet(&self) -> CsiPacket<'b> {
        CsiPacket {
            buf: self.data,
            sig_mode: self.sig_mode,
            cwb: self.cwb,
            secondary: self.secondary,
            stbc: self.stbc,
            timestamp_us: self.timestamp_us,
        }
    }

    /// Writes the record as one line of `format` (no newline). Columns the
    /// record lacks are written as the firmware's typical values (0, or a
    /// zero MAC). The parser reads the line back to the same record, up to
    /// the columns `format` does not carry.
    ///
    /// # Errors
    /// Only the writer's.
    pub fn write_line<W: fmt::Write>(&self, format: LogFormat, w: &mut W) -> fmt::Result {
        let mac = self.mac.unwrap_or_default();
        w.write_str("CSI_DATA,")?;
        match format {
            LogFormat::EspCsi => write!(w, "{},", self.seq.unwrap_or(0))?,
            LogFormat::CsiTool => w.write_str("STA,")?,
        }
        write!(
            w,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x},",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        )?;
        // rssi, rate, sig_mode, mcs, bandwidth, smoothing, not_sounding,
        // aggregation, stbc, fec_coding, sgi, noise_floor, ampdu_cnt,
        // channel, secondary_channel.
        write!(
            w,
            "{},11,{},0,{},0,1,0,{},0,0,{},0,{},{},",
            self.rssi.unwrap_or(0),
            self.sig_mode,
            self.cwb,
            self.stbc,
            self.noise_floor.unwrap_or(0),
            self.channel.unwrap_or(0),
            self.secondary
        )?;
        match format {
            // `%d` of the unsigned bit field, as csi_recv prints it.
            LogFormat::EspCsi => write!(w, "{},", self.timestamp_us as i32)?,
            LogFormat::CsiTool => write!(w, "{},", self.timestamp_us)?,
        }
        // ant, sig_len, rx_state.
        w.write_str("0,0,0,")?;
        match format {
            LogFormat::EspCsi => {
                write!(
                    w,
                    "{},{},\"[",
                    self.declared_len,
                    u8::from(self.first_word_invalid.unwrap_or(false))
                )?;
                for (k, v) in self.data.iter().enumerate() {
                    if k > 0 {
                        w.write_char(',')?;
                    }
                    write!(w, "{v}")?;
                }
                w.write_str("]\"")
            }
            LogFormat::CsiTool => {
                // real_time_set, real_timestamp (seconds, from the clock).
                let t = self.timestamp_us;
                write!(
                    w,
                    "0,{}.{:06},{},[",
                    t / 1_000_000,
                    t % 1_000_000,
                    self.declared_len
                )?;
                for v in self.data {
                    write!(w, "{v} ")?;
                }
                w.write_char(']')
            }
        }
    }
}

/// What one line was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'b> {
    /// A CSI packet.
    Csi(CsiRecord<'b>),
    /// A header line; later lines of its format use its columns.
    Header(LogFormat),
    /// Anything else (boot log, driver messages, blank lines).
    NotCsi,
}

/// A line parser that remembers the last header of each format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogParser {
    esp_csi: ColumnMap,
    csi_tool: ColumnMap,
}

impl Default for LogParser {
    fn default() -> Self {
        Self::new()
    }
}

impl LogParser {
    /// A parser using the default columns of both formats.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            esp_csi: ColumnMap::ESP_CSI,
            csi_tool: ColumnMap::CSI_TOOL,
        }
    }

    /// The columns currently used for `format`.
    #[must_use]
    pub const fn columns(&self, format: LogFormat) -> &ColumnMap {
        match format {
            LogFormat::EspCsi => &self.esp_csi,
            LogFormat::CsiTool => &self.csi_tool,
        }
    }

    /// Reads one line (with or without its line ending). I/Q values are
    /// written to `buf`, which the returned record borrows; size it with
    /// [`crate::MAX_CSI_LEN`]. A `CSI_DATA,` marker anywhere in the line
    /// makes it a CSI line (serial tools sometimes prefix a time stamp).
    ///
    /// # Errors
    /// A [`LogError`] naming the column or data value that is wrong.
    pub fn parse_line<'b>(
        &mut self,
        line: &[u8],
        buf: &'b mut [i8],
    ) -> Result<Parsed<'b>, LogError> {
        let Some(at) = find(line, b"CSI_DATA,") else {
            return Ok(match ColumnMap::from_header(line)? {
                Some(map) => {
                    match map.format {
                        LogFormat::EspCsi => self.esp_csi = map,
                        LogFormat::CsiTool => self.csi_tool = map,
                    }
                    Parsed::Header(map.format)
                }
                None => Parsed::NotCsi,
            });
        };
        let line = trim(line.get(at..).unwrap_or_default());
        let open = line
            .iter()
            .position(|&b| b == b'[')
            .ok_or(LogError::MissingData)?;
        let quoted = open > 0 && line.get(open - 1) == Some(&b'"');
        let (map, data_start) = if quoted {
            (self.esp_csi, open - 1)
        } else {
            (self.csi_tool, open)
        };
        let prefix = line.get(..data_start).unwrap_or_default();
        // The prefix is "c0,c1,…,cN," — N+1 columns, each ended by a comma.
        let Some(prefix) = prefix.strip_suffix(b",") else {
            return Err(LogError::ColumnCount {
                expected: map.data,
                found: count_columns(prefix),
            });
        };
        let found = prefix.split(|&b| b == b',').count();
        if found != usize::from(map.data) {
            return Err(LogError::ColumnCount {
                expected: map.data,
                found,
            });
        }
        let mut record = Fields::default();
        for (k, column) in prefix.split(|&b| b == b',').enumerate() {
            record.read(&map, k, trim(column))?;
        }
        let data = line.get(open + 1..).unwrap_or_default();
        let count = if quoted {
            read_list(data, b',', b"]\"", buf)?
        } else {
            read_list(data, b' ', b"]", buf)?
        };
        let declared = record.len;
        let found = count;
        if found != usize::from(declared)
            && !(found == LLTF_LEN && usize::from(declared) > LLTF_LEN)
        {
            return Err(LogError::LengthMismatch { declared, found });
        }
        let data: &'b [i8] = buf.get(..count).unwrap_or_default();
        Ok(Parsed::Csi(CsiRecord {
            format: map.format,
            seq: record.seq,
            mac: record.mac,
            rssi: record.rssi,
            noise_floor: record.noise_floor,
            channel: record.channel,
            sig_mode: record.sig_mode,
            cwb: record.cwb,
            secondary: record.secondary,
            stbc: record.stbc,
            timestamp_us: record.timestamp_us,
            declared_len: record.len,
            first_word_invalid: record.first_word,
            data,
        }))
    }
}

/// The columns of one line as they are read.
#[derive(Default)]
struct Fields {
    seq: Option<u32>,
    mac: Option<[u8; 6]>,
    rssi: Option<i8>,
    noise_floor: Option<i8>,
    channel: Option<u8>,
    sig_mode: u8,
    cwb: u8,
    secondary: u8,
    stbc: u8,
    timestamp_us: u32,
    len: u16,
    first_word: Option<bool>,
}

impl Fields {
    fn read(&mut self, map: &ColumnMap, k: usize, text: &[u8]) -> Result<(), LogError> {
        let is = |position: u8| usize::from(position) == k;
        let opt = |position: Option<u8>| position.is_some_and(|p| usize::from(p) == k);
        if is(map.sig_mode) {
            self.sig_mode = int_in(text, 0, 255, "sig_mode")? as u8;
        } else if is(map.cwb) {
            self.cwb = int_in(text, 0, 255, "bandwidth")? as u8;
        } else if is(map.secondary) {
            self.secondary = int_in(text, 0, 255, "secondary_channel")? as u8;
        } else if is(map.stbc) {
            self.stbc = int_in(text, 0, 255, "stbc")? as u8;
        } else if is(map.timestamp) {
            // A negative value is csi_recv's `%d` of a value past 2³¹.
            self.timestamp_us = int_in(
                text,
                i64::from(i32::MIN),
                i64::from(u32::MAX),
                "local_timestamp",
            )? as u32;
        } else if is(map.len) {
            self.len = int_in(text, 0, i64::from(u16::MAX), "len")? as u16;
        } else if opt(map.seq) {
            self.seq = Some(int_in(text, i64::from(i32::MIN), i64::from(u32::MAX), "id")? as u32);
        } else if opt(map.mac) {
            self.mac = Some(mac(text).ok_or(LogError::Field {
                column: "mac",
                problem: FieldProblem::NotANumber,
            })?);
        } else if opt(map.rssi) {
            self.rssi = Some(int_in(text, -128, 127, "rssi")? as i8);
        } else if opt(map.noise_floor) {
            self.noise_floor = Some(int_in(text, -128, 127, "noise_floor")? as i8);
        } else if opt(map.channel) {
            self.channel = Some(int_in(text, 0, 255, "channel")? as u8);
        } else if opt(map.first_word) {
            self.first_word = Some(int_in(text, 0, 1, "first_word")? == 1);
        }
        Ok(())
    }
}

/// Reads `sep`-separated integers up to `end` into `buf`; returns the count.
/// esp-csi prints `int8_t`; old ESP32-CSI-Tool versions printed the same
/// bytes as `uint8_t`, so that format also takes 128..=255 (read modulo 256).
fn read_list(data: &[u8], sep: u8, end: &[u8], buf: &mut [i8]) -> Result<usize, LogError> {
    let close = data
        .iter()
        .position(|&b| b == b']')
        .ok_or(LogError::DataUnterminated)?;
    let rest = data.get(close..).unwrap_or_default();
    let Some(after) = rest.strip_prefix(end) else {
        return Err(LogError::DataUnterminated);
    };
    if !trim(after).is_empty() {
        return Err(LogError::TrailingBytes);
    }
    let max = if sep == b' ' { 255 } else { 127 };
    let body = data.get(..close).unwrap_or_default();
    let mut count = 0;
    let items = body.split(|&b| b == sep).map(trim);
    // A trailing separator (ESP32-CSI-Tool's "1 2 ]") leaves one empty item
    // at the end; an empty item anywhere else is an error.
    let total = body.split(|&b| b == sep).count();
    for (index, item) in items.enumerate() {
        if item.is_empty() && (index + 1 == total || sep == b' ') {
            continue;
        }
        let value = parse_int(item)
            .ok_or(LogError::Data {
                index: count,
                problem: FieldProblem::NotANumber,
            })
            .and_then(|v| {
                if (-128..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(LogError::Data {
                        index: count,
                        problem: FieldProblem::OutOfRange,
                    })
                }
            })?;
        let capacity = buf.len();
        let slot = buf
            .get_mut(count)
            .ok_or(LogError::TooManyValues { capacity })?;
        *slot = value as u8 as i8;
        count += 1;
    }
    Ok(count)
}

/// An integer in `min..=max`, or the error for `column`.
fn int_in(text: &[u8], min: i64, max: i64, column: &'static str) -> Result<i64, LogError> {
    let v = parse_int(text).ok_or(LogError::Field {
        column,
        problem: FieldProblem::NotANumber,
    })?;
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(LogError::Field {
            column,
            problem: FieldProblem::OutOfRange,
        })
    }
}

/// A decimal integer with an optional sign and at most 12 digits (so it can
/// never overflow `i64`).
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
}

/// `aa:bb:cc:dd:ee:ff` (either case).
fn mac(text: &[u8]) -> Option<[u8; 6]> {
    let mut out = [0_u8; 6];
    let mut parts = text.split(|&b| b == b':');
    for byte in &mut out {
        let part = parts.next()?;
        let [hi, lo] = part else {
            return None;
        };
        *byte = hex(*hi)? << 4 | hex(*lo)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

const fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn count_columns(prefix: &[u8]) -> usize {
    prefix.split(|&b| b == b',').count()
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_never_overflow() {
        assert_eq!(parse_int(b"-2147483648"), Some(-2_147_483_648));
        assert_eq!(parse_int(b"9999999999999"), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1a"), None);
    }

    #[test]
    fn macs_read_in_either_case() {
        assert_eq!(
            mac(b"94:d9:B3:80:8c:81"),
            Some([0x94, 0xd9, 0xb3, 0x80, 0x8c, 0x81])
        );
        assert_eq!(mac(b"94:d9:b3:80:8c"), None);
        assert_eq!(mac(b"94:d9:b3:80:8c:81:00"), None);
    }
}
