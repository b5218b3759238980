//! Which run directory to use: `--dir`, else `$ELECT_DIR`, else
//! `$XDG_RUNTIME_DIR/elect`, else `/tmp/elect-<uid>`.
//!
//! Only the choice lives here; opening and checking the directory safely is
//! the slot store's job.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable that names the run directory when none is given
/// (see [`ElectionBuilder::dir`](crate::ElectionBuilder::dir)).
///
/// ```
/// assert_eq!(elect::ENV_DIR, "ELECT_DIR");
/// ```
pub const ENV_DIR: &str = "ELECT_DIR";

/// Chooses the run directory as the contract says: `explicit` (the `--dir`
/// option) if given, else `$ELECT_DIR`, else `$XDG_RUNTIME_DIR/elect`, else
/// `/tmp/elect-<uid>`. Empty variables count as unset. A relative path is
/// made absolute against the current directory, so that `ELECT_DIR` handed to
/// a command means the same directory wherever that command `cd`s to.
pub(crate) fn run_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let chosen: PathBuf = match explicit {
        Some(p) if p.as_os_str().is_empty() => {
            return Err(Error::unsafe_path(
                p,
                "the run directory is an empty path; give a directory",
            ));
        }
        Some(p) => p.to_path_buf(),
        None => {
            if let Some(dir) = env(ENV_DIR) {
                PathBuf::from(dir)
            } else if let Some(xdg) = env("XDG_RUNTIME_DIR") {
                PathBuf::from(xdg).join("elect")
            } else {
                // SAFETY: getuid cannot fail.
                let uid = unsafe { libc::getuid() };
                let mut p = OsString::from("/tmp/elect-");
                p.push(uid.to_string());
                PathBuf::from(p)
            }
        }
    };
    if chosen.is_absolute() {
        Ok(chosen)
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::io("cannot find the current directory for", &chosen, e))?;
        Ok(cwd.join(chosen))
    }
}
