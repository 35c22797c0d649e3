//! `./install.sh --prebuilt` puts everything under the prefix where its
//! users look: the reference page where `git help hop` finds it, and the
//! zsh and fish completions where those shells load them.

use std::path::Path;

use crate::support::{TestEnv, bin_dir};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn install_sh_installs_the_reference_page_and_shell_completions() {
    let mut env = TestEnv::new();
    let prefix = env.tmp.path().join("prefix");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    // The test binaries stand in for a release build.
    let r = env.run(
        "bash",
        ".",
        &[
            script.to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
            "--prebuilt",
            bin_dir().to_str().unwrap(),
        ],
    );
    r.ok().stdout_has("githop.7");

    let share = prefix.join("share");
    for b in ["git-hop-patch", "git-hop-release"] {
        assert!(prefix.join("bin").join(b).is_file(), "{b}");
        assert!(share.join("man/man1").join(format!("{b}.1")).is_file());
        let bash = read(&share.join("bash-completion/completions").join(b));
        assert!(bash.contains("complete -F"), "{bash}");
        let zsh = read(&share.join("zsh/site-functions").join(format!("_{b}")));
        assert!(zsh.starts_with(&format!("#compdef {b}\n")), "{zsh}");
        let fish = read(
            &share
                .join("fish/vendor_completions.d")
                .join(format!("{b}.fish")),
        );
        assert!(fish.contains(&format!("complete -c {b} ")), "{fish}");
    }
    let zsh = read(&share.join("zsh/site-functions/_git-hop-patch"));
    assert!(zsh.contains("merge"), "{zsh}");
    let fish = read(&share.join("fish/vendor_completions.d/git-hop-release.fish"));
    assert!(fish.contains("promote"), "{fish}");

    let page = share.join("man/man7/githop.7");
    assert_eq!(
        read(&page),
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("man/githop.7"))
    );

    if which::which("man").is_err() {
        eprintln!(
            "note: `man` is not installed; skipping `git help hop` (.ci/run installs man-db)"
        );
        return;
    }
    env.set(
        "PATH",
        &format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            prefix.join("bin").display()
        ),
    );
    env.set("MANPATH", share.join("man").to_str().unwrap());
    env.set("MANPAGER", "cat");
    env.set("PAGER", "cat");
    env.set("GIT_PAGER", "cat");
    env.set("TERM", "dumb");
    env.set("MANWIDTH", "80");
    env.git(".", &["help", "hop"])
        .ok()
        .stdout_has("PER-CLONE SETTINGS")
        .stdout_has("hop.database.url")
        .stdout_has("HOP_DATABASE_URL")
        .stdout_has("EXIT STATUS");
}
