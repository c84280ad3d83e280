//! Completeness verifier (work in progress).
