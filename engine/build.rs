//! Records the git revision the binary is built from, for `raptor --version`.
//!
//! A plain `git` call rather than a crate (vergen and the like pull in libgit2 or gix for one
//! string); outside a git checkout (a source tarball) the revision is "unknown".

use std::process::Command;

/// `git <args>`'s output, trimmed; `None` outside a git checkout or without git.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RAPTOR_GIT_REV={rev}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points to (a
    // commit). Git names the files, so this also holds in a worktree, whose `.git` is a file
    // and whose branches live in the main checkout's directory.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
        if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
