//! The frontend image rebuilds bit for bit: two clean clones of the commit,
//! in folders of different names and depths, each build their static binary
//! and frontend image (`scripts/frontend-image.sh`, as set-up makes it), and
//! both give one image ID. Runs on engine 26 (buildx, the way users build
//! frontend.Dockerfile), where scripts/test.sh runs it.

use std::path::Path;
use std::process::Command;

use crate::support::{harness, repo, run};

/// Clones the repository's HEAD into `dest` (a clean checkout: what the
/// commit holds, nothing of the working tree).
fn clone_head(dest: &Path) {
    let r = run(Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(repo())
        .arg(dest));
    assert!(r.ok, "git clone: {}", r.text);
}

/// Builds a clone's frontend image as `tag`: its ID and the binary's sha256.
fn rebuild(clone: &Path, tag: &str) -> (String, String) {
    let r = run(Command::new(repo().join("scripts/frontend-image.sh"))
        .arg("--repo")
        .arg(clone)
        .args(["--tag", tag]));
    assert!(
        r.ok,
        "scripts/frontend-image.sh --repo {}: {}",
        clone.display(),
        r.text
    );
    let field = |prefix: &str| {
        r.text
            .lines()
            .find_map(|l| {
                l.split_once(prefix)
                    .map(|(_, rest)| rest.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no \"{prefix}\" in: {}", r.text))
    };
    let id = field(&format!("frontend image {tag} "));
    let binary = field("binary sha256 ");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    (id, binary.split(',').next().unwrap_or_default().to_string())
}

#[test]
#[ignore = "needs engine 26 (buildx) and two release builds; scripts/test.sh runs it there"]
fn two_clean_clones_in_different_folders_build_one_frontend_image() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("somewhere else/much/deeper/clone b");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    clone_head(&a);
    clone_head(&b);
    let (id_a, bin_a) = rebuild(&a, "repro-frontend:rebuilt-a");
    let (id_b, bin_b) = rebuild(&b, "repro-frontend:rebuilt-b");
    for tag in ["repro-frontend:rebuilt-a", "repro-frontend:rebuilt-b"] {
        let _ = harness().docker().args(["rmi", tag]).output();
    }
    assert_eq!(
        bin_a, bin_b,
        "the static binaries differ between the clones"
    );
    assert_eq!(id_a, id_b, "the frontend images differ between the clones");
}
