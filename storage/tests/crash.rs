//! Crash safety: a child process commits blocks as fast as it can and is killed with SIGKILL at
//! random moments. After every kill the database must hold a prefix of complete blocks.

mod common;

use rand::Rng;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "LANES_STORAGE_CRASH_CHILD_DIR";

/// The child: commits blocks forever. Run only by the parent test below.
#[test]
#[ignore = "run as a child process by sigkill_leaves_a_complete_prefix"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = common::open_with_genesis(std::path::Path::new(&dir));
    loop {
        common::commit_next(&store);
    }
}

#[test]
fn sigkill_leaves_a_complete_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut heights = Vec::new();
    for round in 0..25 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let store = lanes_storage::Store::open(dir.path(), &common::identity())
            .unwrap_or_else(|e| panic!("reopen after kill {round}: {e}"));
        if store.head().unwrap().is_some() {
            heights.push(common::assert_complete_prefix(&store));
        }
    }
    assert!(
        heights.windows(2).all(|w| w[0] <= w[1]),
        "a committed block was lost: {heights:?}"
    );
    assert!(
        heights.last().copied().unwrap_or(0) > 25,
        "children made too little progress: {heights:?}"
    );
}
