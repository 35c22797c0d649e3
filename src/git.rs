//! The git layer: gix for reads (also the runner's own revision reads:
//! `rev_parse`, `head`, `is_ancestor`), the `git` binary (through one
//! runner) for everything that writes, checks out, merges or talks to
//! origin.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Environment variable set on git-hop's own `git push`, so that the
/// `pre-push` hook lets protected refs through.
pub const INTERNAL_PUSH_ENV: &str = "GIT_HOP_INTERNAL_PUSH";
/// Set on every git command git-hop runs, so that its hooks let git-hop's
/// own work through (docs/hooks.md).
pub const INTERNAL_ENV: &str = "GIT_HOP_INTERNAL";

/// Runs the `git` binary in one directory; its reads of revisions
/// ([`Git::rev_parse`], [`Git::head`], [`Git::is_ancestor`]) go through
/// gix in this process (a git process costs 5–10 ms), falling back to the
/// binary whenever gix cannot answer, so the binary stays the authority.
#[derive(Debug, Clone)]
pub struct Git {
    bin: PathBuf,
    dir: PathBuf,
    /// The repository at `dir`, opened on first read (`None`: gix could
    /// not open it; the binary answers).
    repo: std::cell::OnceCell<Option<gix::Repository>>,
}

/// What a git process printed.
#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Git> {
        let bin = which::which("git").map_err(|_| {
            Error::new("git not found on PATH").hint("install git (apt-get install git)")
        })?;
        Ok(Git {
            bin,
            dir: dir.into(),
            repo: std::cell::OnceCell::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The same runner in another directory.
    pub fn at(&self, dir: impl Into<PathBuf>) -> Git {
        Git {
            bin: self.bin.clone(),
            dir: dir.into(),
            repo: std::cell::OnceCell::new(),
        }
    }

    /// The repository at `dir` through gix, opened once.
    fn gix(&self) -> Option<&gix::Repository> {
        self.repo
            .get_or_init(|| gix::discover(&self.dir).ok())
            .as_ref()
    }

    /// The commit `rev` names, through gix only (`None` when gix cannot
    /// tell: the caller asks the binary).
    fn gix_commit(&self, rev: &str) -> Option<gix::ObjectId> {
        let repo = self.gix()?;
        let id = repo.rev_parse_single(rev).ok()?;
        let commit = id.object().ok()?.peel_to_commit().ok()?;
        Some(commit.id)
    }

    /// Whether gix knows for sure that the full ref name `rev` (`refs/…`)
    /// does not exist: refs stored as files (not reftable, which gix does
    /// not read), and neither a loose nor a packed ref of that name.
    fn gix_ref_missing(&self, rev: &str) -> bool {
        if !rev.starts_with("refs/") || rev.contains(['^', '~', ':', '@']) {
            return false;
        }
        let Some(repo) = self.gix() else {
            return false;
        };
        let files = repo
            .config_snapshot()
            .string("extensions.refStorage")
            .is_none_or(|v| v.eq_ignore_ascii_case(b"files"));
        files && matches!(repo.try_find_reference(rev), Ok(None))
    }

    /// Runs git and returns what it printed, whatever its exit status.
    pub fn output(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        let mut cmd = duct::cmd(&self.bin, args)
            .dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env(INTERNAL_ENV, "1")
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        let out = cmd
            .run()
            .map_err(|e| Error::new(format!("could not run git: {e}")))?;
        Ok(Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs git; a non-zero exit is an error carrying git's message.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let out = self.output(args, env)?;
        if out.ok {
            Ok(out.stdout.trim_end().to_string())
        } else {
            let msg = first_lines(&out.stderr, &out.stdout);
            Err(Error::new(format!("git {} failed: {msg}", args.join(" "))))
        }
    }

    /// Runs git with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Result<String> {
        let mut cmd = duct::cmd(&self.bin, args)
            .dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env(INTERNAL_ENV, "1")
            .stdin_bytes(input.to_vec())
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        let out = cmd
            .run()
            .map_err(|e| Error::new(format!("could not run git: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout.trim_end().to_string())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(Error::new(format!(
                "git {} failed: {}",
                args.join(" "),
                first_lines(&stderr, &stdout)
            )))
        }
    }

    /// Makes a commit on top of `parent` with some files changed
    /// (`Some(content)`) or removed (`None`), through a temporary index:
    /// neither the work tree, the index nor any ref is touched. Returns the
    /// new commit's id.
    pub fn commit_changes(
        &self,
        parent: &str,
        changes: &[(String, Option<Vec<u8>>)],
        message: &str,
    ) -> Result<String> {
        self.commit_tree_changes(parent, changes, &[parent], message, &[])
    }

    /// [`Git::commit_changes`] on the tree of `base` (a commit or a tree),
    /// with `parents` (a merge has two). `env` (an identity, say) is for
    /// the git commands; given one, the binary makes the commit.
    pub fn commit_tree_changes(
        &self,
        base: &str,
        changes: &[(String, Option<Vec<u8>>)],
        parents: &[&str],
        message: &str,
        env: &[(&str, &str)],
    ) -> Result<String> {
        if env.is_empty()
            && let Some(id) = self.gix_commit_changes(base, changes, parents, message)
        {
            return Ok(id);
        }
        let tmp = tempfile::Builder::new()
            .prefix("hop-index")
            .tempdir()
            .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
        let index = tmp.path().join("index");
        let index_s = index.display().to_string();
        let index_env = [("GIT_INDEX_FILE", index_s.as_str())];
        self.run_env(&["read-tree", base], &index_env)?;
        for (path, content) in changes {
            match content {
                Some(bytes) => {
                    let blob = self.run_stdin(&["hash-object", "-w", "--stdin"], bytes, &[])?;
                    let info = format!("100644,{blob},{path}");
                    self.run_env(&["update-index", "--add", "--cacheinfo", &info], &index_env)?;
                }
                None => {
                    self.run_env(&["update-index", "--force-remove", path], &index_env)?;
                }
            }
        }
        let tree = self.run_env(&["write-tree"], &index_env)?;
        let mut args = vec!["commit-tree", tree.as_str()];
        for p in parents {
            args.extend(["-p", p]);
        }
        args.extend(["-F", "-"]);
        self.run_stdin(&args, message.as_bytes(), env)
    }

    /// [`Git::commit_tree_changes`] in this process through gix (blobs,
    /// trees and the commit written as `git hash-object`, `write-tree` and
    /// `commit-tree` would, with the same identity rules); `None` when gix
    /// cannot (no identity configured, an unreadable parent…): the binary
    /// then does it. Objects written before a failure are unreferenced.
    fn gix_commit_changes(
        &self,
        base: &str,
        changes: &[(String, Option<Vec<u8>>)],
        parents: &[&str],
        message: &str,
    ) -> Option<String> {
        let repo = self.gix()?;
        let tree = repo
            .rev_parse_single(base)
            .ok()?
            .object()
            .ok()?
            .peel_to_tree()
            .ok()?
            .id;
        let parents = parents
            .iter()
            .map(|p| self.gix_commit(p))
            .collect::<Option<Vec<_>>>()?;
        let mut editor = repo.edit_tree(tree).ok()?;
        for (path, content) in changes {
            match content {
                Some(bytes) => {
                    let blob = repo.write_blob(bytes).ok()?;
                    editor
                        .upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)
                        .ok()?;
                }
                None => {
                    editor.remove(path.as_str()).ok()?;
                }
            }
        }
        let tree = editor.write().ok()?;
        let commit = repo.new_commit(message, tree, parents).ok()?;
        Some(commit.id.to_string())
    }

    /// A commit with no parent and the empty tree, by `name <email>` as
    /// author and committer (no identity needs to be configured): what
    /// the origin lock is made of (docs/releases.md, "The merge queue").
    /// Written in this process through gix, else by `git mktree` and
    /// `git commit-tree`.
    pub fn root_commit_as(&self, name: &str, email: &str, message: &str) -> Result<String> {
        if let Some(id) = self.gix().and_then(|repo| {
            let tree = repo.write_object(gix::objs::Tree::empty()).ok()?;
            let sig = gix::actor::Signature {
                name: name.into(),
                email: email.into(),
                time: gix::date::Time::now_local_or_utc(),
            };
            let mut buf = gix::date::parse::TimeBuf::default();
            let sig = sig.to_ref(&mut buf);
            let commit = repo
                .new_commit_as(sig, sig, message, tree, None::<gix::ObjectId>)
                .ok()?;
            Some(commit.id.to_string())
        }) {
            return Ok(id);
        }
        let tree = self.run_stdin(&["mktree"], b"", &[])?;
        self.run_stdin(
            &["commit-tree", &tree, "-F", "-"],
            message.as_bytes(),
            &[
                ("GIT_AUTHOR_NAME", name),
                ("GIT_AUTHOR_EMAIL", email),
                ("GIT_COMMITTER_NAME", name),
                ("GIT_COMMITTER_EMAIL", email),
            ],
        )
    }

    /// Runs `git merge ARGS`. On failure, the conflicting files (the merge
    /// is then in progress) or, when it did not even start, git's message.
    pub fn merge(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Result<(), MergeFailure>> {
        let mut argv = vec!["merge"];
        argv.extend_from_slice(args);
        let out = self.output(&argv, env)?;
        if out.ok {
            return Ok(Ok(()));
        }
        let conflicts = self
            .run(&["diff", "--name-only", "--diff-filter=U"])
            .unwrap_or_default();
        Ok(Err(MergeFailure {
            conflicts: conflicts.lines().map(str::to_string).collect(),
            message: first_lines(&out.stderr, &out.stdout),
        }))
    }

    /// The tree of `ours` and `theirs` merged as `git merge` merges them
    /// (`git merge-tree --write-tree`: no work tree, index or ref is
    /// touched). On failure, the conflicting files, or git's message.
    pub fn merge_tree(&self, ours: &str, theirs: &str) -> Result<Result<String, MergeFailure>> {
        // Attributes (merge drivers, `merge=union`…) from `ours`, as a
        // `git merge` in a work tree checked out at `ours` reads them
        // (`attr.tree`, git ≥ 2.42; older git reads the work tree's).
        let attr = format!("attr.tree={ours}");
        let out = self.output(
            &[
                "-c",
                &attr,
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                "-z",
                ours,
                theirs,
            ],
            &[],
        )?;
        let mut fields = out.stdout.split('\0');
        let tree = fields.next().unwrap_or("").trim().to_string();
        let is_id = !tree.is_empty() && tree.bytes().all(|b| b.is_ascii_hexdigit());
        if out.ok && is_id {
            return Ok(Ok(tree));
        }
        let conflicts: Vec<String> = if is_id {
            fields
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Err(MergeFailure {
            message: first_lines(&out.stderr, if is_id { "" } else { &out.stdout }),
            conflicts,
        }))
    }

    /// The content of `path` at `rev` (a commit or a tree), as stored.
    pub fn text_at(&self, rev: &str, path: &str) -> Result<String> {
        if let Some(text) = self.gix().and_then(|repo| {
            let id = repo
                .rev_parse_single(format!("{rev}:{path}").as_str())
                .ok()?;
            String::from_utf8(id.object().ok()?.data.clone()).ok()
        }) {
            return Ok(text);
        }
        let out = self.output(&["cat-file", "blob", &format!("{rev}:{path}")], &[])?;
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(Error::new(format!(
                "cannot read {path} at {rev}: {}",
                first_lines(&out.stderr, "")
            )))
        }
    }

    /// A commit on top of `parent` whose tree is `parent`'s with `paths` as
    /// commit `from` has them (modes kept; a path `from` lacks is removed),
    /// made through a temporary index: neither the work tree, the index nor
    /// any ref is touched.
    pub fn overlay_commit(
        &self,
        parent: &str,
        from: &str,
        paths: &[String],
        message: &str,
    ) -> Result<String> {
        let tmp = tempfile::Builder::new()
            .prefix("hop-index")
            .tempdir()
            .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
        let index = tmp.path().join("index").display().to_string();
        let env = [("GIT_INDEX_FILE", index.as_str())];
        self.run_env(&["read-tree", parent], &env)?;
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", from, "--"];
        args.extend(paths.iter().map(String::as_str));
        let listed = self.output(&args, &[("GIT_LITERAL_PATHSPECS", "1")])?;
        if !listed.ok {
            return Err(Error::new(format!(
                "git ls-tree {from} failed: {}",
                first_lines(&listed.stderr, "")
            )));
        }
        let mut info = String::new();
        let mut kept = std::collections::BTreeSet::new();
        for entry in listed.stdout.split('\0').filter(|e| !e.is_empty()) {
            // "<mode> <type> <id>\t<path>"
            if let Some((meta, path)) = entry.split_once('\t') {
                let mut m = meta.split(' ');
                let (mode, _, id) = (m.next(), m.next(), m.next());
                if let (Some(mode), Some(id)) = (mode, id) {
                    info.push_str(&format!("{mode} {id}\t{path}\0"));
                    kept.insert(path.to_string());
                }
            }
        }
        for path in paths.iter().filter(|p| !kept.contains(*p)) {
            info.push_str(&format!("0 {}\t{path}\0", "0".repeat(40)));
        }
        self.run_stdin(
            &["update-index", "-z", "--index-info"],
            info.as_bytes(),
            &env,
        )?;
        let tree = self.run_env(&["write-tree"], &env)?;
        self.run_stdin(
            &["commit-tree", &tree, "-p", parent, "-F", "-"],
            message.as_bytes(),
            &[],
        )
    }

    /// The paths that differ between two commits (no rename detection).
    pub fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let out = self.run(&["diff", "--name-only", "-z", "--no-renames", from, to])?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The best common ancestor of two commits, `None` for unrelated ones.
    pub fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>> {
        let out = self.output(&["merge-base", a, b], &[])?;
        Ok(out.ok.then(|| out.stdout.trim().to_string()))
    }

    /// Local ref updates in one `git update-ref --stdin` transaction: all or
    /// none. Each is `(ref, new, old)`: `new` `None` deletes the ref, `old`
    /// `Some` makes the update a compare-and-swap on the local value (the
    /// empty string: the ref must not exist).
    pub fn update_refs(&self, updates: &[(&str, Option<&str>, Option<&str>)]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut script = String::from("start\n");
        for (name, new, old) in updates {
            let old = old.map(|o| {
                if o.is_empty() {
                    "0".repeat(40)
                } else {
                    o.to_string()
                }
            });
            match (new, old) {
                (Some(new), Some(old)) => script.push_str(&format!("update {name} {new} {old}\n")),
                (Some(new), None) => script.push_str(&format!("update {name} {new}\n")),
                (None, Some(old)) => script.push_str(&format!("delete {name} {old}\n")),
                (None, None) => script.push_str(&format!("delete {name}\n")),
            }
        }
        script.push_str("commit\n");
        self.run_stdin(&["update-ref", "--stdin"], script.as_bytes(), &[])
            .map(|_| ())
    }

    /// `git switch BRANCH`.
    pub fn switch(&self, branch: &str) -> Result<()> {
        self.run(&["switch", "-q", branch]).map(|_| ())
    }

    /// Creates `branch` at `start` and switches to it; with `upstream` (a
    /// remote's name), the branch tracks the remote's branch of the same
    /// name, set in the same process when the remote-tracking ref is there.
    pub fn switch_new(&self, branch: &str, start: &str, upstream: Option<&str>) -> Result<()> {
        if let Some(remote) = upstream {
            let tracking = format!("{remote}/{branch}");
            if self
                .rev_parse(&format!("refs/remotes/{tracking}"))?
                .as_deref()
                == Some(start)
            {
                return self
                    .run(&["switch", "-q", "-c", branch, "--track", &tracking])
                    .map(|_| ());
            }
            self.run(&["switch", "-q", "-c", branch, start])?;
            return self.set_upstream(branch, remote);
        }
        self.run(&["switch", "-q", "-c", branch, start]).map(|_| ())
    }

    /// Makes local `branch` track `remote`'s branch of the same name (read
    /// first in process: nothing runs when it does already).
    pub fn set_upstream(&self, branch: &str, remote: &str) -> Result<()> {
        let merge = format!("refs/heads/{branch}");
        if self
            .config_value(&format!("branch.{branch}.remote"))
            .as_deref()
            == Some(remote)
            && self
                .config_value(&format!("branch.{branch}.merge"))
                .as_deref()
                == Some(&merge)
        {
            return Ok(());
        }
        self.run(&[
            "branch",
            "-q",
            &format!("--set-upstream-to={remote}/{branch}"),
            branch,
        ])
        .map(|_| ())
    }

    /// Whether `ancestor` is an ancestor of (or equal to) `of`.
    pub fn is_ancestor(&self, ancestor: &str, of: &str) -> Result<bool> {
        if let (Some(a), Some(b)) = (self.gix_commit(ancestor), self.gix_commit(of)) {
            if a == b {
                return Ok(true);
            }
            // No merge base at all (unrelated histories): not an ancestor.
            if let Some(base) = self.gix().and_then(|r| r.merge_base(a, b).ok()) {
                return Ok(base.is_some_and(|id| id.detach() == a));
            }
        }
        Ok(self
            .output(&["merge-base", "--is-ancestor", ancestor, of], &[])?
            .ok)
    }

    /// A value of the repository's config (local, global, system), read
    /// through gix; `None` when unset or gix cannot read it.
    pub fn config_value(&self, key: &str) -> Option<String> {
        self.gix()?
            .config_snapshot()
            .string(key)
            .map(|v| v.to_string())
    }

    /// The content of `path` at revision `rev`, trailing white space cut
    /// ([`Git::text_at`] as stored).
    pub fn file_at(&self, rev: &str, path: &str) -> Result<String> {
        self.text_at(rev, path)
            .map(|text| text.trim_end().to_string())
    }

    /// The commit HEAD points at.
    pub fn head(&self) -> Result<String> {
        match self.gix_commit("HEAD") {
            Some(id) => Ok(id.to_string()),
            None => self.run(&["rev-parse", "HEAD"]),
        }
    }

    /// The commit a ref or revision names, `None` when it does not exist.
    pub fn rev_parse(&self, rev: &str) -> Result<Option<String>> {
        if let Some(id) = self.gix_commit(rev) {
            return Ok(Some(id.to_string()));
        }
        if self.gix_ref_missing(rev) {
            return Ok(None);
        }
        let spec = format!("{rev}^{{commit}}");
        let out = self.output(&["rev-parse", "--verify", "--quiet", &spec], &[])?;
        Ok(if out.ok {
            Some(out.stdout.trim().to_string())
        } else {
            None
        })
    }
}

