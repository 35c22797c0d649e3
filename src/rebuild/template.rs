//! Template databases (docs/engine.md, "Fast rebuilds"): a development
//! rebuild starts from a copy (`CREATE DATABASE … TEMPLATE`) of a database
//! that already holds the production snapshot and the release's staged
//! head, made once by a real replay, so `apply` and the `merge` validation
//! replay only the current patch.
//!
//! Keys chain: the snapshot's key hashes its three files and the server
//! version; each staged patch's key hashes the previous key, the release
//! and the patch folder's SHA-256. A rebuild clones the longest prefix of
//! its head that has a template, replays the rest of the head into a new
//! template, then clones that. A patch with Python steps ends what can be
//! cached. Templates are named `hop_tpl_<clone>_<random>` and marked in
//! their comment (`git-hop template: key=… clone=… used=…`); a
//! template being built carries a temporary database's comment, so a killed
//! build is swept like any leftover. Each clone keeps at most
//! `hop.templateCache` (default 4), dropping the least recently used.
//! Production never uses them; any failure to create or copy one (a role
//! without CREATEDB, checked first) falls back to a full replay, said once.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::runner::{self, Checked, RunOptions, RunReport};
use crate::db::database::{Database, quote_ident, quote_literal};
use crate::db::temp;
use crate::error::{Error, Result};
use crate::snapshot;
use crate::version::Version;

/// What a ready template's comment starts with.
pub const COMMENT: &str = "git-hop template:";

/// The default of `hop.templateCache`.
pub const DEFAULT_LIMIT: usize = 4;

/// This clone's templates: whose they are and how many to keep.
#[derive(Clone, Debug)]
pub struct Cache {
    /// A hash of the clone's git folder and host.
    pub clone_id: String,
    pub limit: usize,
}

impl Cache {
    /// The cache of the clone whose git common folder is `git_dir`.
    pub fn for_clone(git_dir: &Path, limit: usize) -> Cache {
        let path = std::fs::canonicalize(git_dir).unwrap_or_else(|_| git_dir.to_path_buf());
        let mut h = Sha256::new();
        h.update(crate::owner::host_id().as_bytes());
        h.update([0]);
        h.update(path.as_os_str().as_encoded_bytes());
        Cache {
            clone_id: hex(&h.finalize())[..16].to_string(),
            limit,
        }
    }
}

/// A ready template on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub key: String,
    pub clone_id: String,
    /// Seconds since the epoch of its last use.
    pub used: u64,
    pub size: i64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn comment(key: &str, clone_id: &str) -> String {
    format!("{COMMENT} key={key} clone={clone_id} used={}", now())
}

fn parse(name: String, note: &str, size: i64) -> Option<Template> {
    let rest = note.strip_prefix(COMMENT)?;
    let mut t = Template {
        name,
        key: String::new(),
        clone_id: String::new(),
        used: 0,
        size,
    };
    for part in rest.split_whitespace() {
        if let Some(v) = part.strip_prefix("key=") {
            t.key = v.to_string();
        } else if let Some(v) = part.strip_prefix("clone=") {
            t.clone_id = v.to_string();
        } else if let Some(v) = part.strip_prefix("used=") {
            t.used = v.parse().unwrap_or(0);
        }
    }
    (!t.key.is_empty() && !t.clone_id.is_empty()).then_some(t)
}

/// The ready templates on `working`'s server, every clone's, with their
/// size.
pub fn list(working: &Database) -> Result<Vec<Template>> {
    ready(&mut working.connect_maintenance()?, true)
}

/// The ready templates; their size only when asked (it walks their files).
fn ready(c: &mut postgres::Client, sizes: bool) -> Result<Vec<Template>> {
    let size = if sizes {
        "pg_database_size(d.oid)"
    } else {
        "0::bigint"
    };
    let rows = c
        .query(
            &format!(
                "SELECT d.datname, shobj_description(d.oid, 'pg_database'), {size} \
                 FROM pg_database d WHERE starts_with(shobj_description(d.oid, 'pg_database'), $1)"
            ),
            &[&COMMENT],
        )
        .map_err(|e| crate::db::database::sql_error("cannot list the template databases", e))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            // A database dropped meanwhile has no size (NULL): never panic.
            let name: String = r.try_get(0).ok()?;
            let note: Option<String> = r.try_get(1).ok()?;
            let size: Option<i64> = r.try_get(2).ok()?;
            parse(name, note.as_deref().unwrap_or(""), size.unwrap_or(0))
        })
        .collect())
}

