//! Release files under `.hop/releases/` (docs/README.md):
//!
//! - `X.Y.Z-patches.toml`, a release in preparation ([`PatchesFile`]): a
//!   `[patches]` table mapping patch ids to `"candidate"` or `"staged"`, in
//!   application order; a hotfix release's file starts with the line `# HOTFIX`.
//! - `X.Y.Z-rcN.txt`, `X.Y.Z.txt`, `X.Y.Z-hotfixN.txt`, immutable snapshots
//!   ([`read_snapshot`], [`write_snapshot`]): one patch id per line.
//!
//! **Invariant** (docs/releases.md): the staged entries form the head of `[patches]`, in
//! the order they were merged; candidates follow. [`PatchesFile::load`] refuses
//! a file that breaks it, and every edit here keeps it.
//!
//! Edits go through `toml_edit`, so the user's comments, blank lines, key
//! quoting and order are kept; an unchanged file is written back byte for byte.
//! In `toml_edit`, the comment lines and blank lines **above** an entry belong
//! to that entry, as does a comment at the end of its line. Consequently:
//! - moving an entry ([`PatchesFile::mark_staged`], [`PatchesFile::add_candidate`]
//!   with `before`) moves those comments with it;
//! - removing an entry ([`PatchesFile::remove`]) drops them;
//! - comments after the last entry stay at the end of the table.
//!
//! `toml_edit` itself drops a byte order mark, turns CRLF into LF and adds a
//! missing final newline; [`PatchesFile`] puts the BOM and CRLF back when the
//! file had them, and writes an unchanged file exactly as it was read.
//!
//! Every write is atomic ([`write_atomic`]: a temporary file in the same
//! directory, then a rename).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Key, Table};

use crate::error::{self, Error, Result};
use crate::patch_id::PatchId;
use crate::version::Version;

/// Where the release files live, relative to the project root.
pub const RELEASES_DIR: &str = ".hop/releases";
/// Name of the table listing the patches.
const TABLE: &str = "patches";
/// First line of a hotfix release's file.
const HOTFIX_MARK: &str = "# HOTFIX";
const PATCHES_SUFFIX: &str = "-patches.toml";

/// `<root>/.hop/releases`.
pub fn releases_dir(root: &Path) -> PathBuf {
    root.join(RELEASES_DIR)
}

/// `<root>/.hop/releases/X.Y.Z-patches.toml` for the release `v` in preparation
/// (any `-rcN`/`-hotfixN` suffix of `v` is ignored: a hotfix in preparation is
/// the file of its base version with a `# HOTFIX` first line).
pub fn patches_path(root: &Path, v: &Version) -> PathBuf {
    releases_dir(root).join(format!("{}{PATCHES_SUFFIX}", v.base()))
}

/// [`patches_path`] relative to the work tree root, as git names it.
pub fn patches_rel(v: &Version) -> String {
    format!("{RELEASES_DIR}/{}{PATCHES_SUFFIX}", v.base())
}

/// `<root>/.hop/releases/<version>.txt`: `0.1.0-rc1.txt`, `0.1.0.txt`,
/// `0.1.0-hotfix1.txt`.
pub fn snapshot_path(root: &Path, v: &Version) -> PathBuf {
    releases_dir(root).join(format!("{v}.txt"))
}

/// The versions of the releases in preparation (the `X.Y.Z-patches.toml` files),
/// smallest first. No `.hop/releases` folder means none.
pub fn releases_in_preparation(root: &Path) -> Result<Vec<Version>> {
    let dir = releases_dir(root);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", &dir, e)),
    };
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(version) = name.strip_suffix(PATCHES_SUFFIX) else {
            continue;
        };
        match version.parse::<Version>() {
            Ok(v) if v.is_release() => versions.push(v),
            _ => {
                return Err(Error::new(format!(
                    "unexpected release file {}: expected X.Y.Z{PATCHES_SUFFIX}",
                    dir.join(&*name).display()
                ))
                .hint("rename or remove that file"));
            }
        }
    }
    versions.sort();
    Ok(versions)
}

/// The state of a patch in a release in preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchState {
    /// Listed in the release, not yet merged into `ho-release/X.Y.Z`.
    Candidate,
    /// Merged (validated) into `ho-release/X.Y.Z`.
    Staged,
}