/// A deterministic git environment for unit tests (no user or system
/// config, a fixed identity).
#[cfg(test)]
pub const TEST_ENV: [(&str, &str); 6] = [
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_AUTHOR_NAME", "t"),
    ("GIT_AUTHOR_EMAIL", "t@e"),
    ("GIT_COMMITTER_NAME", "t"),
    ("GIT_COMMITTER_EMAIL", "t@e"),
];

/// Why a merge did not complete.
#[derive(Debug)]
pub struct MergeFailure {
    pub conflicts: Vec<String>,
    pub message: String,
}

impl MergeFailure {
    /// "merging WHAT conflicts in: a, b" with `conflict_hint`, or "cannot
    /// merge WHAT: git's message".
    pub fn error(&self, what: &str, conflict_hint: &str) -> Error {
        if self.conflicts.is_empty() {
            Error::new(format!("cannot merge {what}: {}", self.message))
        } else {
            Error::new(format!(
                "merging {what} conflicts in: {}",
                self.conflicts.join(", ")
            ))
            .hint(conflict_hint)
        }
    }
}

/// The most useful part of a failed process's output, on one line.
pub fn first_lines(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .take(3)
        .collect();
    if lines.is_empty() {
        "no message".to_string()
    } else {
        lines.join(" / ")
    }
}

