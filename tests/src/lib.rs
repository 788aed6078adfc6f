//! lanes-tests: end-to-end tests that start real `lanes` processes (see `tests/tests/`).
//!
//! This library holds the harness those tests share.

use std::path::PathBuf;

/// Path of the `lanes` binary built alongside the tests (same profile directory as the test
/// executable).
pub fn lanes_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable has a path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("lanes")
}