/// Drops this clone's templates; returns how many.
pub fn gc(working: &Database, cache: &Cache) -> Result<usize> {
    let mut n = 0;
    let mut c = working.connect_maintenance()?;
    for t in list(working)?
        .into_iter()
        .filter(|t| t.clone_id == cache.clone_id)
    {
        c.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&t.name)
        ))
        .map_err(|e| crate::db::database::sql_error(&format!("cannot drop {}", t.name), e))?;
        n += 1;
    }
    Ok(n)
}

/// The keys of a rebuild: `[snapshot, after patch 1, …, after patch head]`.
pub fn keys(
    root: &Path,
    production: &Version,
    release: &Version,
    checked: &Checked,
    head: usize,
    server_version: &str,
) -> Result<Vec<String>> {
    let shas: Vec<&str> = (0..head).map(|i| checked.sha256(i)).collect();
    Ok(chain(
        &snapshot_state(root, production)?,
        server_version,
        release,
        &shas,
    ))
}

/// The hash of the production snapshot's three files, before the server
/// version: read once, in the thread that owns the work tree.
fn snapshot_state(root: &Path, production: &Version) -> Result<Sha256> {
    let files = snapshot::files(root, production);
    let mut h = Sha256::new();
    h.update(b"git-hop snapshot\0");
    for f in [&files.schema, &files.data, &files.metadata] {
        match std::fs::read(f) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => h.update(b"-"),
            Err(e) => return Err(Error::io("cannot read", f, e)),
        }
    }
    Ok(h)
}

