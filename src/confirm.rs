//! Asking the user to confirm a step that cannot be undone: on a terminal,
//! they type `yes`; without one (CI, a script), the command refuses and
//! names the `--yes` form to run instead.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};

/// Asks `question`; `again` is the command line with `--yes`, named in the
/// refusal. Nothing is done before the answer, so a refusal changes nothing.
pub fn confirm(question: &str, again: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(
            Error::new(format!("{question} Not confirmed: no terminal to ask on")).hint(format!(
                "run it again with --yes to confirm: {again}; nothing was changed"
            )),
        );
    }
    print!("{question} Type yes to confirm: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::new(format!("cannot read the answer: {e}")))?;
    if answer.trim() != "yes" {
        return Err(Error::new("not confirmed").hint("nothing was changed"));
    }
    Ok(())
}