/// Read access to a repository through gix.
pub struct Repo {
    repo: gix::Repository,
    workdir: PathBuf,
}

impl Repo {
    /// Opens the repository containing `dir`; `None` when there is none.
    pub fn discover(dir: &Path) -> Option<Repo> {
        let repo = gix::discover(dir).ok()?;
        let workdir = repo.workdir()?.to_path_buf();
        let workdir = workdir.canonicalize().unwrap_or(workdir);
        Some(Repo { repo, workdir })
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The common git directory (`.git` of the main worktree).
    pub fn common_dir(&self) -> PathBuf {
        let d = self.repo.common_dir();
        let d = if d.is_absolute() {
            d.to_path_buf()
        } else {
            self.workdir.join(d)
        };
        d.canonicalize().unwrap_or(d)
    }

    /// The current branch's short name, `None` when HEAD is detached.
    pub fn current_branch(&self) -> Option<String> {
        let name = self.repo.head_name().ok()??;
        Some(name.shorten().to_string())
    }

    /// The commit a revision names.
    pub fn rev(&self, spec: &str) -> Option<String> {
        let id = self.repo.rev_parse_single(spec).ok()?;
        let obj = id.object().ok()?.peel_to_commit().ok()?;
        Some(obj.id.to_string())
    }

    /// A file's content at a revision.
    pub fn file_at(&self, rev: &str, path: &str) -> Option<Vec<u8>> {
        let id = self
            .repo
            .rev_parse_single(format!("{rev}:{path}").as_str())
            .ok()?;
        Some(id.object().ok()?.data.clone())
    }

    /// Short names of the tags.
    pub fn tags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(refs) = self.repo.references()
            && let Ok(tags) = refs.tags()
        {
            for r in tags.flatten() {
                out.push(r.name().shorten().to_string());
            }
        }
        out
    }

