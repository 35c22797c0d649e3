//! The lint of patch files (docs/patches.md, "Lint"): DDL that locks or
//! rewrites a busy table in production (an index built without
//! `CONCURRENTLY`, a column type change, a constraint validated at once…),
//! found by the `squawk-linter` rules and reported with the file, the line
//! and the safer form. Findings warn in `apply` and `merge`; the rules of
//! `[lint] deny` fail them.
//!
//! A release runs in one transaction in production, on the schema of the
//! model snapshot: a table that an earlier patch of the release (or an
//! earlier file of the patch) creates is new there, and building an index
//! on it locks nobody. So each file is linted after the `CREATE TABLE`
//! files of the release that run before it, in application order (squawk
//! knows the tables created in the transaction); what is reported is the
//! file's own findings. A `-- hop: no-transaction` file runs on its own
//! and is linted alone, outside a transaction.

use std::path::Path;

use squawk_linter::{Linter, LinterSettings, Rule};

use crate::error::Result;
use crate::patch_dir::{self, StepKind};
use crate::patch_id::PatchId;

/// The rules git-hop runs: those about locks and rewrites of tables that
/// exist, and statements that fail or block in production.
pub const RULES: &[Rule] = &[
    Rule::RequireConcurrentIndexCreation,
    Rule::RequireConcurrentIndexDeletion,
    Rule::RequireConcurrentReindex,
    Rule::RequireConcurrentPartitionDetach,
    Rule::ConstraintMissingNotValid,
    Rule::AddingForeignKeyConstraint,
    Rule::ChangingColumnType,
    Rule::AddingFieldWithDefault,
    Rule::AddingNotNullableField,
    Rule::AddingRequiredField,
    Rule::AddingSerialPrimaryKeyField,
    Rule::DisallowedUniqueConstraint,
    Rule::BanConcurrentIndexCreationInTransaction,
    Rule::BanDropDatabase,
    Rule::BanTruncateCascade,
];

/// Whether `name` is one of [`RULES`].
pub fn is_rule(name: &str) -> bool {
    Rule::try_from(name).is_ok_and(|r| RULES.contains(&r))
}

/// The names of [`RULES`].
pub fn rule_names() -> Vec<String> {
    RULES.iter().map(|r| r.to_string()).collect()
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// `Patches/<id>/<file>`.
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub message: String,
    /// The safer form.
    pub help: Option<String>,
}

impl Finding {
    /// `Patches/1-a/01.sql:3: require-concurrent-index-creation: … (safer: …)`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}:{}: {}: {}",
            self.file, self.line, self.rule, self.message
        );
        if let Some(h) = &self.help {
            s.push_str(&format!(" (safer: {h})"));
        }
        s
    }
}

/// The findings of patch `id`, the patches `before` it in the release
/// (application order) run first: all under `root/Patches`.
pub fn lint_patch(root: &Path, before: &[PatchId], id: &PatchId) -> Result<Vec<Finding>> {
    let mut context = String::new();
    for b in before {
        let dir = root.join("Patches").join(b.as_str());
        if !dir.is_dir() {
            continue;
        }
        // Only listed (the rebuild that follows checks them, and a staged
        // patch was checked when merged): its CREATE TABLE statements.
        for step in patch_dir::steps(&dir)? {
            if step.kind
                == (StepKind::Sql {
                    no_transaction: false,
                })
            {
                let text = std::fs::read_to_string(&step.path).unwrap_or_default();
                context.push_str(&table_statements(&text));
            }
        }
    }
    let dir = root.join("Patches").join(id.as_str());
    let mut out = Vec::new();
    for step in patch_dir::check(&dir, root)?.steps {
        let StepKind::Sql { no_transaction } = step.kind else {
            continue;
        };
        let text = std::fs::read_to_string(&step.path)
            .map_err(|e| crate::error::Error::io("cannot read", &step.path, e))?;
        let file = format!("Patches/{id}/{}", step.name);
        if no_transaction {
            out.extend(lint_text("", &text, false, &file));
        } else {
            out.extend(lint_text(&context, &text, true, &file));
            context.push_str(&table_statements(&text));
        }
    }
    Ok(out)
}

/// The `CREATE … TABLE` statements of `text`, each ended by `;`: the
/// context a later file needs (squawk knows the tables created in the
/// transaction). Found with the lexer of psql's quoting, without parsing,
/// so that a large data file costs little.
fn table_statements(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut lexer = crate::sql_lexer::Lexer::default();
    let mut ends = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        lexer.feed(line.as_bytes(), |i| {
            if line.as_bytes()[i] == b';' {
                ends.push(offset + i);
            }
            true
        });
        offset += line.len();
    }
    let mut out = String::new();
    let mut start = 0;
    for end in ends.into_iter().chain(std::iter::once(bytes.len())) {
        let stmt = &text[start..end];
        start = (end + 1).min(bytes.len());
        if creates_table(stmt) {
            out.push_str(stmt.trim());
            out.push_str(";\n");
        }
    }
    out
}

