//! Reading passwords: from a prompt, standard input or a file, never from an argument.

use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, Result};

use crate::exit::{Code, Failure};

/// Strips one trailing line break (`\n` or `\r\n`), which files and `echo` add.
pub fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// A new password: asked twice on the terminal, or one line of standard input when it is
/// not a terminal (`printf '%s\n' "$PW" | storefactory user add bob`).
pub fn read_new_password(username: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {username}: "))
            .context("cannot read the password")?;
        let second =
            rpassword::prompt_password("Repeat it: ").context("cannot read the password")?;
        if first != second {
            return Err(Failure::new(Code::Usage, "the passwords do not match").into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = strip_newline(line);
        if password.is_empty() {
            return Err(Failure::new(
                Code::Usage,
                "no password on standard input (pipe one line, or run in a terminal to be asked)",
            )
            .into());
        }
        Ok(password)
    }
}

/// The contents of a file named on the command line, `-` meaning standard input.
pub fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_line_break_is_stripped() {
        assert_eq!(strip_newline("pw\n".into()), "pw");
        assert_eq!(strip_newline("pw\r\n".into()), "pw");
        assert_eq!(strip_newline("pw\n\n".into()), "pw\n");
        assert_eq!(strip_newline(" pw ".into()), " pw ");
    }
}
