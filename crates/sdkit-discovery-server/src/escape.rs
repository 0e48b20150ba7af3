//! Strings from the network, made safe for logs: control characters (newlines above all)
//! are escaped, so a client cannot forge log lines, and long values are cut.

use std::fmt;

/// Longest value written to a log, in characters.
const MAX_LOGGED: usize = 256;

/// Displays a network string escaped (`\n`, `\u{1b}`, …) and cut at 256 characters.
#[derive(Clone, Copy)]
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_LOGGED {
                return f.write_str("…");
            }
            if c.is_control() || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        let forged = "app\n2026-01-01T00:00:00Z  INFO evicted appid=victim\r\u{1b}[31m";
        let shown = Escaped(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(shown.starts_with("app\\n2026"));
        assert_eq!(Escaped("héllo.app").to_string(), "héllo.app");
        assert_eq!(Escaped(&"x".repeat(1000)).to_string().chars().count(), 257);
    }
}
