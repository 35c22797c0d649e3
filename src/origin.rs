//! Origin (docs/safety.md): reading its refs, and updating it only through one
//! atomic push in which every ref is a compare-and-swap on the value the
//! command expects. Commands build their commits first (without touching
//! local refs or the work tree), push, and move local refs only once the
//! push succeeded, so a failed push leaves the local repository as it was.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::git::{Git, INTERNAL_PUSH_ENV, first_lines};

pub const REMOTE: &str = "origin";
/// git-hop's own reservation refs: never a branch or a tag.
pub const RELEASE_RESERVATIONS: &str = "refs/hop/releases/";
pub const PATCH_RESERVATIONS: &str = "refs/hop/patches/";

/// One ref to change on origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// Full ref name (`refs/heads/…`, `refs/tags/…`, `refs/hop/…`).
    pub name: String,
    /// New commit; `None` deletes the ref.
    pub new: Option<String>,
    /// Value origin must hold now; `None`: the ref must not exist.
    pub expect: Option<String>,
}

impl RefUpdate {
    pub fn create(name: impl Into<String>, new: &str) -> RefUpdate {
        RefUpdate {
            name: name.into(),
            new: Some(new.into()),
            expect: None,
        }
    }
    pub fn update(name: impl Into<String>, new: &str, expect: &str) -> RefUpdate {
        RefUpdate {
            name: name.into(),
            new: Some(new.into()),
            expect: Some(expect.into()),
        }
    }
    /// Moves branch `branch` (a short name) from `expect` to `new`.
    pub fn branch(branch: &str, new: &str, expect: &str) -> RefUpdate {
        RefUpdate::update(format!("refs/heads/{branch}"), new, expect)
    }
    pub fn delete(name: impl Into<String>, expect: &str) -> RefUpdate {
        RefUpdate {
            name: name.into(),
            new: None,
            expect: Some(expect.into()),
        }
    }
}

/// The `origin` remote of a repository.
pub struct Origin {
    git: Git,
    pub url: String,
}

impl Origin {
    /// `None` when the repository has no `origin` (a local-only project).
    pub fn of(git: &Git) -> Result<Option<Origin>> {
        // The URL is only shown; read in process when set.
        if let Some(url) = git.config_value(&format!("remote.{REMOTE}.url")) {
            return Ok(Some(Origin {
                git: git.clone(),
                url,
            }));
        }
        let out = git.output(&["remote", "get-url", REMOTE], &[])?;
        if !out.ok {
            return Ok(None);
        }
        Ok(Some(Origin {
            git: git.clone(),
            url: out.stdout.trim().to_string(),
        }))
    }

    fn unreachable(&self, e: Error) -> Error {
        Error::new(format!("cannot reach origin ({}): {}", self.url, e.message))
            .hint("check your network and access to origin, then run the command again; nothing was changed")
    }

    /// Fetches branches and tags (pruning deleted branches).
    pub fn fetch(&self) -> Result<()> {
        self.git
            .run(&["fetch", "-q", "--prune", "--tags", REMOTE])
            .map(|_| ())
            .map_err(|e| self.unreachable(e))
    }

    /// [`Origin::fetch`] with this clone's hooks off: half-orm-dev's
    /// production hooks refuse every ref update, a fetch's included, and
    /// `import` must fetch before it replaces them (docs/import.md).
    pub fn fetch_without_hooks(&self) -> Result<()> {
        self.git
            .run(&[
                "-c",
                "core.hooksPath=/dev/null",
                "fetch",
                "-q",
                "--prune",
                "--tags",
                REMOTE,
            ])
            .map(|_| ())
            .map_err(|e| self.unreachable(e))
    }

    /// Origin's refs matching `patterns` (full names → commit ids).
    pub fn ls_remote(&self, patterns: &[&str]) -> Result<BTreeMap<String, String>> {
        let mut args = vec!["ls-remote", REMOTE];
        args.extend_from_slice(patterns);
        let out = self.git.run(&args).map_err(|e| self.unreachable(e))?;
        let mut refs = BTreeMap::new();
        for line in out.lines() {
            if let Some((id, name)) = line.split_once('\t')
                && !name.ends_with("^{}")
            {
                refs.insert(name.to_string(), id.to_string());
            }
        }
        Ok(refs)
    }

    /// One ref of origin.
    pub fn remote_ref(&self, name: &str) -> Result<Option<String>> {
        Ok(self.ls_remote(&[name])?.remove(name))
    }

