//! The committed man pages match the clap definitions, and git finds them
//! (`git help hop-release`, `git hop-patch --help`) once installed under a
//! prefix whose bin is on PATH, as install.sh does.

use std::path::Path;

use clap::CommandFactory;

use crate::support::{TestEnv, bin_dir};

fn pages() -> Vec<(String, Vec<u8>)> {
    let mut all = hop::man::render_pages(hop::commands::release::Cli::command()).unwrap();
    all.extend(hop::man::render_pages(hop::commands::patch::Cli::command()).unwrap());
    all.sort();
    all
}

#[test]
fn man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("HOP_UPDATE_MAN").is_some();
    let pages = pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"git-hop-release.1")
            && names.contains(&"git-hop-release-init.1")
            && names.contains(&"git-hop-patch.1"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("completions") || n.contains("-hook.")),
        "hidden commands have no page: {names:?}"
    );
    let mut stale = Vec::new();
    for (name, bytes) in &pages {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, bytes).unwrap();
            } else {
                stale.push(name.clone());
            }
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") && !names.contains(&name.as_str()) {
            if update {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                stale.push(format!("{name} (no such command)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run `HOP_UPDATE_MAN=1 cargo test man_pages` and commit man/"
    );
}

#[test]
fn git_help_and_dash_dash_help_open_the_installed_pages() {
    assert!(
        which::which("man").is_ok(),
        "`man` is missing: apt-get install man-db (.ci/run does)"
    );
    let mut env = TestEnv::new();
    let prefix = env.tmp.path().join("prefix");
    let man1 = prefix.join("share/man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    for (name, bytes) in pages() {
        std::fs::write(man1.join(name), bytes).unwrap();
    }
    for b in ["git-hop-patch", "git-hop-release"] {
        std::fs::copy(bin_dir().join(b), prefix.join("bin").join(b)).unwrap();
    }
    // Only the prefix's bin (plus the system's), as after ./install.sh.
    env.set(
        "PATH",
        &format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            prefix.join("bin").display()
        ),
    );
    env.set("MANPAGER", "cat");
    env.set("PAGER", "cat");
    env.set("MANWIDTH", "80");
    let r = env.git(".", &["help", "hop-release"]);
    r.ok().stdout_has("git-hop-release").stdout_has("init");
    let r = env.git(".", &["hop-patch", "--help"]);
    r.ok().stdout_has("git-hop-patch");
    // Subcommand help reaches clap, with git's spelling of the command.
    env.git(".", &["hop-release", "init", "-h"])
        .ok()
        .stdout_has("Usage: git hop-release init");
}
