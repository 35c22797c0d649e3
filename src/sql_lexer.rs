//! PostgreSQL's quoting, as psql's lexer sees it: where a text is SQL code
//! and where it is inside a string (`'…'`, `E'…'`), a quoted identifier
//! (`"…"`), a dollar-quoted body (`$tag$…$tag$`) or a comment (`-- …`,
//! nested `/* … */`). Used to find pg_dump's entry headers in a snapshot
//! (docs/snapshots.md) and the statements and meta-commands of a patch file
//! (docs/patches.md).

/// Where the lexer is between two bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum State {
    #[default]
    Top,
    /// `'…'`; `true` for an `E'…'` string, where a backslash escapes.
    Quote(bool),
    Ident,
    Dollar(Vec<u8>),
    Comment(u32),
}

#[derive(Debug, Default)]
pub struct Lexer {
    pub state: State,
}

pub fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl Lexer {
    pub fn at_top_level(&self) -> bool {
        self.state == State::Top
    }

    /// Advances over `s` (usually one line, with its newline). `code(i)` is
    /// called for each byte `s[i]` that is SQL code (not inside a string, a
    /// quoted identifier, a dollar-quoted body or a comment, and not the
    /// quote or comment mark itself); when it returns `false` the rest of
    /// `s` is skipped (a psql meta-command runs to the end of its line).
    pub fn feed(&mut self, s: &[u8], mut code: impl FnMut(usize) -> bool) {
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            match &mut self.state {
                State::Top => match b {
                    b'-' if s.get(i + 1) == Some(&b'-') => return, // comment to end of line
                    b'/' if s.get(i + 1) == Some(&b'*') => {
                        self.state = State::Comment(1);
                        i += 1;
                    }
                    b'\'' => {
                        let e = i > 0
                            && matches!(s[i - 1], b'E' | b'e')
                            && (i < 2 || !is_ident_byte(s[i - 2]));
                        self.state = State::Quote(e);
                    }
                    b'"' => self.state = State::Ident,
                    b'$' if (i == 0 || !is_ident_byte(s[i - 1]))
                        && dollar_tag(&s[i..]).is_some() =>
                    {
                        let len = dollar_tag(&s[i..]).unwrap_or(1);
                        self.state = State::Dollar(s[i..i + len].to_vec());
                        i += len - 1;
                    }
                    _ => {
                        if !code(i) {
                            return;
                        }
                    }
                },
                State::Quote(escapes) => match b {
                    b'\\' if *escapes => i += 1,
                    b'\'' if s.get(i + 1) == Some(&b'\'') => i += 1,
                    b'\'' => self.state = State::Top,
                    _ => {}
                },
                State::Ident => match b {
                    b'"' if s.get(i + 1) == Some(&b'"') => i += 1,
                    b'"' => self.state = State::Top,
                    _ => {}
                },
                State::Dollar(tag) => {
                    if s[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        self.state = State::Top;
                    }
                }
                State::Comment(depth) => {
                    if b == b'/' && s.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 1;
                    } else if b == b'*' && s.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.state = State::Top;
                        }
                    }
                }
            }
            i += 1;
        }
    }
}

/// The length of the dollar-quote delimiter at the start of `s` (`$$`,
/// `$body$`), if there is one.
fn dollar_tag(s: &[u8]) -> Option<usize> {
    let mut j = 1;
    while j < s.len() {
        let b = s[j];
        if b == b'$' {
            return Some(j + 1);
        }
        let ok = if j == 1 {
            b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
        } else {
            b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
        };
        if !ok {
            return None;
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(l: &mut Lexer, s: &str) -> String {
        let mut out = String::new();
        l.feed(s.as_bytes(), |i| {
            out.push(s.as_bytes()[i] as char);
            true
        });
        out
    }

    #[test]
    fn quoting() {
        let mut l = Lexer::default();
        let code = code_of(
            &mut l,
            "SELECT 'it''s -- no', \"a\"\"b\", E'x\\'y' /* a /* b */ c */;\n",
        );
        assert_eq!(code, "SELECT , , E ;\n"); // (the E of E'…' is seen before its quote)
        assert!(l.at_top_level());
        code_of(&mut l, "SELECT $tag$ $x$ \n");
        assert_eq!(l.state, State::Dollar(b"$tag$".to_vec()));
        assert_eq!(code_of(&mut l, "$x$ $tag$, a$b, $1; -- c\n"), ", a$b, $1; ");
        assert!(l.at_top_level());
        code_of(&mut l, "/* open\n");
        assert_eq!(l.state, State::Comment(1));
        code_of(&mut l, "*/ 'open\n");
        assert_eq!(l.state, State::Quote(false));
    }

    #[test]
    fn code_can_stop_the_line() {
        let mut l = Lexer::default();
        let s = b"SELECT 1 \\echo it's\n";
        let mut seen = Vec::new();
        l.feed(s, |i| {
            seen.push(s[i]);
            s[i] != b'\\'
        });
        assert_eq!(seen, b"SELECT 1 \\");
        assert!(l.at_top_level());
    }
}
