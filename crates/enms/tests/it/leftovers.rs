//! The suite's own hygiene: `scripts/leftovers` (run last by scripts/test)
//! finds a process a test left running, and passes once it is gone.

use std::process::{Command, Stdio};

fn leftovers(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/leftovers"))
        .arg(dir)
        .output()
        .expect("run scripts/leftovers");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_leftover_check_fails_on_a_leaked_child_then_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("path");
    assert_eq!(leftovers(&dir), (true, String::new()), "nothing runs there yet");
    // A child "leaked" on purpose: a node process working in that directory.
    let mut child = Command::new("node")
        .args(["-e", "setTimeout(() => {}, 120000)"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("node (the browser tests need it too)");
    let (ok, report) = leftovers(&dir);
    assert!(!ok, "the check fails while the child runs: {report}");
    assert!(report.contains(&format!("leftover process {} (node)", child.id())), "{report}");
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(leftovers(&dir), (true, String::new()), "and passes once it is gone");
}