    /// Short names of the local branches.
    pub fn local_branches(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(refs) = self.repo.references()
            && let Ok(b) = refs.local_branches()
        {
            for r in b.flatten() {
                out.push(r.name().shorten().to_string());
            }
        }
        out
    }

    /// A value of the repository's git config (local, global, system).
    pub fn config_string(&self, key: &str) -> Option<String> {
        self.repo
            .config_snapshot()
            .string(key)
            .map(|s| s.to_string())
    }

    /// Whether tracked files differ from HEAD (untracked files ignored).
    pub fn is_dirty(&self) -> Result<bool> {
        self.repo
            .is_dirty()
            .map_err(|e| Error::new(format!("could not read the work tree status: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_prefers_stderr_and_skips_hints() {
        assert_eq!(first_lines("fatal: no\nhint: try\n", "x"), "fatal: no");
        assert_eq!(first_lines("  ", "out\n"), "out");
        assert_eq!(first_lines("", ""), "no message");
    }

    #[test]
    fn root_commit_as_is_a_parentless_commit_of_the_empty_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path()).unwrap();
        git.run_env(&["init", "-q", "-b", "ho-prod"], &crate::git::TEST_ENV)
            .unwrap();
        let id = git
            .root_commit_as("git-hop", "git-hop@localhost", "[hop] lock\n\nowner: a@b\n")
            .unwrap();
        let text = git.run(&["cat-file", "-p", &id]).unwrap();
        assert!(
            text.starts_with(
                "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor git-hop <git-hop@localhost> "
            ),
            "{text}"
        );
        assert!(!text.contains("parent "), "{text}");
        assert!(text.ends_with("[hop] lock\n\nowner: a@b"), "{text}");
        // The tree is in the object database (a push sends it).
        git.run(&["cat-file", "-e", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"])
            .unwrap();
        git.run(&["fsck", "--no-dangling"]).unwrap();
    }

    #[test]
    fn repo_reads_branch_tags_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path()).unwrap();
        let env = crate::git::TEST_ENV;
        git.run_env(&["init", "-q", "-b", "ho-prod"], &env).unwrap();
        std::fs::write(tmp.path().join("a.txt"), "hello").unwrap();
        git.run_env(&["add", "a.txt"], &env).unwrap();
        git.run_env(&["commit", "-q", "-m", "one"], &env).unwrap();
        git.run_env(&["tag", "v0.0.0"], &env).unwrap();
        let repo = Repo::discover(tmp.path()).unwrap();
        assert_eq!(repo.current_branch().as_deref(), Some("ho-prod"));
        assert_eq!(repo.tags(), vec!["v0.0.0".to_string()]);
        assert_eq!(repo.file_at("v0.0.0", "a.txt").unwrap(), b"hello");
        assert!(repo.rev("v0.0.0").is_some());
        assert!(!repo.is_dirty().unwrap());
        std::fs::write(tmp.path().join("a.txt"), "changed").unwrap();
        assert!(repo.is_dirty().unwrap());
        let err = git.run(&["rev-parse", "nope"]).unwrap_err();
        assert!(
            err.message.contains("git rev-parse nope failed"),
            "{}",
            err.message
        );
    }

    /// Reads through gix agree with the binary, and see what the binary
    /// wrote after the first read: a new commit, a moved ref, objects that
    /// arrived in a new pack.
    #[test]
    fn gix_reads_agree_with_git_and_see_later_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        let env = crate::git::TEST_ENV;
        let git = Git::new(&a).unwrap();
        git.run_env(&["init", "-q", "-b", "main"], &env).unwrap();
        let commit = |g: &Git, m: &str| {
            g.run_env(&["commit", "-q", "--allow-empty", "-m", m], &env)
                .unwrap();
            g.run(&["rev-parse", "HEAD"]).unwrap()
        };
        let one = commit(&git, "one");
        assert_eq!(git.head().unwrap(), one);
        assert_eq!(
            git.rev_parse("main").unwrap().as_deref(),
            Some(one.as_str())
        );
        assert_eq!(git.rev_parse("refs/heads/nope").unwrap(), None);
        // Written by the binary after gix opened the repository.
        let two = commit(&git, "two");
        assert_eq!(git.head().unwrap(), two);
        assert!(git.gix_ref_missing("refs/heads/side"), "missing, for gix");
        git.run(&["branch", "side", &one]).unwrap();
        assert!(!git.gix_ref_missing("refs/heads/side"));
        assert_eq!(
            git.rev_parse("refs/heads/side").unwrap().as_deref(),
            Some(one.as_str())
        );
        // Packed, then deleted: gix sees both.
        git.run(&["pack-refs", "--all"]).unwrap();
        assert!(!git.gix_ref_missing("refs/heads/side"));
        git.run(&["branch", "-q", "-D", "side"]).unwrap();
        assert!(git.gix_ref_missing("refs/heads/side"));
        assert_eq!(git.rev_parse("refs/heads/side").unwrap(), None);
        assert!(!git.gix_ref_missing("refs/heads/side^"), "not a ref name");
        git.run(&["branch", "side", &one]).unwrap();
        assert!(git.is_ancestor(&one, &two).unwrap());
        assert!(git.is_ancestor(&two, &two).unwrap());
        assert!(!git.is_ancestor(&two, &one).unwrap());
        assert!(git.is_ancestor("side", "main").unwrap());
        // Unrelated history, fetched as a pack.
        let other = Git::new(&b).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        other.run_env(&["init", "-q", "-b", "main"], &env).unwrap();
        for m in ["x", "y", "z"] {
            commit(&other, m);
        }
        let z = other.run(&["rev-parse", "HEAD"]).unwrap();
        let url = b.display().to_string();
        git.run(&[
            "-c",
            "fetch.unpackLimit=1",
            "fetch",
            "-q",
            &url,
            "main:refs/remotes/o/main",
        ])
        .unwrap();
        assert_eq!(
            git.rev_parse("refs/remotes/o/main").unwrap().as_deref(),
            Some(z.as_str())
        );
        assert!(!git.is_ancestor(&z, &two).unwrap());
        assert!(!git.is_ancestor(&two, &z).unwrap());
    }

