//! Project automation: cargo xtask ci | bench | header
fn main() {}
