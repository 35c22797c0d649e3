//! A patch folder (docs/patches.md): which files it holds and in which
//! order they run ([`steps`]), its SHA-256 ([`patch_sha256`]), and the
//! checks made on it before any database is touched ([`check`]): regular
//! files only, and no statement or psql meta-command that would let a
//! patch control its own session (see [`scan`]). Rebuilds, validations and
//! upgrades all read patch folders through this module, so what an
//! upgrade would refuse, `apply` refuses first.

use std::fs;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sql_lexer::{Lexer, is_ident_byte};

/// The first line that makes a SQL file run outside a transaction.
pub const NO_TRANSACTION_MARK: &str = "-- hop: no-transaction";

/// The file of a patch folder that is not a step.
pub const README: &str = "README.md";

/// What kind of step a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `no_transaction`: the first line is exactly `-- hop: no-transaction`
    /// (trailing white space, CR and a leading UTF-8 BOM ignored).
    Sql {
        no_transaction: bool,
    },
    Python,
}

/// One file of a patch folder, in run order: `*.sql` in lexicographic order
/// (of the bytes of the names), then `*.py` in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Absolute.
    pub path: PathBuf,
    /// The file name.
    pub name: String,
    pub kind: StepKind,
}

impl Step {
    /// Runs outside the patch's transaction (Python, or a no-transaction SQL file).
    pub fn outside_transaction(&self) -> bool {
        !matches!(
            self.kind,
            StepKind::Sql {
                no_transaction: false
            }
        )
    }
}

/// Lists a patch folder's steps in run order. The folder holds regular
/// files only: a symbolic link (wherever it points: git stores only the
/// link, so another host would run something else), a subfolder, a FIFO
/// (reading it would hang), a socket or a device is refused, as is any file
/// other than `*.sql`, `*.py` and `README.md`, with an error naming it.
/// Nothing is opened before every entry passed.
pub fn steps(patch_dir: &Path) -> Result<Vec<Step>> {
    steps_in(patch_dir, Folder::Patch)
}

/// Which kind of folder a step list is read from, for the messages: a patch
/// folder, or the seed folder (docs/patches.md, "Seed data"), which follows
/// the same rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folder {
    Patch,
    Seed,
}

impl Folder {
    fn label(self) -> &'static str {
        match self {
            Folder::Patch => "patch folder",
            Folder::Seed => "seed folder",
        }
    }
}

fn steps_in(patch_dir: &Path, folder: Folder) -> Result<Vec<Step>> {
    let label = folder.label();
    let dir = std::path::absolute(patch_dir)
        .map_err(|e| Error::io("cannot read the patch folder", patch_dir, e))?;
    let entries =
        fs::read_dir(&dir).map_err(|e| Error::io("cannot read the patch folder", &dir, e))?;
    let mut sql = Vec::new();
    let mut py = Vec::new();
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot read the patch folder", &dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(Error::new(format!(
                "unexpected file {} in {label} {}: its name is not valid UTF-8",
                path.display(),
                dir.display()
            ))
            .hint("rename or remove it"));
        };
        // The entry itself, never what a link points at.
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        let kind = meta.file_type();
        let what = if kind.is_symlink() {
            Some("a symbolic link")
        } else if kind.is_dir() {
            Some("a folder")
        } else if !kind.is_file() {
            Some("not a regular file (a FIFO, socket or device)")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Error::new(format!(
                "unexpected {name} in {label} {}: {what}; a {label} holds regular files only (*.sql, *.py, README.md)",
                dir.display()
            ))
            .hint(format!(
                "replace {} with a regular file committed in the patch (git stores only a link's target path, so another host would run something else)",
                path.display()
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::new(format!(
                "unexpected file {:?} in {label} {}: its name holds control characters",
                name,
                dir.display()
            ))
            .hint("rename it"));
        }
        names.push((name, path));
    }
    for (name, path) in names {
        if name == README {
            continue;
        }
        if name.ends_with(".sql") && name.len() > 4 {
            let no_transaction = first_line_is_no_transaction(&path)?;
            sql.push(Step {
                path,
                name,
                kind: StepKind::Sql { no_transaction },
            });
        } else if name.ends_with(".py") && name.len() > 3 {
            py.push(Step {
                path,
                name,
                kind: StepKind::Python,
            });
        } else {
            return Err(Error::new(format!(
                "unexpected file {name} in {label} {}: a {label} holds only *.sql, *.py and README.md",
                dir.display()
            ))
            .hint(format!(
                "remove {} or rename it to *.sql or *.py",
                path.display()
            )));
        }
    }
    sql.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    py.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    sql.extend(py);
    Ok(sql)
}