/// [`keys`] from the snapshot's hash and the patches' SHA-256.
fn chain(snapshot: &Sha256, server_version: &str, release: &Version, shas: &[&str]) -> Vec<String> {
    let mut h = snapshot.clone();
    h.update(server_version.as_bytes());
    let mut keys = vec![hex(&h.finalize())];
    for sha in shas {
        let mut h = Sha256::new();
        h.update(keys[keys.len() - 1].as_bytes());
        h.update(release.to_string().as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
        keys.push(hex(&h.finalize()));
    }
    keys
}

/// A database copied ahead from a template (docs/engine.md, "Fast
/// rebuilds"): `merge` starts the copy of its validation database as soon
/// as the release commit is checked out, and git merges, commits and
/// checks meanwhile; `apply` starts a copy beside the working database as
/// soon as it knows the release, and checks and lints the patch
/// meanwhile. The rebuild takes the copy when it holds the template the
/// rebuild would copy (same key: same snapshot, same staged patches, same
/// server), and copies again otherwise. Dropped, it waits for the copy to
/// end, then drops the database.
pub struct Prepared {
    // Declared first: dropped (the copy joined) before `temp` is dropped.
    copy: Copying,
    temp: temp::TempDatabase,
}

struct Copying(Option<std::thread::JoinHandle<Option<String>>>);

impl Drop for Copying {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

impl Prepared {
    /// Starts copying into `temp` (not created yet) the template of the
    /// longest prefix of the staged patches whose SHA-256 are `shas` (the
    /// cacheable part of the release's staged head in `root`) that this
    /// clone has; nothing when it has none, or when the server refuses
    /// (the rebuild then says why).
    pub fn start(
        temp: temp::TempDatabase,
        cache: &Cache,
        root: &Path,
        production: &Version,
        release: &Version,
        shas: Vec<String>,
    ) -> Result<Prepared> {
        let state = snapshot_state(root, production)?;
        let target = Database {
            source: temp.db.source,
            params: temp.db.params.clone(),
            cluster: temp.db.cluster.clone(),
            note: temp.db.note.clone(),
        };
        let (cache, release) = (cache.clone(), release.clone());
        let copy = std::thread::spawn(move || {
            let mut c = target.connect_maintenance().ok()?;
            let (_, true, server) = role_and_server(&mut c).ok()? else {
                return None;
            };
            let shas: Vec<&str> = shas.iter().map(String::as_str).collect();
            let keys = chain(&state, &server, &release, &shas);
            let ours = ready(&mut c, false).ok()?;
            let (key, name) = keys.iter().rev().find_map(|k| {
                ours.iter()
                    .find(|t| t.clone_id == cache.clone_id && &t.key == k)
                    .map(|t| (k.clone(), t.name.clone()))
            })?;
            // (Leftovers are swept by the rebuild, on its own connection,
            // while this copies: the rebuild waits for the copy.)
            target.create_via(&mut c, Some(&name)).ok()?;
            Some(key)
        });
        Ok(Prepared {
            copy: Copying(Some(copy)),
            temp,
        })
    }

    /// Waits for the copy: the database, and the key of the template it
    /// holds a copy of (`None`: not created).
    pub fn finish(self) -> (temp::TempDatabase, Option<String>) {
        let Prepared { mut copy, temp } = self;
        let key = copy.0.take().and_then(|h| h.join().ok().flatten());
        (temp, key)
    }
}

/// What a rebuild from templates finds copied ahead ([`Prepared`]).
pub enum Ahead {
    Nothing,
    /// The target is itself a copy of the template of this key: a merge's
    /// validation database, copied while git merged.
    Target(String),
    /// A copy beside the target, which takes the target's place when it
    /// holds the template the rebuild copies: `apply`'s working database.
    Beside(Box<Prepared>),
}

/// How many leading patches of `checked` a template may hold: the first
/// `staged` ones, up to the first with a Python step.
pub fn cacheable(checked: &Checked, staged: usize) -> usize {
    (0..staged.min(checked.len()))
        .find(|&i| checked.has_python(i))
        .unwrap_or(staged.min(checked.len()))
}

/// Why templates could not serve: said once, then the caller replays.
pub struct Fallback(pub String);

/// Creates `target` (dropped first when it exists) as a copy of the
/// template holding the snapshot and the first `head` patches of
/// `checked`, building what is missing; `ahead`: what was copied ahead
/// ([`Prepared`]), used when it holds the template to copy. `Ok(Err(Fallback))` when the server
/// would not create or copy a template (the target is left as it was); an
/// `Err` is a failure of the snapshot or a staged patch itself.
#[allow(clippy::too_many_arguments)]
pub fn create_from_template(
    target: &Database,
    cache: &Cache,
    root: &Path,
    production: &Version,
    release: &Version,
    checked: &Checked,
    head: usize,
    ahead: Ahead,
    extra_env: &[(String, String)],
    out: &mut dyn Write,
) -> Result<std::result::Result<RunReport, Fallback>> {
    // One maintenance connection for every step but the replays (a
    // connection costs a backend start).
    let mut c = match target.connect_maintenance() {
        Ok(c) => c,
        Err(e) => return Ok(Err(Fallback(e.message))),
    };
    // Before anything else: without CREATEDB, the copy would drop the
    // target and then fail to create it again.
    let server_version = match role_and_server(&mut c) {
        Ok((_, true, v)) => v,
        Ok((role, false, _)) => {
            return Ok(Err(Fallback(format!(
                "role {role} may not create databases"
            ))));
        }
        Err(e) => return Ok(Err(Fallback(e.message))),
    };
    let keys = keys(root, production, release, checked, head, &server_version)?;
    temp::drop_stale_via(&mut c);
    let ours: Vec<Template> = match ready(&mut c, false) {
        Ok(l) => l
            .into_iter()
            .filter(|t| t.clone_id == cache.clone_id)
            .collect(),
        Err(e) => return Ok(Err(Fallback(e.message))),
    };
    // The longest prefix that has a template.
    let found = (0..keys.len()).rev().find_map(|i| {
        ours.iter()
            .find(|t| t.key == keys[i])
            .map(|t| (i, t.clone()))
    });
    let mut made = Vec::new();
    let mut used = None;
    let (mut have, mut source) = match found {
        Some((i, t)) => (i, t.name),
        None => {
            let started = std::time::Instant::now();
            let tpl = match new_template(&mut c, target, cache, None) {
                Ok(t) => t,
                Err(e) => return Ok(Err(Fallback(e.message))),
            };
            if let Err(e) = snapshot::load(&tpl.params, root, production) {
                let _ = tpl.drop_via(&mut c);
                return Err(e);
            }
            if let Err(e) = mark(&mut c, tpl.name(), &keys[0], cache) {
                let _ = tpl.drop_via(&mut c);
                return Ok(Err(Fallback(e.message)));
            }
            let _ = writeln!(
                out,
                "template {}: production snapshot {production} ({} ms, made once)",
                tpl.name(),
                started.elapsed().as_millis()
            );
            made.push(tpl.name().to_string());
            (0, tpl.name().to_string())
        }
    };
    // Where the target's own run starts, and what is built beside it.
    let (mut from, mut meanwhile) = (head, String::new());
    if have < head && target.note.is_some() {
        // A temporary target (a validation's): copied from the template of
        // the first `have` patches, the rest run on it; the template of the
        // whole head, for the next apply and merge, is made meanwhile in
        // the background, while the command generates code, runs tests and
        // publishes. (The working database is made only from a ready
        // template, so that a staged patch failing while its template is
        // built leaves it as it was.)
        let name = template_name(cache);
        build_later(
            name.clone(),
            target,
            cache,
            root,
            release,
            checked.part(have..head),
            keys[head].clone(),
            source.clone(),
            extra_env,
        );
        meanwhile = format!("; template {name} of the staged head is made meanwhile");
        from = have;
    } else if have < head {
        let started = std::time::Instant::now();
        let tpl = match new_template(&mut c, target, cache, Some(&source)) {
            Ok(t) => t,
            Err(e) => return Ok(Err(Fallback(e.message))),
        };
        let _ = writeln!(
            out,
            "template {}: the staged head ({} patch(es) on the template of {have})",
            tpl.name(),
            head - have
        );
        let run = runner::run_checked(
            &tpl.params,
            release,
            &checked.part(have..head),
            RunOptions {
                root,
                extra_env: extra_env.to_vec(),
                out,
            },
        );
        if let Err(e) = run {
            let _ = tpl.drop_via(&mut c);
            return Err(e);
        }
        if let Err(e) = mark(&mut c, tpl.name(), &keys[head], cache) {
            let _ = tpl.drop_via(&mut c);
            return Ok(Err(Fallback(e.message)));
        }
        let _ = writeln!(
            out,
            "template {}: {} ms, made once",
            tpl.name(),
            started.elapsed().as_millis()
        );
        made.push(tpl.name().to_string());
        have = head;
        source = tpl.name().to_string();
    } else {
        // Records the use, for the least-recently-used bound, once the copy
        // is made: a comment on the template waits for a copy of it to end
        // (the one made ahead, say).
        used = Some((source.clone(), keys[have].clone()));
    }
    debug_assert!(have == head || from == have);
    // Recreates the target as a copy, unless it is one already
    // ([`Prepared`]).
    let (copied, beside) = match ahead {
        Ahead::Nothing => (None, None),
        Ahead::Target(key) => (Some(key), None),
        Ahead::Beside(p) => (None, Some(*p)),
    };
    let mut ahead = copied.as_deref() == Some(keys[have].as_str());
    if !ahead {
        match replace_by_copy(&mut c, target, &source, &keys[have], beside) {
            Ok(used) => ahead = used,
            Err(e) => return Ok(Err(Fallback(e.message))),
        }
    }
    let _ = writeln!(
        out,
        "database {}: copied from template {source} (production snapshot {production}{}){}{meanwhile}",
        target.name(),
        match from {
            0 => String::new(),
            n => format!(" and {n} staged patch(es)"),
        },
        if ahead { ", ahead" } else { "" }
    );
    let run = run_rest(target, release, checked, from, root, extra_env, out).map(Ok);
    evict_later(c, cache, made, used);
    run
}

/// Drops `target` and creates it again as a copy of template `source`
/// (whose key is `key`). A temporary target (nobody else's) is dropped,
/// then copied. The working database is copied under a temporary name
/// (or was, ahead: `beside`, when it holds `key`) while a second
/// connection drops it, then the copy is renamed in its place, in one
/// transaction with the removal of its temporary mark: the drop costs no
/// time, and a killed run leaves either the old database, or none (the
/// next `apply` makes it), beside a marked copy a later run sweeps.
/// Returns whether `beside` was the copy.
fn replace_by_copy(
    c: &mut postgres::Client,
    target: &Database,
    source: &str,
    key: &str,
    beside: Option<Prepared>,
) -> Result<bool> {
    if target.note.is_some() {
        target.drop_via(c)?;
        return target.create_via(c, Some(source)).map(|()| false);
    }
    let old = Database {
        source: target.source,
        params: target.params.clone(),
        cluster: target.cluster.clone(),
        note: None,
    };
    let dropping = std::thread::spawn(move || old.drop_via(&mut old.connect_maintenance()?));
    // A copy of another template (or none) is dropped, in the background.
    let (copy, made, used) = match beside.map(Prepared::finish) {
        Some((copy, Some(k))) if k == key => (copy, Ok(()), true),
        _ => {
            let copy = temp::TempDatabase::unswept(target, "copy");
            let made = copy.db.create_via(c, Some(source));
            (copy, made, false)
        }
    };
    let dropped = dropping
        .join()
        .unwrap_or_else(|_| Err(Error::new("the drop of the old database stopped")));
    made?;
    dropped?;
    c.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}; COMMENT ON DATABASE {} IS NULL",
        quote_ident(copy.db.name()),
        quote_ident(target.name()),
        quote_ident(target.name()),
    ))
    .map_err(|e| {
        crate::db::database::sql_error(&format!("cannot rename the copy to {}", target.name()), e)
    })
    .map(|()| used)
    // `copy` is dropped now: a drop of a database that no longer has its
    // name, done meanwhile by the server (and nothing on a failure path
    // but the copy).
}

