//! The `podshim` command line.
fn main() {}
