//! The .rvne weight format: zero-copy view, owned blob, file I/O
#![no_std]