/// Runs `checked[from..]` on `target` (the current patch, and for a
/// temporary target the part of the head being made into a template too).
fn run_rest(
    target: &Database,
    release: &Version,
    checked: &Checked,
    from: usize,
    root: &Path,
    extra_env: &[(String, String)],
    out: &mut dyn Write,
) -> Result<RunReport> {
    if from == checked.len() {
        return Ok(RunReport {
            patches: Vec::new(),
            total: std::time::Duration::ZERO,
        });
    }
    runner::run_checked(
        &target.params,
        release,
        &checked.part(from..checked.len()),
        RunOptions {
            root,
            extra_env: extra_env.to_vec(),
            out,
        },
    )
}

/// Makes, in the background ([`crate::background`]), template `name` of
/// `key`: a copy of template `source` with `rest` run on it, marked ready,
/// then this clone's oldest evicted. Best effort: a build that fails (the
/// same patches fail on the target, which reports it) drops its database;
/// a killed one is swept like any temporary database.
#[allow(clippy::too_many_arguments)]
fn build_later(
    name: String,
    target: &Database,
    cache: &Cache,
    root: &Path,
    release: &Version,
    rest: Checked,
    key: String,
    source: String,
    extra_env: &[(String, String)],
) {
    let server = Database {
        source: target.source,
        params: target.params.clone(),
        cluster: target.cluster.clone(),
        note: None,
    };
    let (target, cache, root, release, env) = (
        server,
        cache.clone(),
        root.to_path_buf(),
        release.clone(),
        extra_env.to_vec(),
    );
    crate::background::spawn(move || {
        let Ok(mut c) = target.connect_maintenance() else {
            return;
        };
        let Ok(tpl) = new_template_named(&mut c, &target, Some(&source), name) else {
            return;
        };
        let mut quiet = Vec::new();
        let built = runner::run_checked(
            &tpl.params,
            &release,
            &rest,
            RunOptions {
                root: &root,
                extra_env: env,
                out: &mut quiet,
            },
        )
        .and_then(|_| mark(&mut c, tpl.name(), &key, &cache));
        match built {
            Ok(()) => evict(&mut c, &cache, &[tpl.name().to_string()]),
            Err(_) => {
                let _ = tpl.drop_via(&mut c);
            }
        }
    });
}

