//! Man pages and shell completions generated from the clap definitions.
//!
//! `git hop-patch --help` is turned by git into `man git-hop-patch`, so the
//! binaries must ship man pages (one per visible subcommand, so that
//! `man git-hop-patch-merge` works too). They are rendered with clap_mangen,
//! without a date, so committed pages can be compared with fresh ones.
//!
//! Bash completion comes from clap_complete, with two fixes: clap_complete's
//! bash output is broken for binary names containing `-` (clap-rs/clap#6421),
//! so the script is generated under a name without hyphens and the final
//! `complete` line is pointed back at the real binary; and git's own
//! completion calls `_git_hop_patch` with no arguments and `git hop-patch …`
//! in its word list, so a small shim translates that call. Hidden
//! subcommands and options are left out of the completions too.
//!
//! Pass a fresh `Command` (e.g. `Cli::command().name("git-hop-patch")`), not
//! one already built with another bin name: clap keeps built names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Command;

use crate::error::{Error, Result};

/// Writes the man pages of `cmd` (already named e.g. "git-hop-release") into
/// `dir`: `git-hop-release.1` and one page per visible subcommand, nested ones
/// included (`git-hop-release-init.1`, …; hidden subcommands are skipped).
/// Creates `dir` if needed. Returns the files written, sorted.
pub fn write_pages(cmd: Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let pages = render_pages(cmd)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::io("cannot create the man page folder", dir, e)
            .hint("check that the folder is writable, or choose another one")
    })?;
    let mut written = Vec::with_capacity(pages.len());
    for (name, bytes) in pages {
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).map_err(|e| {
            Error::io("cannot write the man page", &path, e)
                .hint("check that the folder is writable, or choose another one")
        })?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// Renders the same pages as [`write_pages`] in memory: (file name, bytes),
/// sorted by name. Deterministic: no date, nothing from the environment.
pub fn render_pages(cmd: Command) -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = with_git_bin_name(cmd).disable_help_subcommand(true);
    cmd.build();
    // Every page names the program and version it documents in its footer
    // (clap_mangen would give a subcommand page only the subcommand's name).
    let source = match cmd.get_version() {
        Some(v) => format!("{} {v}", cmd.get_name()),
        None => cmd.get_name().to_owned(),
    };
    let mut pages = Vec::new();
    render_tree(cmd, &source, &mut pages)?;
    pages.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pages)
}

/// One page for `cmd`, then one for each visible subcommand, recursively
/// (what `clap_mangen::generate_to` does, but into memory).
fn render_tree(cmd: Command, source: &str, pages: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_tree(sub.clone(), source, pages)?;
    }
    let man = clap_mangen::Man::new(cmd).source(source);
    let name = man.get_filename();
    let mut bytes = Vec::new();
    man.render(&mut bytes).map_err(|e| {
        Error::new(format!("cannot render the man page {name}: {e}"))
            .hint("this is a bug in git-hop; please report it")
    })?;
    pages.push((name, bytes));
    Ok(())
}

/// `git-hop-patch` is run as `git hop-patch`: show that in the synopsis
/// (`git hop-patch merge [OPTIONS]`) unless the caller chose a bin name.
/// Only the synopsis changes; file names and titles come from the name.
fn with_git_bin_name(cmd: Command) -> Command {
    if cmd.get_bin_name().is_some() {
        return cmd;
    }
    match cmd.get_name().strip_prefix("git-") {
        Some(sub) if !sub.is_empty() => {
            let bin = format!("git {sub}");
            cmd.bin_name(bin)
        }
        _ => cmd,
    }
}

