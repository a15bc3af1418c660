//! Composition root: the config-selected backend enum and TOML config loading
#![no_std]