fn first_line_is_no_transaction(path: &Path) -> Result<bool> {
    let file = fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut first = Vec::new();
    // The mark is short: no need to read a long first line to its end.
    BufReader::new(file)
        .take(4096)
        .read_until(b'\n', &mut first)
        .map_err(|e| Error::io("cannot read", path, e))?;
    let line = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&first);
    let line = String::from_utf8_lossy(line);
    Ok(line.trim_end() == NO_TRANSACTION_MARK)
}

/// SHA-256 (lower-case hex) of a patch: over its steps in run order, for each
/// the file name, a NUL byte, the length of the normalized content in
/// decimal, a NUL byte and the normalized content (a leading UTF-8 BOM
/// dropped, CRLF folded to LF). `README.md` is not included: it describes the
/// patch and changes nothing in the database, so editing it is not drift.
/// Fails like [`steps`] on an unexpected file.
pub fn patch_sha256(patch_dir: &Path) -> Result<String> {
    sha256_of(&steps(patch_dir)?)
}

/// [`patch_sha256`], and whether the patch has a Python step: what names a
/// template (docs/engine.md) without checking the files' statements.
pub fn sha256_and_python(patch_dir: &Path) -> Result<(String, bool)> {
    let steps = steps(patch_dir)?;
    let python = steps.iter().any(|s| s.kind == StepKind::Python);
    Ok((sha256_of(&steps)?, python))
}

fn sha256_of(steps: &[Step]) -> Result<String> {
    let mut hasher = Sha256::new();
    for step in steps {
        let raw = fs::read(&step.path).map_err(|e| Error::io("cannot read", &step.path, e))?;
        hash_step(&mut hasher, step, &normalize(&raw));
    }
    Ok(hex(hasher))
}