/// A bash completion script for `git <sub>` (e.g. `sub` = "hop-patch", binary
/// `git-hop-patch`). It completes both `git hop-patch …` (through the
/// `_git_hop_patch` function that git's completion looks for) and
/// `git-hop-patch …` typed directly. Install it as
/// `share/bash-completion/completions/git-<sub>`, where git's completion loads
/// it on demand. Deterministic.
pub fn bash_completion(cmd: Command, sub: &str) -> String {
    let binary = format!("git-{sub}");
    let ident = sub.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    // clap_complete names its function `_<name>`; this name has no hyphen
    // (the clap bug) and is not `git_<ident>` (git calls `_git_<ident>`
    // with no arguments, which the clap function cannot handle).
    let clap_name = format!("clap_git_{ident}");
    let clap_fn = format!("_{clap_name}");
    let git_fn = format!("_git_{ident}");

    let mut cmd = cmd;
    let mut buf = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut cmd,
        clap_name.clone(),
        &mut buf,
    );
    let generated = String::from_utf8_lossy(&buf);
    let mut hidden = HashMap::new();
    hidden_words(&cmd, clap_name.clone(), &mut hidden);
    let generated = drop_hidden(&generated, &hidden);

    let mut out = format!(
        "# bash completion for `git {sub}` and `{binary}`.\n\
         # Generated by `{binary} completions bash`; do not edit.\n\n"
    );
    // Point `complete -F _clap_git_… clap_git_…` at the real binary.
    let old_tail = format!(" {clap_name}");
    for line in generated.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("complete -F ") && line.ends_with(&old_tail) {
            out.push_str(&line[..line.len() - old_tail.len()]);
            out.push(' ');
            out.push_str(&binary);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(&format!(
        r#"
# git's completion (`git {sub} <TAB>`) calls {git_fn} with no arguments;
# its words are in `words`/`cword` and the subcommand is at `__git_cmd_idx`.
# Hand the clap function what it expects when `{binary}` is typed directly.
{git_fn}() {{
    local _hop_i=${{__git_cmd_idx:-1}} _hop_c
    local -a _hop_w
    if [[ -n ${{cword-}} ]]; then
        _hop_w=("${{words[@]}}"); _hop_c=$cword
    else
        _hop_w=("${{COMP_WORDS[@]}}"); _hop_c=$COMP_CWORD
    fi
    local -a COMP_WORDS=("{binary}" "${{_hop_w[@]:_hop_i+1}}")
    local COMP_CWORD=$((_hop_c - _hop_i))
    # git completes with `-o nospace`; the clap function expects bash's default.
    compopt +o nospace 2>/dev/null || true
    {clap_fn} "{binary}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
}}
"#
    ));
    out
}

/// clap_complete's separator between command names in its case labels.
const CLAP_SEP: &str = "__subcmd__";

/// For each case label of clap_complete's bash script, the words it offers
/// that belong to hidden subcommands or hidden options (clap_complete lists
/// them all; a hidden `completions` subcommand should not show up on TAB).
fn hidden_words(cmd: &Command, label: String, out: &mut HashMap<String, Vec<String>>) {
    let mut words = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            words.push(sub.get_name().to_owned());
            words.extend(sub.get_visible_aliases().map(str::to_owned));
        }
        let sub_label = format!("{label}{CLAP_SEP}{}", sub.get_name().replace('-', CLAP_SEP));
        hidden_words(sub, sub_label, out);
    }
    for arg in cmd
        .get_arguments()
        .filter(|a| a.is_hide_set() && !a.is_positional())
    {
        if let Some(long) = arg.get_long() {
            words.push(format!("--{long}"));
        }
        for alias in arg.get_visible_aliases().unwrap_or_default() {
            words.push(format!("--{alias}"));
        }
        if let Some(short) = arg.get_short() {
            words.push(format!("-{short}"));
        }
        for alias in arg.get_visible_short_aliases().unwrap_or_default() {
            words.push(format!("-{alias}"));
        }
    }
    if !words.is_empty() {
        out.insert(label, words);
    }
}

