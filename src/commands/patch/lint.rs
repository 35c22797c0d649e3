//! `git hop-patch lint [--json]`: the lint of the current patch's SQL
//! files (docs/patches.md, "Lint"), which `apply` and `merge` also run.

use serde::Serialize;

use crate::error::Result;
use crate::lint::{self, Finding};
use crate::machine::{self, JsonError, Verdict};
use crate::preconditions;
use crate::project::Project;
use crate::rebuild;

/// Report DDL of the current patch that locks or rewrites tables in production
///
/// Lint the current patch's SQL files for statements that lock or rewrite
/// a table that production already has (an index without CONCURRENTLY, a
/// column type change, a foreign key or check constraint without NOT
/// VALID, …): each finding with its file:line, its rule and the safer
/// form. Tables created earlier in the release are new in production: an
/// index on one is fine. apply and merge run the same lint; the rules
/// listed in [lint] deny of .hop/config fail them, and make this command
/// exit 1
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the findings as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// The `--json` document.
#[derive(Serialize, Debug)]
pub struct Report {
    pub schema_version: u32,
    pub patch: Option<String>,
    pub findings: Vec<JsonFinding>,
    /// No finding of a denied rule.
    pub passed: bool,
    pub error: Option<JsonError>,
}

#[derive(Serialize, Debug)]
pub struct JsonFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub denied: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut report = Report {
        schema_version: machine::SCHEMA_VERSION,
        patch: None,
        findings: Vec::new(),
        passed: false,
        error: None,
    };
    machine::judged(args.json, &mut report, |report| lint_current(&args, report))
}

impl Verdict for Report {
    fn set_verdict(&mut self, passed: bool, error: Option<JsonError>) {
        self.passed = passed;
        self.error = error;
    }
}

fn lint_current(args: &Args, report: &mut Report) -> Result<()> {
    let project = Project::from_cwd()?;
    let id = preconditions::on_patch_branch(&project, "git hop-patch lint")?;
    report.patch = Some(id.to_string());
    let (_, file) = preconditions::release_of_patch(&project, &id)?;
    let order = rebuild::patch_order(&file, Some(&id))?;
    let before: Vec<_> = order.iter().take_while(|p| **p != id).cloned().collect();
    let findings = lint::lint_patch(&project.root, &before, &id)?;
    let deny = &project.config.lint.deny;
    report.findings = findings
        .iter()
        .map(|f| JsonFinding {
            finding: f.clone(),
            denied: deny.contains(&f.rule),
        })
        .collect();
    if args.json {
        let denied = findings.iter().find(|f| deny.contains(&f.rule));
        return match denied {
            Some(f) => lint::report(std::slice::from_ref(f), deny),
            None => Ok(()),
        };
    }
    if findings.is_empty() {
        println!("{id}: no finding");
    }
    lint::report(&findings, deny)
}
