//! The committed man pages match the clap definitions and the reference
//! page `githop(7)` (src/reference.rs), which names every setting and
//! variable the code uses; git finds them (`git help hop-release`,
//! `git hop-patch --help`, `git help hop`) once installed under a prefix
//! whose bin is on PATH, as install.sh does.

use std::path::Path;

use clap::CommandFactory;

use crate::support::{TestEnv, bin_dir};

fn pages() -> Vec<(String, Vec<u8>)> {
    let mut all = hop::man::render_pages(hop::commands::release::Cli::command()).unwrap();
    all.extend(hop::man::render_pages(hop::commands::patch::Cli::command()).unwrap());
    all.push((
        hop::reference::FILE_NAME.to_owned(),
        hop::reference::render().into_bytes(),
    ));
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
            && names.contains(&"git-hop-patch.1")
            && names.contains(&"githop.7"),
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
        let page = name.ends_with(".1") || name.ends_with(".7");
        if page && !names.contains(&name.as_str()) {
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
    let man = prefix.join("share/man");
    std::fs::create_dir_all(man.join("man1")).unwrap();
    std::fs::create_dir_all(man.join("man7")).unwrap();
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    for (name, bytes) in pages() {
        let section = format!("man{}", name.rsplit('.').next().unwrap());
        std::fs::write(man.join(section).join(name), bytes).unwrap();
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
    // The guide `git help hop` is the reference page githop(7).
    env.git(".", &["help", "hop"])
        .ok()
        .stdout_has("PER-CLONE SETTINGS")
        .stdout_has("hop.database.url");
    // Subcommand help reaches clap, with git's spelling of the command.
    env.git(".", &["hop-release", "init", "-h"])
        .ok()
        .stdout_has("Usage: git hop-release init");
}

/// Every `"hop.<name>"` string literal of src/ (a git config key the code
/// reads or writes), and every `"HOP_…"`, `"GIT_HOP_…"` and `"HALFORM_…"`
/// variable, with the file it is in.
/// (name, file) pairs.
type Found = Vec<(String, String)>;

fn names_in_source() -> (Found, Found) {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    let (mut keys, mut vars) = (Vec::new(), Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(root).unwrap().display().to_string();
        // The string literals: every other piece between double quotes is
        // close enough for names without quotes or spaces.
        for piece in text.split('"') {
            let is_name = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_';
            if !piece.chars().all(is_name) {
                continue;
            }
            if let Some(rest) = piece.strip_prefix("hop.")
                && !rest.is_empty()
            {
                keys.push((piece.to_owned(), rel.clone()));
            }
            let var = ["HOP_", "GIT_HOP_", "HALFORM_"]
                .iter()
                .any(|p| piece.starts_with(p) && piece.len() > p.len());
            if var && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                vars.push((piece.to_owned(), rel.clone()));
            }
        }
    }
    (keys, vars)
}

/// Only in the tests of src/ (not read by git-hop itself).
const TEST_ONLY_VARS: &[&str] = &["HOP_TEST_PSQL"];

#[test]
fn reference_page_names_every_setting_and_variable_of_the_code() {
    let page = hop::reference::render();
    let (keys, vars) = names_in_source();
    for expected in ["hop.database.url", "hop.lockTimeout", "hop.templateCache"] {
        assert!(keys.iter().any(|(k, _)| k == expected), "{keys:?}");
    }
    assert!(
        vars.iter().any(|(v, _)| v == "HOP_DATABASE_URL"),
        "{vars:?}"
    );
    let documented = |name: &str| page.contains(&format!("\\fB{}\\fR", name.replace('-', "\\-")));
    let missing: Vec<String> = keys
        .iter()
        .chain(
            vars.iter()
                .filter(|(v, _)| !TEST_ONLY_VARS.contains(&v.as_str())),
        )
        .filter(|(name, _)| !documented(name))
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "not in githop(7): {missing:?}; document them in src/reference.rs, then \
         run `HOP_UPDATE_MAN=1 cargo test man_pages` and commit man/"
    );
}