/// Whether `stmt` starts with `CREATE` and has `TABLE` among its first
/// seven words (comments left out): `CREATE [GLOBAL TEMPORARY | UNLOGGED]
/// TABLE [IF NOT EXISTS]`. Allocates nothing: a data file is thousands of
/// statements.
fn creates_table(stmt: &str) -> bool {
    let mut words = stmt
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .take(7);
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("create"))
        && words.any(|w| w.eq_ignore_ascii_case("table"))
}

/// The findings in `text` (named `file`), linted after `context`.
fn lint_text(context: &str, text: &str, in_transaction: bool, file: &str) -> Vec<Finding> {
    let whole = format!("{context}{text}");
    let parsed = squawk_syntax::SourceFile::parse(&whole);
    let mut linter = Linter::from(RULES.iter().copied());
    linter.settings = LinterSettings {
        assume_in_transaction: in_transaction,
        ..LinterSettings::default()
    };
    let start = context.len();
    let mut out: Vec<Finding> = linter
        .lint(&parsed, &whole)
        .into_iter()
        .filter_map(|v| {
            let at = usize::from(v.text_range.start());
            let own = at.checked_sub(start)?;
            let line = text.get(..own).map_or(1, |t| t.matches('\n').count() + 1);
            Some(Finding {
                file: file.to_string(),
                line,
                rule: v.code.to_string(),
                message: v.message,
                help: v.help,
            })
        })
        .collect();
    out.sort_by_key(|f| f.line);
    out
}

/// `findings` as warnings on stderr; an error naming the first of them
/// whose rule is in `deny`.
pub fn report(findings: &[Finding], deny: &[String]) -> Result<()> {
    let mut denied = None;
    for f in findings {
        if deny.contains(&f.rule) {
            eprintln!("error: {}", f.render());
            denied.get_or_insert(f);
        } else {
            eprintln!("warning: {}", f.render());
        }
    }
    match denied {
        Some(f) => Err(crate::error::Error::new(format!(
            "{}: {} is denied by [lint] deny in .hop/config",
            f.file, f.rule
        ))
        .hint(f.help.clone().map_or_else(
            || "rewrite the statement, or take the rule out of [lint] deny".to_string(),
            |h| format!("{h}; or take the rule out of [lint] deny"),
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(context: &str, text: &str) -> Vec<(usize, String)> {
        lint_text(context, text, true, "f.sql")
            .into_iter()
            .map(|f| (f.line, f.rule))
            .collect()
    }

    #[test]
    fn locking_ddl_on_existing_tables_is_found_at_its_line() {
        let found = lint(
            "",
            "-- a comment\nCREATE INDEX ON users (email);\nALTER TABLE users ALTER COLUMN id TYPE bigint;\n",
        );
        assert_eq!(
            found,
            vec![
                (2, "require-concurrent-index-creation".to_string()),
                (3, "changing-column-type".to_string())
            ]
        );
    }

    #[test]
    fn a_table_created_earlier_in_the_release_is_new() {
        assert!(lint("", "CREATE TABLE t (id int);\nCREATE INDEX ON t (id);\n").is_empty());
        assert!(lint("CREATE TABLE t (id int);\n;\n", "CREATE INDEX ON t (id);\n").is_empty());
        // The context's own findings are not the file's.
        assert!(lint("CREATE INDEX ON users (id);\n;\n", "SELECT 1;\n").is_empty());
    }

    #[test]
    fn the_readme_quick_start_patch_has_no_finding() {
        assert!(
            lint(
                "",
                "CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL);\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn the_context_keeps_only_table_creations() {
        let text = "INSERT INTO x VALUES (';create table no');\n-- create table no\nCREATE UNLOGGED TABLE a (id int);\nCREATE INDEX ON a (id);\ncreate table if not exists \"b;\" (id int)";
        assert_eq!(
            table_statements(text),
            "-- create table no\nCREATE UNLOGGED TABLE a (id int);\ncreate table if not exists \"b;\" (id int);\n"
        );
    }

    #[test]
    fn a_statement_is_excused_by_squawks_comment() {
        assert!(
            lint(
                "",
                "-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX ON users (email);\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn rules_are_named_as_squawk_names_them() {
        assert!(is_rule("require-concurrent-index-creation"));
        assert!(!is_rule("prefer-text-field"), "style rules are not run");
        assert!(!is_rule("nonsense"));
    }
}
