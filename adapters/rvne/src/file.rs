//! Reading and writing `.rvne` files (feature `std`).
//!
//! Kept apart from the format so the `no_std` build never sees `std::fs`.
//! Reading refuses a file larger than any blob can be before reading it, so
//! a wrong path (a disk image, a log) cannot make the host allocate
//! gigabytes; whatever is read is then validated in full before an
//! [`RvneBlob`] exists.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use crate::blob::RvneBlob;
use crate::error::RvneError;
use crate::format::MAX_BLOB_LEN;

/// Why a `.rvne` file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is longer than the largest possible blob (28 + `u32::MAX`
    /// bytes), so it was not read.
    #[error("{} is {len} bytes, more than any .rvne blob can be", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The file was read but is not a valid blob.
    #[error("{} is not a valid .rvne blob: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The first check that failed.
        source: RvneError,
    },
}

impl FileError {
    /// The format error, when the file was read but refused by the parser.
    #[must_use]
    pub const fn format_error(&self) -> Option<RvneError> {
        match self {
            Self::Format { source, .. } => Some(*source),
            _ => None,
        }
    }
}

impl RvneBlob {
    /// Reads and validates a `.rvne` file.
    ///
    /// # Errors
    ///
    /// [`FileError::Read`] when the file cannot be opened or read,
    /// [`FileError::TooLarge`] when it is longer than any blob can be, and
    /// [`FileError::Format`] with the parser's error when the bytes are not
    /// a valid blob.
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        let read_error = |source| FileError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        if len > MAX_BLOB_LEN {
            return Err(FileError::TooLarge {
                path: path.to_path_buf(),
                len,
            });
        }
        // `take` bounds the read even if the file grows after the check.
        let mut bytes = Vec::new();
        file.take(MAX_BLOB_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        Self::from_bytes(bytes).map_err(|source| FileError::Format {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the blob to `path`, replacing any existing file. A write cut
    /// short leaves a file that fails the length or CRC check on reading,
    /// never one that parses to different weights.
    ///
    /// # Errors
    ///
    /// [`FileError::Write`] when the file cannot be created or written.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), FileError> {
        let path = path.as_ref();
        std::fs::write(path, self.as_bytes()).map_err(|source| FileError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}
