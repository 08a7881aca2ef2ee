//! Records the git revision the binary is built from, for `raptor --version`.
//!
//! A plain `git` call rather than a crate (vergen and the like pull in libgit2 or gix for one
//! string); outside a git checkout (a source tarball) the revision is "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RAPTOR_GIT_REV={rev}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points to (a commit).
    let git = Path::new("../.git");
    if git.join("HEAD").exists() {
        println!("cargo:rerun-if-changed=../.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
            if let Some(r) = head.trim().strip_prefix("ref: ") {
                println!("cargo:rerun-if-changed=../.git/{r}");
            }
        }
        println!("cargo:rerun-if-changed=../.git/packed-refs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