/// The connected role, whether it may create databases (CREATEDB or a
/// superuser), and the server version, in one round trip.
fn role_and_server(c: &mut postgres::Client) -> Result<(String, bool, String)> {
    let row = c
        .query_one(
            "SELECT current_user::text, \
             coalesce((SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user), false), \
             current_setting('server_version_num')",
            &[],
        )
        .map_err(|e| crate::db::database::sql_error("cannot read the role and server version", e))?;
    match (row.try_get(0), row.try_get(1), row.try_get(2)) {
        (Ok(r), Ok(may), Ok(v)) => Ok((r, may, v)),
        _ => Err(Error::new("cannot read the role and server version")),
    }
}

/// A new, empty (or copied from `from`) database to become a template,
/// with a temporary database's comment until it is ready.
fn new_template(
    c: &mut postgres::Client,
    working: &Database,
    cache: &Cache,
    from: Option<&str>,
) -> Result<Database> {
    // Not named after the working database: a template serves every
    // database of this clone.
    new_template_named(c, working, from, template_name(cache))
}

/// A new template's name: `hop_tpl_<clone>_<random>`.
fn template_name(cache: &Cache) -> String {
    format!(
        "hop_tpl_{}_{}",
        &cache.clone_id[..8],
        crate::owner::random_hex()
    )
}

/// [`new_template`] named `name`.
fn new_template_named(
    c: &mut postgres::Client,
    working: &Database,
    from: Option<&str>,
    name: String,
) -> Result<Database> {
    let db = Database {
        source: working.source,
        params: working.params.with_dbname(&name),
        cluster: working.cluster.clone(),
        note: Some(format!(
            "{} template {}",
            temp::COMMENT,
            crate::owner::Owner::me()
        )),
    };
    db.create_via(c, from)?;
    Ok(db)
}