/// One step's part of [`patch_sha256`].
fn hash_step(hasher: &mut Sha256, step: &Step, content: &[u8]) {
    hasher.update(step.name.as_bytes());
    hasher.update([0]);
    hasher.update(content.len().to_string().as_bytes());
    hasher.update([0]);
    hasher.update(content);
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Drops a leading UTF-8 BOM and folds CRLF to LF (borrowed when there is
/// nothing to fold).
fn normalize(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    if !body.contains(&b'\r') {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(body[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// A patch folder read and checked: its steps in run order and its SHA-256.
#[derive(Debug, Clone)]
pub struct PatchDir {
    pub steps: Vec<Step>,
    pub sha256: String,
    /// What of the session its SQL may change beyond settings: the next
    /// patch's session reset undoes only that (docs/engine.md).
    pub session: SessionUse,
}

/// What of a psql session a patch's SQL may change beyond its settings
/// (which every reset undoes), read from the words of its text in any
/// case, strings included (so `EXECUTE 'CREATE TEMP …'` counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionUse {
    /// Temporary objects (`temp`).
    pub temp: bool,
    /// The role or session authorization (`role`, `authorization`).
    pub role: bool,
    /// Prepared statements (`prepare`).
    pub prepare: bool,
    /// Cursors `WITH HOLD` (`cursor`, `declare`).
    pub cursor: bool,
    /// Notifications (`listen`).
    pub listen: bool,
    /// Session-level advisory locks (`advisory`).
    pub advisory: bool,
}

impl SessionUse {
    pub fn of(text: &str) -> SessionUse {
        let t = text.to_ascii_lowercase();
        SessionUse {
            temp: t.contains("temp"),
            role: t.contains("role") || t.contains("authorization"),
            prepare: t.contains("prepare"),
            cursor: t.contains("cursor") || t.contains("declare"),
            listen: t.contains("listen"),
            advisory: t.contains("advisory"),
        }
    }

    pub fn union(self, o: SessionUse) -> SessionUse {
        SessionUse {
            temp: self.temp || o.temp,
            role: self.role || o.role,
            prepare: self.prepare || o.prepare,
            cursor: self.cursor || o.cursor,
            listen: self.listen || o.listen,
            advisory: self.advisory || o.advisory,
        }
    }

    /// Everything (a session whose history is not known).
    pub fn all() -> SessionUse {
        SessionUse {
            temp: true,
            role: true,
            prepare: true,
            cursor: true,
            listen: true,
            advisory: true,
        }
    }
}

/// Reads patch folder `dir` and checks every file (see [`steps`] and
/// [`scan`]); errors show paths relative to `shown_root`.
pub fn check(dir: &Path, shown_root: &Path) -> Result<PatchDir> {
    check_in(dir, shown_root, Folder::Patch)
}

/// [`check`] of a folder of the given kind.
pub fn check_in(dir: &Path, shown_root: &Path, folder: Folder) -> Result<PatchDir> {
    let steps = steps_in(dir, folder)?;
    let mut session = SessionUse::default();
    // Each file read once, for its checks and the patch's SHA-256.
    let mut hasher = Sha256::new();
    for step in &steps {
        let raw = fs::read(&step.path).map_err(|e| Error::io("cannot read", &step.path, e))?;
        let content = normalize(&raw);
        hash_step(&mut hasher, step, &content);
        if let StepKind::Sql { no_transaction } = step.kind {
            let text = String::from_utf8_lossy(&content);
            session = session.union(SessionUse::of(&text));
            if let Some(f) = scan(&text, dir, no_transaction) {
                let shown = step
                    .path
                    .strip_prefix(shown_root)
                    .unwrap_or(&step.path)
                    .display()
                    .to_string();
                return Err(Error::new(format!(
                    "{shown}:{}: {} is not allowed in a patch",
                    f.line, f.what
                ))
                .hint(f.hint));
            }
        }
    }
    Ok(PatchDir {
        steps,
        sha256: hex(hasher),
        session,
    })
}

/// A statement or meta-command that a patch may not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// 1-based.
    pub line: usize,
    pub what: String,
    pub hint: String,
}

const TX_HINT: &str = "git-hop runs every patch in its own transaction (an upgrade runs all its releases in one): remove it; a statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY) goes in a file of its own whose first line is `-- hop: no-transaction`";

/// The first statement or psql meta-command of a patch file's `text` that
/// would let the patch control its session: transaction control (`BEGIN`,
/// `COMMIT`, `END`, `ROLLBACK` but `ROLLBACK TO SAVEPOINT`, `ABORT`,
/// `START TRANSACTION`, `PREPARE TRANSACTION`, `SET CONSTRAINTS ALL
/// IMMEDIATE`), and `\connect`, `\!`, `\q`, `\o`, `\w`, `\cd`, `\setenv`,
/// changes of `ON_ERROR_STOP` or `AUTOCOMMIT`, `\i` (`\ir` inside the patch
/// folder `dir` is allowed), `\g |command`, `\copy … program`. Strings,
/// quoted identifiers, dollar-quoted bodies and comments are skipped as
/// psql skips them; so are the `BEGIN ATOMIC … END` bodies of functions.
pub fn scan(text: &str, dir: &Path, no_transaction: bool) -> Option<Forbidden> {
    let mut lexer = Lexer::default();
    let mut stmt = Statement::default();
    let mut word = String::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bytes = line.as_bytes();
        let mut meta = None;
        word.clear();
        let mut last_code: Option<usize> = None;
        let mut found = None;
        lexer.feed(bytes, |i| {
            let b = bytes[i];
            if last_code.is_some_and(|l| l + 1 != i) {
                stmt.word(&word, n + 1);
                word.clear();
            }
            last_code = Some(i);
            if b == b'\\' {
                meta = Some(i);
                return false;
            }
            if is_ident_byte(b) {
                word.push(b as char);
                return true;
            }
            stmt.word(&word, n + 1);
            word.clear();
            match b {
                b'(' => stmt.parens += 1,
                b')' => stmt.parens = stmt.parens.saturating_sub(1),
                b';' if stmt.parens == 0 && stmt.depth == 0 => {
                    if found.is_none() {
                        found = stmt.forbidden(no_transaction);
                    }
                    stmt = Statement::default();
                }
                _ => {}
            }
            true
        });
        stmt.word(&word, n + 1);
        if found.is_some() {
            return found;
        }
        if let Some(i) = meta {
            if let Some(f) = stmt.forbidden(no_transaction) {
                return Some(f);
            }
            let rest = &line[i + 1..];
            if let Some(mut f) = meta_command(rest, dir) {
                f.line = n + 1;
                return Some(f);
            }
            if rest.starts_with('g') {
                stmt = Statement::default(); // \g and friends send the query
            }
        }
    }
    stmt.forbidden(no_transaction)
}

/// The words of the statement being read.
#[derive(Default)]
struct Statement {
    /// Its first words, upper case.
    words: Vec<String>,
    line: usize,
    /// `BEGIN` / `CASE` … `END` nesting inside a `CREATE` (SQL-standard
    /// function bodies hold `;`).
    depth: usize,
    parens: usize,
}

impl Statement {
    fn word(&mut self, w: &str, line: usize) {
        if w.is_empty() || w.as_bytes()[0].is_ascii_digit() || w.starts_with('$') {
            return;
        }
        if self.words.is_empty() {
            self.line = line;
        }
        // Compared without allocating: a data file is thousands of
        // statements of many words.
        if self.words.first().is_some_and(|f| f == "CREATE") {
            if w.eq_ignore_ascii_case("BEGIN") || w.eq_ignore_ascii_case("CASE") {
                self.depth += 1;
            } else if w.eq_ignore_ascii_case("END") {
                self.depth = self.depth.saturating_sub(1);
            }
        }
        if self.words.len() < 4 {
            self.words.push(w.to_ascii_uppercase());
        }
    }

    fn forbidden(&self, _no_transaction: bool) -> Option<Forbidden> {
        let mut first = [""; 4];
        for (slot, word) in first.iter_mut().zip(&self.words) {
            *slot = word;
        }
        let w = &first[..self.words.len().min(4)];
        let tx = |what: &str| {
            Some(Forbidden {
                line: self.line,
                what: what.to_string(),
                hint: TX_HINT.to_string(),
            })
        };
        match w {
            ["COMMIT", ..] => tx("COMMIT"),
            ["END", ..] => tx("END"),
            ["ABORT", ..] => tx("ABORT"),
            ["BEGIN", ..] => tx("BEGIN"),
            ["START", "TRANSACTION", ..] => tx("START TRANSACTION"),
            ["PREPARE", "TRANSACTION", ..] => tx("PREPARE TRANSACTION"),
            ["ROLLBACK", rest @ ..] if !rest.iter().take(2).any(|x| *x == "TO") => tx("ROLLBACK"),
            ["SET", "CONSTRAINTS", "ALL", "IMMEDIATE"] => Some(Forbidden {
                line: self.line,
                what: "SET CONSTRAINTS ALL IMMEDIATE".into(),
                hint: "it checks at once every deferred constraint of the transaction, git-hop's own guard included: name the constraints instead (SET CONSTRAINTS my_fk IMMEDIATE)".into(),
            }),
            _ => None,
        }
    }
}

/// Checks the psql meta-command `rest` (the text after its backslash, to
/// the end of the line) of a file of patch folder `dir`.
fn meta_command(rest: &str, dir: &Path) -> Option<Forbidden> {
    let rest = rest.trim_end_matches(['\n', '\r']);
    let name: String = match rest.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '+')
            .collect(),
        Some(c) => c.to_string(),
        None => return None,
    };
    let args = rest[name.len()..].trim();
    let no = |what: &str, hint: &str| {
        Some(Forbidden {
            line: 0,
            what: what.to_string(),
            hint: hint.to_string(),
        })
    };
    match name.as_str() {
        "c" | "connect" => no(
            &format!("\\{name}"),
            "a patch runs on the database git-hop connects to, in git-hop's session: remove it (a reconnection would commit what follows behind the upgrade's back)",
        ),
        "!" => no(
            "\\! (a shell command)",
            "psql ignores a shell command's exit status: put the work in a Python step (a *.py file of the patch), which git-hop runs, checks and records",
        ),
        "q" | "quit" => no(
            &format!("\\{name}"),
            "it would end the run and skip the rest of the patch: remove it",
        ),
        "o" | "out" | "w" | "write" => no(
            &format!("\\{name}"),
            "a patch must not write files on the host that runs it: remove it",
        ),
        "cd" | "setenv" => no(
            &format!("\\{name}"),
            "a patch must not change the psql process it runs in: remove it",
        ),
        "set" | "unset" => {
            let var = args.split_whitespace().next().unwrap_or("");
            if var == "ON_ERROR_STOP" || var == "AUTOCOMMIT" {
                no(
                    &format!("\\{name} {var}"),
                    "git-hop stops at the first error and runs the patch in its transaction: remove it",
                )
            } else {
                None
            }
        }
        "i" | "include" => no(
            &format!("\\{name}"),
            "\\i reads a path relative to where psql runs, which differs between a rebuild and an upgrade: use \\ir with a file of the patch folder",
        ),
        "ir" | "include_relative" => {
            let target = args
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('\'');
            if inside(dir, target) {
                None
            } else {
                no(
                    &format!("\\{name} {target}"),
                    "\\ir may include only a *.sql file of the patch's own folder (production gets nothing else)",
                )
            }
        }
        "g" | "gx" if args.starts_with('|') => no(
            &format!("\\{name} |"),
            "psql ignores a shell command's exit status: put the work in a Python step (a *.py file of the patch)",
        ),
        "copy"
            if args
                .to_ascii_lowercase()
                .split_whitespace()
                .any(|w| w == "program") =>
        {
            no(
                "\\copy … program",
                "a patch must not run programs on the host: load data with COPY … FROM stdin in the file, or use a Python step",
            )
        }
        _ => None,
    }
}

/// Whether `target` (relative, as `\ir` reads it) names a `*.sql` file
/// directly inside `dir`, lexically (the folder holds regular files only).
fn inside(dir: &Path, target: &str) -> bool {
    let p = Path::new(target);
    if p.is_absolute() || !target.ends_with(".sql") {
        return false;
    }
    let mut depth: i32 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
    }
    depth == 1 && dir.join(p).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str) -> Option<(usize, String)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("02_more.sql"), "SELECT 1;\n").unwrap();
        scan(text, dir.path(), false).map(|f| (f.line, f.what))
    }

    #[test]
    fn scan_finds_session_control_with_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("SELECT 1;\n\\connect other\n", 2, "\\connect"),
            ("\\c otherdb\n", 1, "\\c"),
            (
                "SELECT 1;\n\n  \\! touch /tmp/x\n",
                3,
                "\\! (a shell command)",
            ),
            ("\\q\nSELECT 1;\n", 1, "\\q"),
            ("\\o /tmp/out\n", 1, "\\o"),
            ("\\set ON_ERROR_STOP 0\n", 1, "\\set ON_ERROR_STOP"),
            ("\\unset AUTOCOMMIT\n", 1, "\\unset AUTOCOMMIT"),
            ("\\i /etc/x.sql\n", 1, "\\i"),
            ("\\ir ../other/x.sql\n", 1, "\\ir ../other/x.sql"),
            ("\\ir missing.sql\n", 1, "\\ir missing.sql"),
            ("CREATE TABLE a (x int);\nCOMMIT;\n", 2, "COMMIT"),
            ("insert into a values (1);\n  rollback ;\n", 2, "ROLLBACK"),
            ("SELECT 1; END;\n", 1, "END"),
            ("BEGIN;\nSELECT 1;\n", 1, "BEGIN"),
            ("START TRANSACTION;\n", 1, "START TRANSACTION"),
            ("PREPARE TRANSACTION 'x';\n", 1, "PREPARE TRANSACTION"),
            ("ABORT;\n", 1, "ABORT"),
            (
                "SELECT 1;\nSET CONSTRAINTS ALL IMMEDIATE;\n",
                2,
                "SET CONSTRAINTS ALL IMMEDIATE",
            ),
            ("SELECT 1;\n/* c */ COMMIT\n", 2, "COMMIT"),
            ("SELECT 1 \\g |cat\n", 1, "\\g |"),
            (
                "\\copy a from program 'cat /etc/passwd'\n",
                1,
                "\\copy … program",
            ),
        ];
        for (text, line, what) in cases {
            assert_eq!(first(text), Some((*line, what.to_string())), "{text:?}");
        }
    }

    #[test]
    fn scan_leaves_quoted_text_bodies_and_savepoints_alone() {
        let ok = [
            "SELECT 'COMMIT;\n\\connect x';\n",
            "-- COMMIT;\n/* ROLLBACK; */ SELECT 1;\n",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  COMMIT;\nEND $$;\n",
            "CREATE FUNCTION g() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN true THEN 1 END;\n  SELECT 2;\nEND;\nSELECT 1;\n",
            "SAVEPOINT s;\nROLLBACK TO SAVEPOINT s;\nROLLBACK TO s;\nRELEASE s;\n",
            "CREATE RULE r AS ON INSERT TO a DO ALSO (INSERT INTO b VALUES (1); INSERT INTO b VALUES (2));\n",
            "SET CONSTRAINTS a_fk IMMEDIATE;\n",
            "\\set x 1\n\\echo it's fine\n\\ir 02_more.sql\n\\ir ./02_more.sql\n",
            "SELECT \"COMMIT\" FROM t;\nDO $body$ BEGIN ROLLBACK; END $body$;\n",
            "CREATE TABLE ending (a int);\nSELECT a AS begin FROM ending;\n",
        ];
        for text in ok {
            assert_eq!(first(text), None, "{text:?}");
        }
    }
}
