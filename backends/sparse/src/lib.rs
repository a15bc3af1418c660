//! Fast subquadratic sparse attention over the SPEC §3 pattern
#![no_std]
