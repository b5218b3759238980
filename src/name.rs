//! Resource names: the one check every name passes before any file is touched.

use crate::error::{Error, Result};

/// The longest resource name, in bytes.
///
/// ```
/// assert!(elect::validate_name(&"a".repeat(elect::MAX_NAME_LEN)).is_ok());
/// ```
pub const MAX_NAME_LEN: usize = 128;

/// Checks that `name` matches `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
///
/// The rule keeps every name a single, harmless path component: no `/`, no
/// `..`, no leading dot or dash, no white space or control bytes, nothing a
/// shell or a terminal would read as more than text. A scope is written with
/// dots, as in `demo-student.echo`.
///
/// ```
/// assert!(elect::validate_name("demo-student.echo").is_ok());
/// assert!(elect::validate_name("..").is_err());
/// assert!(elect::validate_name("a/b").is_err());
/// assert!(elect::validate_name(&"x".repeat(129)).is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return bad("it is empty");
    };
    if bytes.len() > MAX_NAME_LEN {
        return bad("it is longer than 128 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("it must start with a letter or a digit");
    }
    if let Some(&c) = bytes
        .iter()
        .find(|&&c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')))
    {
        return match c {
            b'/' => bad("it contains '/'"),
            c if c.is_ascii_whitespace() => bad("it contains white space"),
            c if c.is_ascii_control() => bad("it contains a control byte"),
            c if !c.is_ascii() => bad("it contains a non-ASCII character"),
            _ => bad("it contains a character other than A-Z a-z 0-9 . _ -"),
        };
    }
    Ok(())
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
        }
    }
}