impl PatchState {
    /// The TOML string: `"candidate"` or `"staged"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchState::Candidate => "candidate",
            PatchState::Staged => "staged",
        }
    }

    fn from_toml(s: &str) -> Option<PatchState> {
        match s {
            "candidate" => Some(PatchState::Candidate),
            "staged" => Some(PatchState::Staged),
            _ => None,
        }
    }
}

impl fmt::Display for PatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `path:line:col` of a span of `text` (just `path` without a span).
fn location(path: &Path, text: &str, span: Option<Range<usize>>) -> String {
    match span {
        Some(span) => {
            let (l, c) = error::line_col(text, span.start);
            format!("{}:{l}:{c}", path.display())
        }
        None => path.display().to_string(),
    }
}

/// A `.hop/releases/X.Y.Z-patches.toml` file, edited in place.
#[derive(Debug, Clone)]
pub struct PatchesFile {
    path: PathBuf,
    doc: DocumentMut,
    /// The text read, as long as nothing was changed.
    unchanged: Option<String>,
    /// The file started with a byte order mark.
    bom: bool,
    /// The file used CRLF line ends.
    crlf: bool,
}

impl PatchesFile {
    /// A new, empty release file (not written until [`PatchesFile::save`]):
    /// `[patches]\n`, preceded by `# HOTFIX\n` for a hotfix release.
    pub fn new_empty(path: impl Into<PathBuf>, hotfix: bool) -> PatchesFile {
        let mut table = Table::new();
        if hotfix {
            table.decor_mut().set_prefix(format!("{HOTFIX_MARK}\n"));
        }
        let mut doc = DocumentMut::new();
        doc.insert(TABLE, Item::Table(table));
        PatchesFile {
            path: path.into(),
            doc,
            unchanged: None,
            bom: false,
            crlf: false,
        }
    }

    /// Reads and checks a release file.
    pub fn load(path: impl Into<PathBuf>) -> Result<PatchesFile> {
        let path = path.into();
        let text = fs::read_to_string(&path).map_err(|e| {
            Error::io("cannot read", &path, e)
                .hint("check that the release file exists and is readable")
        })?;
        PatchesFile::parse(path, &text)
    }