/// Marks template `name` ready with `key` and now as its last use.
fn mark(c: &mut postgres::Client, name: &str, key: &str, cache: &Cache) -> Result<()> {
    c.batch_execute(&format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(name),
        quote_literal(&comment(key, &cache.clone_id))
    ))
    .map_err(|e| crate::db::database::sql_error("cannot mark the template", e))
}

/// [`evict`] on `c`, while the command goes on (code generation, tests):
/// the server drops the databases ([`crate::background`]). First records
/// the use of template `used` (name, key), if any; best effort.
fn evict_later(
    mut c: postgres::Client,
    cache: &Cache,
    keep: Vec<String>,
    used: Option<(String, String)>,
) {
    let cache = cache.clone();
    crate::background::spawn(move || {
        if let Some((name, key)) = used {
            let _ = mark(&mut c, &name, &key, &cache);
        }
        evict(&mut c, &cache, &keep)
    });
}

/// Keeps this clone's `limit` most recently used templates (never one just
/// made); best effort.
fn evict(c: &mut postgres::Client, cache: &Cache, keep: &[String]) {
    let Ok(all) = ready(c, false) else {
        return;
    };
    let mut ours: Vec<Template> = all
        .into_iter()
        .filter(|t| t.clone_id == cache.clone_id)
        .collect();
    if ours.len() <= cache.limit.max(1) {
        return;
    }
    ours.sort_by_key(|t| (keep.contains(&t.name), t.used));
    let excess = ours.len() - cache.limit.max(1);
    for t in ours.iter().take(excess) {
        if keep.contains(&t.name) {
            continue;
        }
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&t.name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_round_trip() {
        let note = comment("abc", "c1");
        let t = parse("n".into(), &note, 7).unwrap();
        assert_eq!(
            (t.key.as_str(), t.clone_id.as_str(), t.size),
            ("abc", "c1", 7)
        );
        assert!(t.used > 0);
        assert!(parse("n".into(), "git-hop temporary database: x", 0).is_none());
        assert!(parse("n".into(), "git-hop template: clone=c1", 0).is_none());
    }

    #[test]
    fn a_new_snapshot_or_a_changed_staged_patch_gives_a_new_key() {
        use crate::patch_id::PatchId;
        use runner::PatchToRun;
        let root = tempfile::tempdir().unwrap();
        let v: Version = "0.1.0".parse().unwrap();
        let r: Version = "0.2.0".parse().unwrap();
        snapshot::write(root.path(), &v, "schema", "data", "meta").unwrap();
        let patch = root.path().join("Patches/1-a");
        std::fs::create_dir_all(&patch).unwrap();
        std::fs::write(patch.join("01.sql"), "CREATE TABLE a (id int);\n").unwrap();
        let to_run = [PatchToRun {
            id: PatchId::parse("1-a").unwrap(),
            dir: patch.clone(),
        }];
        let keys_now = || {
            let checked = runner::check(&to_run, root.path()).unwrap();
            keys(root.path(), &v, &r, &checked, 1, "150018").unwrap()
        };
        let first = keys_now();
        assert_eq!(first.len(), 2);
        assert_eq!(first, keys_now(), "keys are stable");
        let checked = runner::check(&to_run, root.path()).unwrap();
        let other_server = keys(root.path(), &v, &r, &checked, 1, "160004").unwrap();
        assert_ne!(first[0], other_server[0]);
        std::fs::write(patch.join("01.sql"), "CREATE TABLE a (id bigint);\n").unwrap();
        let edited = keys_now();
        assert_eq!(edited[0], first[0], "the snapshot's key stays");
        assert_ne!(edited[1], first[1], "an edited staged patch: a new head");
        snapshot::write(root.path(), &v, "schema2", "data", "meta").unwrap();
        let resnap = keys_now();
        assert_ne!(resnap[0], first[0]);
        assert_ne!(resnap[1], edited[1]);
        // A Python step ends what can be cached.
        std::fs::write(patch.join("02.py"), "print(1)\n").unwrap();
        let checked = runner::check(&to_run, root.path()).unwrap();
        assert_eq!(cacheable(&checked, 1), 0);
    }

    #[test]
    fn clone_ids_differ_by_folder() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ca = Cache::for_clone(a.path(), 4);
        assert_eq!(ca.clone_id, Cache::for_clone(a.path(), 4).clone_id);
        assert_ne!(ca.clone_id, Cache::for_clone(b.path(), 4).clone_id);
        assert_eq!(ca.clone_id.len(), 16);
    }
}