    /// A new repository on branch `main` whose identity is Ann's.
    fn repo_of_ann() -> (tempfile::TempDir, Git) {
        let tmp = tempfile::tempdir().unwrap();
        let env = crate::git::TEST_ENV;
        let git = Git::new(tmp.path()).unwrap();
        git.run_env(&["init", "-q", "-b", "main"], &env).unwrap();
        git.run_env(&["config", "user.name", "Ann"], &env).unwrap();
        git.run_env(&["config", "user.email", "ann@example.com"], &env)
            .unwrap();
        (tmp, git)
    }

    /// A commit made through gix holds what the binary's would: the
    /// parent's tree with files added, changed (mode 100644) and removed,
    /// nested folders included, the configured identity and the message.
    #[test]
    fn commit_changes_edits_the_parents_tree_only() {
        let (tmp, git) = repo_of_ann();
        let env = crate::git::TEST_ENV;
        std::fs::create_dir_all(tmp.path().join("d/e")).unwrap();
        for (f, t) in [("a.txt", "a"), ("d/b.txt", "b"), ("d/e/c.txt", "c")] {
            std::fs::write(tmp.path().join(f), t).unwrap();
        }
        git.run_env(&["add", "-A"], &env).unwrap();
        git.run_env(&["commit", "-q", "-m", "one"], &env).unwrap();
        let head = git.head().unwrap();
        let changes = vec![
            ("a.txt".to_string(), Some(b"A\n".to_vec())),
            ("d/e/c.txt".to_string(), None),
            ("new/deep/n.toml".to_string(), Some(b"[x]\n".to_vec())),
        ];
        let id = git
            .gix_commit_changes(&head, &changes, &[&head], "[hop] two\n")
            .expect("gix commits");
        // Nothing moved: no ref, no work tree, no index change.
        assert_eq!(git.head().unwrap(), head);
        assert_eq!(git.run(&["status", "--porcelain"]).unwrap(), "");
        let files = git
            .run(&["ls-tree", "-r", "--format=%(objectmode) %(path)", &id])
            .unwrap();
        assert_eq!(
            files,
            "100644 a.txt\n100644 d/b.txt\n100644 new/deep/n.toml"
        );
        assert_eq!(git.run(&["show", &format!("{id}:a.txt")]).unwrap(), "A");
        assert_eq!(
            git.run(&["log", "-1", "--format=%P|%an <%ae>|%cn|%B", &id])
                .unwrap(),
            format!("{head}|Ann <ann@example.com>|Ann|[hop] two")
        );
        git.run(&["fsck", "--strict", "--no-dangling"]).unwrap();
    }

