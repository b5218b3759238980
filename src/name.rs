//! Resource names: the one check every name passes before any file is touched.

use crate::error::{Error, Result};

/// The longest resource name, in bytes.
///
/// ```
/// let longest = "a".repeat(elect::MAX_NAME_LEN);
/// assert!(elect::Election::new(&longest).is_ok());
/// assert!(elect::Election::new(format!("{longest}a")).unwrap_err().is_usage());
/// ```
pub const MAX_NAME_LEN: usize = 128;

/// Checks that `name` matches `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
///
/// The rule keeps every name a single, harmless path component: no `/`, no
/// `..`, no leading dot or dash, no white space or control bytes, nothing a
/// shell or a terminal would read as more than text. A scope is written with
/// dots, as in `demo-student.echo`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    match problem(name) {
        None => Ok(()),
        Some(p) => Err(Error::InvalidName {
            name: name.to_string(),
            reason: p.reason,
        }),
    }
}

/// What the alphabet of a name is, for messages.
const ALPHABET: &str = "a name may only contain ASCII letters, digits, '.', '_' and '-'";

/// Why a name is refused: a fixed reason, and the character at fault, if
/// one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Problem {
    reason: &'static str,
    culprit: Culprit,
}

/// The character at fault in a refused name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Culprit {
    /// None: the name is empty or too long.
    None,
    /// The first character outside the alphabet, and its index among the
    /// characters.
    Outside(usize, char),
    /// The first character, from the alphabet but not a letter or digit.
    First(char),
}

/// Why `name` does not match `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`, if it
/// does not. A character outside the alphabet is reported before a first
/// character that is in it but cannot start a name, so that a name that
/// starts with an emoji is told about the emoji.
fn problem(name: &str) -> Option<Problem> {
    let bad = |reason, culprit| Some(Problem { reason, culprit });
    if name.is_empty() {
        return bad("it is empty", Culprit::None);
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 128 bytes", Culprit::None);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some((i, c)) = name.chars().enumerate().find(|&(_, c)| !allowed(c)) {
        let reason = match c {
            '/' => "it contains '/'",
            c if c.is_ascii_whitespace() => "it contains white space",
            c if c.is_control() => "it contains a control character",
            c if !c.is_ascii() => "it contains a character that is not ASCII",
            _ => "it contains a character other than A-Z a-z 0-9 . _ -",
        };
        return bad(reason, Culprit::Outside(i, c));
    }
    let first = name.chars().next().filter(|c| !c.is_ascii_alphanumeric());
    if let Some(c) = first {
        return bad("it must start with a letter or a digit", Culprit::First(c));
    }
    None
}

/// Why `name` is not a valid resource name, for [`Error::InvalidName`]'s
/// message: in full, the character at fault and what a name may contain;
/// `reason` with the rule if the name is valid after all (it never is where
/// elect builds the error).
pub(crate) fn explain(name: &str, reason: &str) -> String {
    explain_invalid_name(name).unwrap_or_else(|| {
        format!("{reason}; use 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    })
}

/// Why `name` is not a valid resource name, in full for a person: the
/// character at fault (as Rust escapes it, and its code point) and what a
/// name may contain; `None` for a valid name.
fn explain_invalid_name(name: &str) -> Option<String> {
    let p = problem(name)?;
    let rule = "1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit";
    Some(match p.culprit {
        Culprit::First(c) => format!(
            "it starts with {c:?}, but a name must start with an ASCII letter or digit; use 1 to \
             128 of A-Z a-z 0-9 . _ -"
        ),
        Culprit::Outside(i, c) => {
            let place = if i == 0 {
                "as its first character".to_string()
            } else {
                format!("at character {}", i + 1)
            };
            format!(
                "it contains {c:?} (U+{:04X}) {place}, but {ALPHABET}; use {rule}",
                u32::from(c)
            )
        }
        Culprit::None => format!("{}; use {rule}", p.reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_alphabet() {
        for ok in ["a", "0", "A.b_c-d", "demo-student.echo", &"z".repeat(128)] {
            validate_name(ok).unwrap();
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "a/b",
            "a b",
            "a\nb",
            "a\0b",
            "é",
            "а", // Cyrillic a
            &"z".repeat(129),
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}");
            assert!(explain_invalid_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_character_outside_the_alphabet_is_named_before_the_first_rule() {
        for (name, reason) in [
            ("\u{1F600}", "it contains a character that is not ASCII"),
            ("\u{1F600}job", "it contains a character that is not ASCII"),
            ("job\u{1F600}", "it contains a character that is not ASCII"),
            ("/x", "it contains '/'"),
            (" x", "it contains white space"),
            ("\x1bx", "it contains a control character"),
            ("-x", "it must start with a letter or a digit"),
            (
                "a+b",
                "it contains a character other than A-Z a-z 0-9 . _ -",
            ),
        ] {
            assert_eq!(problem(name).map(|p| p.reason), Some(reason), "{name:?}");
        }
        let why = explain_invalid_name("ab\u{1F600}").unwrap();
        assert!(why.starts_with("it contains '\u{1F600}' (U+1F600) at character 3, but a name may only contain ASCII letters, digits, '.', '_' and '-'"), "{why}");
        let why = explain_invalid_name("\u{202E}x").unwrap();
        assert!(
            why.contains("'\\u{202e}' (U+202E) as its first character"),
            "{why}"
        );
        let why = explain_invalid_name("+x").unwrap();
        assert!(
            why.starts_with(
                "it contains '+' (U+002B) as its first character, but a name may only contain"
            ),
            "{why}"
        );
        let why = explain_invalid_name("-x").unwrap();
        assert!(
            why.starts_with(
                "it starts with '-', but a name must start with an ASCII letter or digit"
            ),
            "{why}"
        );
        let why = explain_invalid_name(&"x".repeat(129)).unwrap();
        assert!(
            why.starts_with("it is longer than 128 bytes; use 1 to 128"),
            "{why}"
        );
    }
}
