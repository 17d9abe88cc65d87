//! Project automation, in Rust (see matklad/cargo-xtask): `cargo xtask <task>`.
fn main() {}