/// Removes the hidden words from the `opts="…"` line that follows each
/// `<label>)` case label of clap_complete's bash script.
fn drop_hidden(script: &str, hidden: &HashMap<String, Vec<String>>) -> String {
    let mut out = String::with_capacity(script.len());
    let mut current: Option<&Vec<String>> = None;
    for line in script.lines() {
        let trimmed = line.trim_start();
        if let Some(label) = trimmed.strip_suffix(')') {
            current = hidden.get(label);
        }
        match (
            current,
            trimmed
                .strip_prefix("opts=\"")
                .and_then(|r| r.strip_suffix('"')),
        ) {
            (Some(words), Some(opts)) => {
                let indent = &line[..line.len() - trimmed.len()];
                let kept: Vec<&str> = opts
                    .split(' ')
                    .filter(|w| !words.iter().any(|h| h == w))
                    .collect();
                out.push_str(&format!("{indent}opts=\"{}\"", kept.join(" ")));
                current = None;
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};
    use std::process::Command as Process;

    /// A small CLI shaped like ours: options, nested and hidden subcommands.
    fn sample() -> Command {
        Command::new("git-hop-patch")
            .version("1.2.3")
            .about("Work on one patch")
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .short('v')
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("trace")
                    .long("trace")
                    .short('T')
                    .hide(true)
                    .action(ArgAction::SetTrue),
            )
            .subcommand(
                Command::new("merge")
                    .about("Merge the patch")
                    .arg(Arg::new("force").long("force").action(ArgAction::SetTrue))
                    .arg(Arg::new("message").long("message").value_name("TEXT")),
            )
            .subcommand(
                Command::new("apply-all").about("Apply every patch").arg(
                    Arg::new("dry-run")
                        .long("dry-run")
                        .action(ArgAction::SetTrue),
                ),
            )
            .subcommand(
                Command::new("hooks")
                    .about("Manage hooks")
                    .subcommand(Command::new("install").about("Install the hooks"))
                    .subcommand(Command::new("secret").hide(true)),
            )
            .subcommand(
                Command::new("completions")
                    .hide(true)
                    .arg(Arg::new("shell")),
            )
    }

    fn names(pages: &[(String, Vec<u8>)]) -> Vec<&str> {
        pages.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn one_page_per_visible_command_sorted() {
        let pages = render_pages(sample()).unwrap();
        assert_eq!(
            names(&pages),
            [
                "git-hop-patch-apply-all.1",
                "git-hop-patch-hooks-install.1",
                "git-hop-patch-hooks.1",
                "git-hop-patch-merge.1",
                "git-hop-patch.1",
            ]
        );
    }

    #[test]
    fn pages_have_git_synopsis_and_options() {
        let pages = render_pages(sample()).unwrap();
        let merge = pages
            .iter()
            .find(|(n, _)| n == "git-hop-patch-merge.1")
            .unwrap();
        let text = String::from_utf8(merge.1.clone()).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{text}");
        assert!(
            text.contains(".TH git-hop-patch-merge 1  \"git-hop-patch 1.2.3\""),
            "{text}"
        );
        assert!(text.contains("git hop\\-patch merge"), "{text}");
        assert!(text.contains("\\-\\-force"), "{text}");
        assert!(!text.contains("completions"), "{text}");
    }

    #[test]
    fn explicit_bin_name_is_kept() {
        let pages = render_pages(sample().bin_name("git-hop-patch")).unwrap();
        let text = String::from_utf8(pages.last().unwrap().1.clone()).unwrap();
        assert!(text.contains("\\fBgit\\-hop\\-patch\\fR"), "{text}");
    }

    #[test]
    fn rendering_is_deterministic_and_matches_written_files() {
        let a = render_pages(sample()).unwrap();
        let b = render_pages(sample()).unwrap();
        assert_eq!(a, b);

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man1");
        let files = write_pages(sample(), &out).unwrap();
        assert_eq!(files.len(), a.len());
        for (path, (name, bytes)) in files.iter().zip(&a) {
            assert_eq!(path, &out.join(name));
            assert_eq!(&std::fs::read(path).unwrap(), bytes);
        }
        let mut on_disk: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, names(&a));
    }

    #[test]
    fn write_pages_reports_unwritable_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = write_pages(sample(), &file.join("man1")).unwrap_err();
        assert!(err.message.contains("not-a-dir"), "{}", err.message);
        assert!(err.hint.is_some());
    }

    #[test]
    fn bash_script_defines_git_shim_and_direct_completion() {
        let s = bash_completion(sample(), "hop-patch");
        assert_eq!(s, bash_completion(sample(), "hop-patch"));
        assert!(s.contains("\n_git_hop_patch() {\n"), "{s}");
        assert!(s.contains("\n_clap_git_hop_patch() {\n"), "{s}");
        assert!(s.contains("complete -F _clap_git_hop_patch -o nosort -o bashdefault -o default git-hop-patch\n"), "{s}");
        // No `complete` line may still target the internal name.
        assert!(
            !s.lines()
                .any(|l| l.contains("complete -F") && l.ends_with("clap_git_hop_patch")),
            "{s}"
        );
        // The hyphen bug: case labels and dispatch must use the same name.
        assert!(s.contains("clap_git_hop_patch__subcmd__merge)"), "{s}");
        assert!(!s.contains("clap__git"), "{s}");
    }

    /// Runs `script` in bash and returns its stdout, or None without bash.
    fn bash(script: &str) -> Option<String> {
        let out = match Process::new("bash")
            .arg("--norc")
            .arg("-c")
            .arg(script)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                println!("note: bash not runnable ({e}); skipping the completion run");
                return None;
            }
        };
        assert!(
            out.status.success(),
            "bash failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Simulates a TAB after `line` (words split on spaces; a trailing space
    /// starts a new empty word) and prints COMPREPLY, one entry a line.
    fn complete_script(setup: &str, func: &str, line: &str) -> String {
        let mut words: Vec<&str> = line.split(' ').collect();
        if words.is_empty() {
            words.push("");
        }
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        format!(
            "{setup}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; \
             COMP_POINT=${{#COMP_LINE}}; COMPREPLY=(); {func}; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = quoted.join(" "),
            cword = words.len() - 1,
        )
    }

    fn replies(out: &str) -> Vec<String> {
        out.lines()
            .map(|l| l.trim_end().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn script_file(dir: &Path) -> PathBuf {
        let path = dir.join("git-hop-patch");
        std::fs::write(&path, bash_completion(sample(), "hop-patch")).unwrap();
        path
    }

    #[test]
    fn bash_completes_the_binary_called_directly() {
        let dir = tempfile::tempdir().unwrap();
        let setup = format!("source '{}'", script_file(dir.path()).display());
        let run = |line: &str| {
            bash(&complete_script(
                &setup,
                "_clap_git_hop_patch git-hop-patch \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"",
                line,
            ))
            .map(|o| replies(&o))
        };
        let Some(top) = run("git-hop-patch ") else {
            return;
        };
        assert!(top.contains(&"merge".to_owned()), "{top:?}");
        assert!(top.contains(&"apply-all".to_owned()), "{top:?}");
        assert!(!top.contains(&"completions".to_owned()), "{top:?}");
        let merge = run("git-hop-patch merge --").unwrap();
        assert!(merge.contains(&"--force".to_owned()), "{merge:?}");
        assert!(merge.contains(&"--message".to_owned()), "{merge:?}");
        let apply = run("git-hop-patch apply-all --d").unwrap();
        assert_eq!(apply, ["--dry-run"]);
        // `complete -F` registered for the binary name.
        let spec = bash(&format!("{setup}\ncomplete -p git-hop-patch")).unwrap();
        assert!(spec.contains("-F _clap_git_hop_patch"), "{spec}");
    }

    #[test]
    fn bash_completes_through_git_completion() {
        let git_completion = Path::new("/usr/share/bash-completion/completions/git");
        if !git_completion.exists() {
            println!(
                "note: {} not found; skipping the `git hop-patch <TAB>` run",
                git_completion.display()
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let setup = format!(
            "source '{}'\nsource '{}'",
            git_completion.display(),
            script_file(dir.path()).display()
        );
        // `__git_wrap__git_main` is what `complete -F` calls for `git`.
        let run = |line: &str| {
            bash(&complete_script(&setup, "__git_wrap__git_main", line)).map(|o| replies(&o))
        };
        let Some(top) = run("git hop-patch ") else {
            return;
        };
        assert!(top.contains(&"merge".to_owned()), "{top:?}");
        assert!(top.contains(&"hooks".to_owned()), "{top:?}");
        assert!(!top.contains(&"completions".to_owned()), "{top:?}");
        let opts = run("git hop-patch -").unwrap();
        assert!(opts.contains(&"--verbose".to_owned()), "{opts:?}");
        assert!(
            !opts.iter().any(|o| o == "--trace" || o == "-T"),
            "{opts:?}"
        );
        let partial = run("git hop-patch me").unwrap();
        assert_eq!(partial, ["merge"]);
        let merge = run("git hop-patch merge --").unwrap();
        assert!(merge.contains(&"--force".to_owned()), "{merge:?}");
        assert!(!merge.contains(&"--dry-run".to_owned()), "{merge:?}");
        let nested = run("git hop-patch hooks ").unwrap();
        assert!(nested.contains(&"install".to_owned()), "{nested:?}");
        assert!(!nested.contains(&"secret".to_owned()), "{nested:?}");
        // Global git options before the command shift the word index.
        let shifted = run("git -C . hop-patch merge --f").unwrap();
        assert_eq!(shifted, ["--force"]);
    }
}