    /// Checks the content `text` of the release file at `path` (e.g. read from
    /// another branch); `path` is used in messages and by [`PatchesFile::save`].
    ///
    /// Refused, with `file:line:col`: malformed TOML, no `[patches]` table, an
    /// invalid patch id, a value other than `"candidate"`/`"staged"`, a staged
    /// patch after a candidate.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<PatchesFile> {
        let path = path.into();
        let doc = toml_edit::Document::parse(text)
            .map_err(|e| error::toml_edit_error(&path, text, &e))?;
        let fix = format!("fix {}", path.display());
        let example = "e.g. [patches] then lines like \"42-add-users\" = \"candidate\"";
        let table = match doc.get(TABLE) {
            Some(Item::Table(t)) => t,
            Some(other) => {
                return Err(Error::new(format!(
                    "{}: 'patches' must be a [patches] table",
                    location(&path, text, other.span())
                ))
                .hint(format!("{fix}: {example}")));
            }
            None => {
                return Err(
                    Error::new(format!("{}: no [patches] table", path.display()))
                        .hint(format!("{fix}: {example}")),
                );
            }
        };
        let mut first_candidate: Option<&str> = None;
        for (id, item) in table.iter() {
            let key_span = table.key(id).and_then(Key::span);
            if let Err(e) = PatchId::parse(id) {
                let mut err = Error::new(format!(
                    "{}: {}",
                    location(&path, text, key_span),
                    e.message
                ));
                err.hint = e.hint;
                return Err(err);
            }
            let where_ = location(&path, text, item.span().or(key_span.clone()));
            let state = match item.as_str() {
                Some(s) => PatchState::from_toml(s).ok_or_else(|| {
                    Error::new(format!(
                        "{where_}: unknown state '{}' for patch {id}: expected \"candidate\" or \"staged\"",
                        s.escape_debug()
                    ))
                    .hint(format!("{fix}: each patch is \"candidate\" or \"staged\""))
                })?,
                None => {
                    return Err(Error::new(format!(
                        "{where_}: patch {id} must be set to the string \"candidate\" or \"staged\""
                    ))
                    .hint(format!("{fix}: e.g. \"{id}\" = \"candidate\"")));
                }
            };
            match (state, first_candidate) {
                (PatchState::Candidate, None) => first_candidate = Some(id),
                (PatchState::Staged, Some(candidate)) => {
                    return Err(Error::new(format!(
                        "{}: staged patch {id} comes after candidate {candidate}; \
                         staged patches must come first, in the order they were merged",
                        location(&path, text, key_span)
                    ))
                    .hint(format!("{fix}: move the line of {id} above the candidates")));
                }
                _ => {}
            }
        }
        Ok(PatchesFile {
            path,
            doc: doc.into_mut(),
            unchanged: Some(text.to_string()),
            bom: text.starts_with('\u{feff}'),
            crlf: text.contains("\r\n"),
        })
    }

    /// The file this came from and [`PatchesFile::save`] writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file's first line is `# HOTFIX` (a hotfix release).
    pub fn is_hotfix(&self) -> bool {
        let text = self.doc.to_string();
        text.lines()
            .next()
            .is_some_and(|l| l.trim_end() == HOTFIX_MARK)
    }

    fn table(&self) -> Option<&Table> {
        self.doc.get(TABLE).and_then(Item::as_table)
    }

    /// The table, for a change.
    fn table_mut(&mut self) -> Result<&mut Table> {
        self.unchanged = None;
        let path = self.path.display().to_string();
        self.doc
            .get_mut(TABLE)
            .and_then(Item::as_table_mut)
            .ok_or_else(|| Error::new(format!("{path}: no [patches] table")))
    }

    /// Every patch with its state, in file (= application) order.
    pub fn patches(&self) -> Vec<(String, PatchState)> {
        let Some(table) = self.table() else {
            return Vec::new();
        };
        table
            .iter()
            .filter_map(|(id, item)| {
                let state = item.as_str().and_then(PatchState::from_toml)?;
                Some((id.to_string(), state))
            })
            .collect()
    }

    fn with_state(&self, wanted: PatchState) -> Vec<String> {
        self.patches()
            .into_iter()
            .filter(|(_, s)| *s == wanted)
            .map(|(id, _)| id)
            .collect()
    }

    /// The staged patches, in order (the head of the file).
    pub fn staged(&self) -> Vec<String> {
        self.with_state(PatchState::Staged)
    }

    /// The candidates, in order.
    pub fn candidates(&self) -> Vec<String> {
        self.with_state(PatchState::Candidate)
    }

    /// The state of patch `id`, `None` when it is not listed.
    pub fn state(&self, id: &str) -> Option<PatchState> {
        let item = self.table()?.get(id)?;
        item.as_str().and_then(PatchState::from_toml)
    }

    fn not_listed(&self, id: &str) -> Error {
        Error::new(format!(
            "patch {id} is not listed in {}",
            self.path.display()
        ))
        .hint("check the patch id; `git hop-patch status` shows the patches of the release")
    }

    /// Adds `id` as a candidate, at the end or immediately before the candidate
    /// `before`. The key is quoted like the last key of the table (quoted when
    /// the table is empty).
    pub fn add_candidate(&mut self, id: &str, before: Option<&str>) -> Result<()> {
        PatchId::parse(id)?;
        if let Some(state) = self.state(id) {
            return Err(Error::new(format!(
                "patch {id} is already listed in {} (as {state})",
                self.path.display()
            ))
            .hint("choose another patch id"));
        }
        if let Some(other) = before {
            match self.state(other) {
                Some(PatchState::Candidate) => {}
                Some(PatchState::Staged) => {
                    return Err(Error::new(format!(
                        "cannot add {id} before {other}: {other} is already staged in {}",
                        self.path.display()
                    ))
                    .hint("new patches go after the staged ones; use --before with a candidate"));
                }
                None => {
                    return Err(Error::new(format!(
                        "cannot add {id} before {other}: {other} is not a candidate of {}",
                        self.path.display()
                    ))
                    .hint(format!("candidates: {}", list_or_none(&self.candidates()))));
                }
            }
        }
        let table = self.table_mut()?;
        let quoted = match table.iter().last() {
            Some((last, _)) => table
                .key(last)
                .and_then(Key::as_repr)
                .and_then(|r| r.as_raw().as_str())
                .is_none_or(|raw| raw.starts_with('"') || raw.starts_with('\'')),
            None => true,
        };
        let key = if quoted {
            format!("\"{id}\"")
                .parse::<Key>()
                .map_err(|e| Error::new(format!("cannot write patch id {id} as a TOML key: {e}")))?
        } else {
            Key::new(id)
        };
        table.insert_formatted(&key, toml_edit::value(PatchState::Candidate.as_str()));
        if let Some(other) = before {
            let mut order: Vec<String> = Vec::new();
            for (k, _) in table.iter() {
                if k == other {
                    order.push(id.to_string());
                }
                if k != id {
                    order.push(k.to_string());
                }
            }
            reorder(table, &order);
        }
        Ok(())
    }

    /// Marks candidate `id` staged and moves it to the end of the staged head
    /// (after the last staged patch, before the first candidate). Its comments
    /// (lines above it, end of its line) move with it. Refused when `id` is not
    /// listed or already staged (already validated patches are never reordered).
    pub fn mark_staged(&mut self, id: &str) -> Result<()> {
        match self.state(id) {
            Some(PatchState::Candidate) => {}
            Some(PatchState::Staged) => {
                return Err(Error::new(format!(
                    "patch {id} is already staged in {}",
                    self.path.display()
                ))
                .hint("a patch is merged only once; see `git hop-patch status`"));
            }
            None => return Err(self.not_listed(id)),
        }
        let mut order = self.staged();
        order.push(id.to_string());
        order.extend(self.candidates().into_iter().filter(|c| c != id));
        let table = self.table_mut()?;
        if let Some(value) = table.get_mut(id).and_then(Item::as_value_mut) {
            let decor = value.decor().clone();
            *value = PatchState::Staged.as_str().into();
            *value.decor_mut() = decor;
        }
        reorder(table, &order);
        Ok(())
    }

    /// Removes `id` and returns the state it had. The comment lines above it
    /// are removed with it.
    pub fn remove(&mut self, id: &str) -> Result<PatchState> {
        let state = self.state(id).ok_or_else(|| self.not_listed(id))?;
        self.table_mut()?.remove(id);
        Ok(state)
    }

    /// Writes the file atomically.
    pub fn save(&self) -> Result<()> {
        write_atomic(&self.path, self.to_string().as_bytes())
    }
}

