//! Cross-crate integration tests: conformance suite, vectors, golden files
#![no_std]
