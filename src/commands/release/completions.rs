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
            let mut cmd = cmd;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, format!("git-{sub}"), &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    print!("{script}");
    Ok(())
}