/// The file's text, as [`PatchesFile::save`] writes it.
impl fmt::Display for PatchesFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = &self.unchanged {
            return f.write_str(text);
        }
        let mut text = self.doc.to_string();
        if self.crlf {
            text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        if self.bom {
            f.write_str("\u{feff}")?;
        }
        f.write_str(&text)
    }
}

/// Puts the entries of `table` in the order of `order` (stable sort, so each
/// entry keeps its key, value and decor; keys not in `order` go last).
fn reorder(table: &mut Table, order: &[String]) {
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let pos = |k: &Key| rank.get(k.get()).copied().unwrap_or(usize::MAX);
    table.sort_values_by(|k1, _, k2, _| pos(k1).cmp(&pos(k2)));
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_string()
    } else {
        ids.join(", ")
    }
}

/// Reads a `.txt` snapshot: one patch id per line; `#` starts a comment; blank
/// lines are ignored. An invalid or repeated id is an error naming `file:line`.
pub fn read_snapshot(path: &Path) -> Result<Vec<PatchId>> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::io("cannot read", path, e)
            .hint("check that the snapshot file exists and is readable")
    })?;
    parse_snapshot(path, &text)
}

/// [`read_snapshot`] on content already read (`path` is for messages).
pub fn parse_snapshot(path: &Path, text: &str) -> Result<Vec<PatchId>> {
    let mut ids: Vec<PatchId> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let where_ = format!("{}:{}", path.display(), n + 1);
        let id = PatchId::parse(content).map_err(|e| {
            let mut err = Error::new(format!("{where_}: {}", e.message));
            err.hint = Some(format!("fix {}: one patch id per line", path.display()));
            err
        })?;
        if ids.contains(&id) {
            return Err(Error::new(format!("{where_}: patch {id} is listed twice"))
                .hint(format!("fix {}: remove the repeated line", path.display())));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Writes a `.txt` snapshot atomically: the `header` lines as `# ` comments,
/// then one id per line. Invalid or repeated ids are refused.
pub fn write_snapshot(path: &Path, ids: &[String], header: Option<&str>) -> Result<()> {
    let mut text = String::new();
    if let Some(header) = header {
        for line in header.lines() {
            if line.starts_with('#') {
                text.push_str(line);
            } else if line.is_empty() {
                text.push('#');
            } else {
                text.push_str("# ");
                text.push_str(line);
            }
            text.push('\n');
        }
    }
    for (i, id) in ids.iter().enumerate() {
        PatchId::parse(id).map_err(|e| e.context(format!("cannot write {}", path.display())))?;
        if ids[..i].contains(id) {
            return Err(Error::new(format!(
                "cannot write {}: patch {id} is listed twice",
                path.display()
            ))
            .hint("a snapshot lists each patch once"));
        }
        text.push_str(id);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Replaces `path` with `contents` atomically: a temporary file in the same
/// directory (created if missing), synced, then renamed over `path`. A new
/// file gets mode 0644, an existing one keeps its mode.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let hint = "check the permissions and free space of that directory";
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e).hint(hint))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".hop-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create a temporary file in", dir, e).hint(hint))?;
    let write_err = |e| Error::io("cannot write", path, e).hint(hint);
    tmp.write_all(contents).map_err(write_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode)).map_err(write_err)?;
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path)
        .map_err(|e| Error::io("cannot write", path, e.error).hint(hint))?;
    Ok(())
}

