//! `completions <shell>` (hidden): prints a completion script; install.sh
//! writes the bash one where bash-completion finds it.

use clap::CommandFactory;

use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run<C: CommandFactory>(args: Args, sub: &str) -> Result<()> {
    let cmd = C::command();
    let script = match args.shell {
        clap_complete::Shell::Bash => crate::man::bash_completion(cmd, sub),
        shell => {
            let hidden: Vec<String> = cmd
                .get_subcommands()
                .filter(|c| c.is_hide_set())
                .map(|c| c.get_name().to_string())
                .collect();
            let mut cmd = cmd;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, format!("git-{sub}"), &mut buf);
            without_hidden(&String::from_utf8_lossy(&buf), &hidden)
        }
    };
    print!("{script}");
    Ok(())
}

/// The zsh or fish script without the lines offering the `hidden`
/// subcommands (clap_complete lists them; bash's script is filtered in
/// `crate::man`).
fn without_hidden(script: &str, hidden: &[String]) -> String {
    let mut out = String::with_capacity(script.len());
    for line in script.lines() {
        let t = line.trim_start();
        let offers = hidden.iter().any(|h| {
            // zsh: `'hook:' \`, an entry of the commands list.
            t.starts_with(&format!("'{h}:"))
                // fish: the entry, and the hidden command's own options.
                || (t.starts_with("complete ") && t.contains(&format!("-a \"{h}\"")))
                || t.contains(&format!("using_subcommand {h}\""))
                || t.contains(&format!("using_subcommand {h};"))
        });
        if !offers {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_subcommands_are_not_offered_in_zsh_and_fish() {
        use crate::commands::release::Cli;
        for shell in [clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "git-hop-release", &mut buf);
            let text = without_hidden(
                &String::from_utf8_lossy(&buf),
                &["hook".to_string(), "completions".to_string()],
            );
            assert!(
                !text.contains("'hook:") && !text.contains("-a \"hook\""),
                "{shell}"
            );
            assert!(!text.contains("'completions:") && !text.contains("-a \"completions\""));
            // The visible ones stay, "hooks" beside the hidden "hook".
            assert!(
                text.contains("'hooks:") || text.contains("-a \"hooks\""),
                "{shell}"
            );
            assert!(text.contains("promote"), "{shell}");
        }
    }
}