    /// Applies every update in one atomic push, each guarded by its lease.
    /// On failure nothing changed on origin; the error says why.
    pub fn push(&self, updates: &[RefUpdate]) -> Result<()> {
        let mut args: Vec<String> = vec!["push".into(), "--atomic".into(), "--porcelain".into()];
        for u in updates {
            args.push(format!(
                "--force-with-lease={}:{}",
                u.name,
                u.expect.as_deref().unwrap_or("")
            ));
        }
        args.push(REMOTE.into());
        for u in updates {
            args.push(match &u.new {
                Some(id) => format!("{id}:{}", u.name),
                None => format!(":{}", u.name),
            });
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.git.output(&argv, &[(INTERNAL_PUSH_ENV, "1")])?;
        if out.ok {
            return Ok(());
        }
        // No "To <url>" line: git never got to talk to origin.
        if !out.stdout.lines().any(|l| l.starts_with("To ")) {
            return Err(self.unreachable(Error::new(first_lines(&out.stderr, ""))));
        }
        let rejected: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with('!'))
            .filter_map(|l| l.split('\t').nth(1))
            .map(|r| r.split(':').next_back().unwrap_or(r).to_string())
            .collect();
        let stale = out.stdout.contains("stale info")
            || out.stdout.contains("already exists")
            || out.stdout.contains("fetch first");
        let detail = first_lines(&out.stderr, "");
        let msg = if stale && !rejected.is_empty() {
            format!(
                "origin changed meanwhile ({} no longer as expected): the push was refused and origin is unchanged",
                rejected.join(", ")
            )
        } else {
            format!("push to origin ({}) failed: {detail}", self.url)
        };
        Err(Error::new(msg))
    }
}

/// A trailer that makes a reservation commit unique: two clones building
/// the "same" commit in the same second would otherwise make the same
/// object, and a push of a value origin already holds succeeds without a
/// lease check, so both would think they won.
pub fn unique_trailer() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap_or_default();
    format!(
        "\n\nHop-Reservation: {}-{nanos:x}-{:x}",
        host.trim(),
        std::process::id()
    )
}

/// The reservation ref of a patch number (leading zeros ignored, so `007`
/// and `7` are one number).
pub fn patch_reservation(number: &str) -> String {
    let n = number.trim_start_matches('0');
    format!("{PATCH_RESERVATIONS}{}", if n.is_empty() { "0" } else { n })
}

pub fn release_reservation(version: &str) -> String {
    format!("{RELEASE_RESERVATIONS}{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_names() {
        assert_eq!(patch_reservation("007"), "refs/hop/patches/7");
        assert_eq!(patch_reservation("0"), "refs/hop/patches/0");
        assert_eq!(release_reservation("0.1.0"), "refs/hop/releases/0.1.0");
    }

    #[test]
    fn atomic_push_is_all_or_nothing_with_leases() {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("o.git");
        let work = tmp.path().join("w");
        let g = Git::new(tmp.path()).unwrap();
        let env = crate::git::TEST_ENV;
        g.run_env(&["init", "-q", "--bare", bare.to_str().unwrap()], &env)
            .unwrap();
        g.run_env(&["init", "-q", "-b", "main", work.to_str().unwrap()], &env)
            .unwrap();
        let w = g.at(&work);
        w.run_env(&["commit", "-q", "--allow-empty", "-m", "one"], &env)
            .unwrap();
        w.run_env(&["remote", "add", "origin", bare.to_str().unwrap()], &env)
            .unwrap();
        let c1 = w.rev_parse("HEAD").unwrap().unwrap();
        let c2 = w
            .commit_changes(&c1, &[("a.txt".into(), Some(b"hi".to_vec()))], "two")
            .unwrap();
        assert_eq!(w.run(&["show", &format!("{c2}:a.txt")]).unwrap(), "hi");
        assert_eq!(w.rev_parse("HEAD").unwrap().unwrap(), c1, "HEAD untouched");

        let o = Origin::of(&w).unwrap().unwrap();
        o.push(&[
            RefUpdate::create("refs/heads/main", &c1),
            RefUpdate::create("refs/hop/patches/7", &c1),
        ])
        .unwrap();
        // A second reservation of the same number fails, and takes the other
        // update of the same push down with it.
        let err = o
            .push(&[
                RefUpdate::update("refs/heads/main", &c2, &c1),
                RefUpdate::create("refs/hop/patches/7", &c2),
            ])
            .unwrap_err();
        assert!(
            err.message.contains("origin changed meanwhile"),
            "{}",
            err.message
        );
        assert_eq!(
            o.remote_ref("refs/heads/main").unwrap().as_deref(),
            Some(c1.as_str())
        );
        // A lease on the wrong value fails too.
        assert!(
            o.push(&[RefUpdate::update("refs/heads/main", &c2, &c2)])
                .is_err()
        );
        o.push(&[
            RefUpdate::update("refs/heads/main", &c2, &c1),
            RefUpdate::delete("refs/hop/patches/7", &c1),
        ])
        .unwrap();
        assert_eq!(o.remote_ref("refs/hop/patches/7").unwrap(), None);
        assert!(
            Origin::of(&g.at(tmp.path())).is_err()
                || Origin::of(&g.at(tmp.path())).unwrap().is_none()
        );
    }
}
