//! Reference implementations the fuzz targets compare the filter against.
//!
//! Each is written from the documented rules (README, `docs/access-control.md`, Dapr's HTTP API),
//! not from `src/`: simple, obviously correct, and slow where that keeps them obvious (recursive
//! backtracking, a table for globs). They share no code with the filter. Where the two disagree,
//! either the filter or its documentation is wrong, and the fuzz target says which input shows it.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml --lib` checks the references themselves against the
//! documented examples, so a wrong reference cannot silently agree with a wrong filter.

pub mod input;
pub mod reference;
pub mod scratch;
