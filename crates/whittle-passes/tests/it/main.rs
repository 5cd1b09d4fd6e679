//! whittle-passes' integration tests.

#![allow(clippy::unwrap_used)] // Test helpers may panic: that is how a test fails.

mod quantize;

use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