    /// `merge_tree` gives the tree `git merge` would commit, or the
    /// conflicting files; a merge commit made on it has both parents, made
    /// in process or, with an identity in the environment, by the binary.
    #[test]
    fn merge_tree_merges_like_git_merge_or_names_the_conflicts() {
        let (tmp, git) = repo_of_ann();
        let env = crate::git::TEST_ENV;
        let commit = |files: &[(&str, &str)], msg: &str| {
            for (f, t) in files {
                std::fs::write(tmp.path().join(f), t).unwrap();
            }
            git.run_env(&["add", "-A"], &env).unwrap();
            git.run_env(&["commit", "-q", "-m", msg], &env).unwrap();
            git.head().unwrap()
        };
        let base = commit(&[("a.txt", "a\n"), ("c.txt", "c\n")], "base");
        let ours = commit(&[("a.txt", "a2\n")], "ours");
        git.run_env(&["checkout", "-q", "-b", "other", &base], &env)
            .unwrap();
        let theirs = commit(&[("b.txt", "b\n")], "theirs");
        let clash = commit(&[("a.txt", "a3\n")], "clash");

        let tree = git.merge_tree(&ours, &theirs).unwrap().ok().unwrap();
        let merge = git
            .commit_tree_changes(&tree, &[], &[&ours, &theirs], "m\n", &[])
            .unwrap();
        git.run_env(&["checkout", "-q", &ours], &env).unwrap();
        git.run_env(&["merge", "-q", "--no-ff", "-m", "m", &theirs], &env)
            .unwrap();
        assert_eq!(
            git.run(&["rev-parse", &format!("{merge}^{{tree}}")])
                .unwrap(),
            git.run(&["rev-parse", "HEAD^{tree}"]).unwrap()
        );
        assert_eq!(
            git.run(&["log", "-1", "--format=%P", &merge]).unwrap(),
            format!("{ours} {theirs}")
        );
        let by_binary = git
            .commit_tree_changes(
                &tree,
                &[("n.txt".to_string(), Some(b"n\n".to_vec()))],
                &[&ours, &theirs],
                "m\n",
                &[
                    ("GIT_COMMITTER_NAME", "Bot"),
                    ("GIT_COMMITTER_EMAIL", "bot@example.com"),
                ],
            )
            .unwrap();
        assert_eq!(
            git.run(&["log", "-1", "--format=%P|%cn", &by_binary])
                .unwrap(),
            format!("{ours} {theirs}|Bot")
        );

        let f = git.merge_tree(&ours, &clash).unwrap().unwrap_err();
        assert_eq!(f.conflicts, vec!["a.txt".to_string()], "{}", f.message);
        // Not a conflict: git's message.
        git.run_env(&["checkout", "-q", "--orphan", "alone"], &env)
            .unwrap();
        let alone = commit(&[("z.txt", "z\n")], "alone");
        let f = git.merge_tree(&ours, &alone).unwrap().unwrap_err();
        assert!(f.conflicts.is_empty());
        assert!(f.message.contains("unrelated histories"), "{}", f.message);
    }
}
