//! Cross-crate end-to-end tests live in `e2e/`; this library only compiles the README's example
//! as a doctest so it stays true.

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