/// The release in preparation (in the work tree at `root`) that lists
/// patch `id`, with its file.
pub fn find_patch(root: &Path, id: &str) -> Result<Option<(Version, PatchesFile)>> {
    for v in releases_in_preparation(root)? {
        let file = PatchesFile::load(patches_path(root, &v))?;
        if file.state(id).is_some() {
            return Ok(Some((v, file)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn parse(text: &str) -> Result<PatchesFile> {
        PatchesFile::parse("rel/0.1.0-patches.toml", text)
    }

    const SAMPLE: &str = "\
# HOTFIX
# Release notes for the team.

[patches]
# the auth work
\"1-users\" = \"staged\"   # merged first
'2-api' = 'staged'

# pending
\"3-reports\"  =  \"candidate\"  # needs review
\"4-export\" = \"candidate\"
# trailing comment
";

    fn ids(list: &[(String, PatchState)]) -> Vec<(&str, PatchState)> {
        list.iter().map(|(id, s)| (id.as_str(), *s)).collect()
    }

    #[test]
    fn reads_patches_in_order() {
        let f = parse(SAMPLE).unwrap();
        use PatchState::*;
        assert_eq!(
            ids(&f.patches()),
            [
                ("1-users", Staged),
                ("2-api", Staged),
                ("3-reports", Candidate),
                ("4-export", Candidate)
            ]
        );
        assert_eq!(f.staged(), ["1-users", "2-api"]);
        assert_eq!(f.candidates(), ["3-reports", "4-export"]);
        assert_eq!(f.state("2-api"), Some(Staged));
        assert_eq!(f.state("3-reports"), Some(Candidate));
        assert_eq!(f.state("9"), None);
        assert!(f.is_hotfix());
        assert!(!parse("[patches]\n").unwrap().is_hotfix());
        assert!(!parse("# HOTFIXES\n[patches]\n").unwrap().is_hotfix());
        assert!(!parse("\n# HOTFIX\n[patches]\n").unwrap().is_hotfix());
    }

    #[test]
    fn unchanged_file_round_trips_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            SAMPLE,
            "[patches]\n",
            "[patches]",
            "[patches]\n\"1\" = \"candidate\"",
            "\u{feff}[patches]\r\n\"1\" = \"candidate\"\r\n",
            "title = 'x'\n\n[patches] # list\n1 = \"staged\"\n\n[other]\na = 1\n",
        ] {
            let path = dir.path().join("0.1.0-patches.toml");
            fs::write(&path, text).unwrap();
            let f = PatchesFile::load(&path).unwrap();
            assert_eq!(f.to_string(), text);
            f.save().unwrap();
            assert_eq!(fs::read(&path).unwrap(), text.as_bytes());
        }
    }

    #[test]
    fn edits_keep_bom_and_crlf() {
        let mut f = parse("\u{feff}# HOTFIX\r\n[patches]\r\n\"1\" = \"candidate\"").unwrap();
        assert!(f.is_hotfix());
        f.add_candidate("2", None).unwrap();
        f.mark_staged("1").unwrap();
        assert_eq!(
            f.to_string(),
            "\u{feff}# HOTFIX\r\n[patches]\r\n\"1\" = \"staged\"\r\n\"2\" = \"candidate\"\r\n"
        );
        let mut f = parse("[patches]").unwrap();
        f.add_candidate("2", None).unwrap();
        assert_eq!(f.to_string(), "[patches]\n\"2\" = \"candidate\"\n");
    }

    #[test]
    fn new_empty_files() {
        let f = PatchesFile::new_empty("x-patches.toml", false);
        assert_eq!(f.to_string(), "[patches]\n");
        assert!(!f.is_hotfix());
        assert!(f.patches().is_empty());
        let f = PatchesFile::new_empty("x-patches.toml", true);
        assert_eq!(f.to_string(), "# HOTFIX\n[patches]\n");
        assert!(f.is_hotfix());
        let again = parse(&f.to_string()).unwrap();
        assert!(again.is_hotfix());
    }

    #[test]
    fn mark_staged_moves_the_entry_with_its_comments() {
        let mut f = parse(SAMPLE).unwrap();
        f.mark_staged("4-export").unwrap();
        assert_eq!(f.staged(), ["1-users", "2-api", "4-export"]);
        assert_eq!(f.candidates(), ["3-reports"]);
        assert_eq!(
            f.to_string(),
            "\
# HOTFIX
# Release notes for the team.

[patches]
# the auth work
\"1-users\" = \"staged\"   # merged first
'2-api' = 'staged'
\"4-export\" = \"staged\"

# pending
\"3-reports\"  =  \"candidate\"  # needs review
# trailing comment
"
        );
        f.mark_staged("3-reports").unwrap();
        assert_eq!(f.staged(), ["1-users", "2-api", "4-export", "3-reports"]);
        assert!(
            f.to_string()
                .contains("\n# pending\n\"3-reports\"  =  \"staged\"  # needs review\n")
        );
        // The result is still a valid file (staged head).
        parse(&f.to_string()).unwrap();
    }

    #[test]
    fn mark_staged_of_the_first_candidate_keeps_order() {
        let text = "[patches]\n\"1\" = \"staged\"\n\"2\" = \"candidate\"\n\"3\" = \"candidate\"\n";
        let mut f = parse(text).unwrap();
        f.mark_staged("2").unwrap();
        assert_eq!(
            f.to_string(),
            "[patches]\n\"1\" = \"staged\"\n\"2\" = \"staged\"\n\"3\" = \"candidate\"\n"
        );
    }

    #[test]
    fn mark_staged_refusals() {
        let mut f = parse(SAMPLE).unwrap();
        let e = f.mark_staged("1-users").unwrap_err();
        assert!(e.message.contains("already staged"), "{}", e.message);
        let e = f.mark_staged("9-nope").unwrap_err();
        assert!(
            e.message
                .contains("9-nope is not listed in rel/0.1.0-patches.toml"),
            "{}",
            e.message
        );
        assert_eq!(f.to_string(), SAMPLE);
    }

    #[test]
    fn add_candidate_at_end_and_before() {
        let mut f = parse(SAMPLE).unwrap();
        f.add_candidate("5-new", None).unwrap();
        f.add_candidate("6-first", Some("3-reports")).unwrap();
        f.add_candidate("7-mid", Some("4-export")).unwrap();
        assert_eq!(
            f.candidates(),
            ["6-first", "3-reports", "7-mid", "4-export", "5-new"]
        );
        assert_eq!(
            f.to_string(),
            "\
# HOTFIX
# Release notes for the team.

[patches]
# the auth work
\"1-users\" = \"staged\"   # merged first
'2-api' = 'staged'
\"6-first\" = \"candidate\"

# pending
\"3-reports\"  =  \"candidate\"  # needs review
\"7-mid\" = \"candidate\"
\"4-export\" = \"candidate\"
\"5-new\" = \"candidate\"
# trailing comment
"
        );
        parse(&f.to_string()).unwrap();
    }

    #[test]
    fn add_candidate_follows_quoting_style() {
        let mut f = PatchesFile::new_empty("p.toml", false);
        f.add_candidate("1-a", None).unwrap();
        assert_eq!(f.to_string(), "[patches]\n\"1-a\" = \"candidate\"\n");
        let mut f = parse("[patches]\n1-a = \"staged\"\n").unwrap();
        f.add_candidate("2-b", None).unwrap();
        assert_eq!(
            f.to_string(),
            "[patches]\n1-a = \"staged\"\n2-b = \"candidate\"\n"
        );
    }

    #[test]
    fn add_candidate_refusals() {
        let mut f = parse(SAMPLE).unwrap();
        let e = f.add_candidate("3-reports", None).unwrap_err();
        assert!(
            e.message.contains("already listed") && e.message.contains("candidate"),
            "{}",
            e.message
        );
        let e = f.add_candidate("1-users", None).unwrap_err();
        assert!(e.message.contains("as staged"), "{}", e.message);
        let e = f.add_candidate("8", Some("2-api")).unwrap_err();
        assert!(
            e.message.contains("2-api is already staged"),
            "{}",
            e.message
        );
        let e = f.add_candidate("8", Some("9")).unwrap_err();
        assert!(e.message.contains("9 is not a candidate"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("candidates: 3-reports, 4-export"));
        let e = f.add_candidate("8-X", None).unwrap_err();
        assert!(
            e.message.starts_with("invalid patch id '8-X'"),
            "{}",
            e.message
        );
        assert_eq!(f.to_string(), SAMPLE);
    }

    #[test]
    fn remove_drops_entry_and_comments_above() {
        let mut f = parse(SAMPLE).unwrap();
        assert_eq!(f.remove("3-reports").unwrap(), PatchState::Candidate);
        assert!(!f.to_string().contains("# pending"));
        assert!(!f.to_string().contains("needs review"));
        assert_eq!(f.candidates(), ["4-export"]);
        assert!(f.remove("3-reports").is_err());
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().message
    }

    #[test]
    fn malformed_toml_reports_line_and_column() {
        let e = parse("[patches]\n\"1\" = \"staged\"\n\"2\" = candidate\n").unwrap_err();
        assert!(
            e.message.starts_with("rel/0.1.0-patches.toml:3:7: "),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("fix the TOML syntax"));
        let m = err("[patches]\n\"1\" = \"staged\"\n\"1\" = \"staged\"\n");
        assert!(m.starts_with("rel/0.1.0-patches.toml:3:"), "{m}");
    }

    #[test]
    fn content_errors_have_locations() {
        assert_eq!(err(""), "rel/0.1.0-patches.toml: no [patches] table");
        assert_eq!(
            err("[other]\n"),
            "rel/0.1.0-patches.toml: no [patches] table"
        );
        assert_eq!(
            err("patches = 3\n"),
            "rel/0.1.0-patches.toml:1:11: 'patches' must be a [patches] table"
        );
        assert_eq!(
            err("[patches]\n\"1\" = \"staged\"\n\"2\" = \"merged\"\n"),
            "rel/0.1.0-patches.toml:3:7: unknown state 'merged' for patch 2: expected \"candidate\" or \"staged\""
        );
        assert_eq!(
            err("[patches]\n\"1\" = 3\n"),
            "rel/0.1.0-patches.toml:2:7: patch 1 must be set to the string \"candidate\" or \"staged\""
        );
        let m = err("[patches]\n\"1\" = \"staged\"\n  \"1-X\" = \"candidate\"\n");
        assert!(
            m.starts_with("rel/0.1.0-patches.toml:3:3: invalid patch id '1-X'"),
            "{m}"
        );
        let m = err("[patches]\n[patches.1]\na = 1\n");
        assert!(
            m.starts_with("rel/0.1.0-patches.toml:2:1: patch 1 must be"),
            "{m}"
        );
        assert_eq!(
            err("[patches]\n\"1\" = \"candidate\"\n\"2\" = \"staged\"\n"),
            "rel/0.1.0-patches.toml:3:1: staged patch 2 comes after candidate 1; \
             staged patches must come first, in the order they were merged"
        );
    }

    #[test]
    fn load_of_a_missing_file_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let e = PatchesFile::load(dir.path().join("nope.toml")).unwrap_err();
        assert!(e.message.starts_with("cannot read "), "{}", e.message);
        assert!(e.message.contains("nope.toml"), "{}", e.message);
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn save_is_atomic_and_leaves_no_temp_file() {
        let root = tempfile::tempdir().unwrap();
        let path = patches_path(root.path(), &v("0.2.0"));
        let mut f = PatchesFile::new_empty(&path, false);
        f.add_candidate("1-a", None).unwrap();
        f.save().unwrap(); // creates .hop/releases
        let dir = releases_dir(root.path());
        assert_eq!(dir_entries(&dir), ["0.2.0-patches.toml"]);
        let mut f = PatchesFile::load(&path).unwrap();
        f.mark_staged("1-a").unwrap();
        f.save().unwrap();
        assert_eq!(dir_entries(&dir), ["0.2.0-patches.toml"]);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "[patches]\n\"1-a\" = \"staged\"\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
        }
    }

    #[test]
    fn failed_save_leaves_the_old_file_and_no_temp_file() {
        let root = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename must fail.
        let path = root.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "x").unwrap();
        let e = write_atomic(&path, b"new").unwrap_err();
        assert!(e.message.starts_with("cannot write "), "{}", e.message);
        assert_eq!(dir_entries(root.path()), ["taken"]);
    }

    #[test]
    fn paths() {
        let root = Path::new("/p");
        assert_eq!(
            patches_path(root, &v("0.1.0")),
            Path::new("/p/.hop/releases/0.1.0-patches.toml")
        );
        assert_eq!(
            patches_path(root, &v("0.1.0-hotfix1")),
            Path::new("/p/.hop/releases/0.1.0-patches.toml")
        );
        assert_eq!(
            snapshot_path(root, &v("0.1.0-rc1")),
            Path::new("/p/.hop/releases/0.1.0-rc1.txt")
        );
        assert_eq!(
            snapshot_path(root, &v("0.1.0")),
            Path::new("/p/.hop/releases/0.1.0.txt")
        );
        assert_eq!(
            snapshot_path(root, &v("0.1.0-hotfix1")),
            Path::new("/p/.hop/releases/0.1.0-hotfix1.txt")
        );
    }

    #[test]
    fn lists_releases_in_preparation_sorted() {
        let root = tempfile::tempdir().unwrap();
        assert!(releases_in_preparation(root.path()).unwrap().is_empty());
        let dir = releases_dir(root.path());
        fs::create_dir_all(&dir).unwrap();
        for name in [
            "0.10.0-patches.toml",
            "0.2.0-patches.toml",
            "0.2.0-rc1.txt",
            "0.1.0.txt",
            "1.0.0-patches.toml",
        ] {
            fs::write(dir.join(name), "[patches]\n").unwrap();
        }
        let got: Vec<String> = releases_in_preparation(root.path())
            .unwrap()
            .iter()
            .map(Version::to_string)
            .collect();
        assert_eq!(got, ["0.2.0", "0.10.0", "1.0.0"]);
        fs::write(dir.join("0.3.0-rc1-patches.toml"), "").unwrap();
        let e = releases_in_preparation(root.path()).unwrap_err();
        assert!(
            e.message.contains("0.3.0-rc1-patches.toml"),
            "{}",
            e.message
        );
    }

    #[test]
    fn snapshots_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let path = snapshot_path(root.path(), &v("0.1.0-rc1"));
        let list = vec!["1-users".to_string(), "2-api".to_string()];
        write_snapshot(&path, &list, Some("release 0.1.0-rc1\n\n# generated")).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# release 0.1.0-rc1\n#\n# generated\n1-users\n2-api\n"
        );
        let got: Vec<String> = read_snapshot(&path)
            .unwrap()
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(got, list);
        write_snapshot(&path, &[], None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        assert!(read_snapshot(&path).unwrap().is_empty());
        assert_eq!(dir_entries(&releases_dir(root.path())), ["0.1.0-rc1.txt"]);
    }

    #[test]
    fn snapshot_reading_ignores_comments_and_blanks() {
        let text = "# header\n\n  1-users  \n2-api # inline\r\n\t\n# 3-not\n";
        let got: Vec<String> = parse_snapshot(Path::new("s.txt"), text)
            .unwrap()
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(got, ["1-users", "2-api"]);
    }

    #[test]
    fn snapshot_errors_name_file_and_line() {
        let e = parse_snapshot(Path::new("s.txt"), "1-a\n\n1-B\n").unwrap_err();
        assert!(
            e.message.starts_with("s.txt:3: invalid patch id '1-B'"),
            "{}",
            e.message
        );
        let e = parse_snapshot(Path::new("s.txt"), "1-a\n1-a\n").unwrap_err();
        assert_eq!(e.message, "s.txt:2: patch 1-a is listed twice");
        let e = parse_snapshot(Path::new("s.txt"), "1 2\n").unwrap_err();
        assert!(e.message.starts_with("s.txt:1: "), "{}", e.message);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        let e = write_snapshot(&path, &["bad id".to_string()], None).unwrap_err();
        assert!(
            e.message.contains("invalid patch id 'bad id'"),
            "{}",
            e.message
        );
        assert!(write_snapshot(&path, &["1".to_string(), "1".to_string()], None).is_err());
        assert!(!path.exists());
    }
}
