//! Who elect trusts with its files: the ownership and mode rule that every
//! directory and file it opens in a run directory must pass, checked on the
//! opened descriptor's `fstat`, and the vetting of a symbolic link that
//! names a run directory.
//!
//! The rule, as the contract states it:
//!
//! - an object must be owned by the caller (the effective uid) or by root;
//! - it must not be writable by group or others.
//!
//! Two exceptions, each one a choice that keeps elect's files out of
//! strangers' reach:
//!
//! - **Sticky system directories.** A directory with the sticky bit that
//!   root or the caller owns (`/tmp`, `/run/lock`) may be writable by
//!   anyone: others can add entries to it, but not rename or remove the
//!   caller's, and every entry elect then uses is checked in turn.
//! - **Group sharing**, only when the caller asked for it: an object may be
//!   writable by its group, and owned by another user, when its group is
//!   one of the caller's groups. Members of that group are then trusted
//!   not to be hostile; RELIABILITY.md says what they can still disturb.
//!
//! Anything else is refused with [`Error::Unsafe`], whose reason names the
//! owner, the mode and the fix.

use std::path::Path;

use crate::error::{Error, Result};

/// The advice at the end of every refusal of a foreign or shared object.
const FIX: &str = "remove it, or set ELECT_DIR (or --dir) to a directory you own";

/// What the caller accepts besides its own, private objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sharing {
    /// Objects of the caller's groups, writable by the group, are trusted.
    pub(crate) group: bool,
}

impl Sharing {
    /// The sharing that the mode elect creates things with implies: group
    /// bits in it mean the caller chose group sharing.
    pub(crate) fn of_mode(mode: u32) -> Self {
        Sharing {
            group: mode & 0o070 != 0,
        }
    }

    /// The mode elect gives the directories it creates: private, or shared
    /// with the group and set-group-ID, so that what is created inside
    /// belongs to the directory's group whoever creates it.
    pub(crate) fn dir_mode(self) -> u32 {
        if self.group { 0o2770 } else { 0o700 }
    }

    /// The mode elect gives the files it creates.
    pub(crate) fn file_mode(self) -> u32 {
        if self.group { 0o660 } else { 0o600 }
    }
}

/// The effective uid: the owner of what this process creates.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `gid` is the caller's effective group or one of its
/// supplementary groups.
fn in_my_groups(gid: u32) -> bool {
    // SAFETY: getegid cannot fail; getgroups writes at most `n` entries.
    unsafe {
        if libc::getegid() == gid {
            return true;
        }
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let got = libc::getgroups(n, groups.as_mut_ptr());
        got > 0 && groups[..got as usize].contains(&gid)
    }
}

/// A user's name for a message, with the uid: `mallory (uid 1001)`.
pub(crate) fn user_name(uid: u32) -> String {
    name_of(uid, true).map_or_else(|| format!("uid {uid}"), |n| format!("{n} (uid {uid})"))
}

/// A group's name for a message, with the gid.
fn group_name(gid: u32) -> String {
    name_of(gid, false).map_or_else(|| format!("gid {gid}"), |n| format!("{n} (gid {gid})"))
}

/// The passwd or group database's name for an id, if it has one. Used only
/// in messages; a name with anything but plain characters is not shown.
fn name_of(id: u32, user: bool) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: the *_r functions write only into the given buffers and set
    // `found` to null or to the given struct.
    let name = unsafe {
        if user {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let r = libc::getpwuid_r(id, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found);
            if r != 0 || found.is_null() || pw.pw_name.is_null() {
                return None;
            }
            std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned()
        } else {
            let mut gr: libc::group = std::mem::zeroed();
            let mut found: *mut libc::group = std::ptr::null_mut();
            let r = libc::getgrgid_r(id, &mut gr, buf.as_mut_ptr(), buf.len(), &mut found);
            if r != 0 || found.is_null() || gr.gr_name.is_null() {
                return None;
            }
            std::ffi::CStr::from_ptr(gr.gr_name)
                .to_string_lossy()
                .into_owned()
        }
    };
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c));
    plain.then_some(name)
}

/// `what` for a message: "directory" or "file".
// The casts are no-ops on Linux but not on every Unix.
#[allow(clippy::unnecessary_cast)]
fn kind(mode: u32) -> &'static str {
    if mode & libc::S_IFMT as u32 == libc::S_IFDIR as u32 {
        "directory"
    } else {
        "file"
    }
}

/// Checks an opened directory or file against the rule (see the module
/// documentation), given its `fstat`.
// The casts are no-ops on Linux but not on every Unix.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn check(st: &libc::stat, path: &Path, sharing: Sharing) -> Result<()> {
    let (uid, gid, mode) = (st.st_uid as u32, st.st_gid as u32, st.st_mode as u32);
    let me = euid();
    let mine_or_root = uid == me || uid == 0;
    let is_dir = mode & libc::S_IFMT as u32 == libc::S_IFDIR as u32;
    let sticky = is_dir && mode & libc::S_ISVTX as u32 != 0;
    let shared_group = sharing.group && in_my_groups(gid);
    let what = kind(mode);
    let perms = mode & 0o7777;
    if !mine_or_root && !shared_group {
        let also = if sharing.group {
            format!(
                ", nor by a group of yours (its group is {})",
                group_name(gid)
            )
        } else if perms & 0o020 != 0 && in_my_groups(gid) {
            format!(
                " (its group {} is yours: if you mean to share it with the group, add --group-shared or set ELECT_GROUP_SHARED=1)",
                group_name(gid)
            )
        } else {
            String::new()
        };
        return Err(Error::unsafe_path(
            path,
            format!(
                "the {what} belongs to {} with mode {perms:04o}, and elect trusts only what you ({}) or root own{also}, since its owner could swap elect's files under you; {FIX}",
                user_name(uid),
                user_name(me),
            ),
        ));
    }
    // A sticky directory of root's or the caller's: others may add entries
    // but not move the caller's, and each entry is checked in turn.
    if sticky && mine_or_root {
        return Ok(());
    }
    if perms & 0o002 != 0 {
        return Err(Error::unsafe_path(
            path,
            format!(
                "the {what} has mode {perms:04o}: anyone may write to it{}, so others could swap or change elect's files; run `chmod o-w` on it, or {FIX}",
                if is_dir {
                    " and it has no sticky bit"
                } else {
                    ""
                }
            ),
        ));
    }
    if perms & 0o020 != 0 && !shared_group {
        let advice = if sharing.group {
            format!("its group {} is not one of yours; {FIX}", group_name(gid))
        } else {
            format!(
                "run `chmod g-w` on it, or ask for group sharing (--group-shared or ELECT_GROUP_SHARED=1) if the group is meant to share it, or {FIX}"
            )
        };
        return Err(Error::unsafe_path(
            path,
            format!(
                "the {what} has mode {perms:04o}: its group {} may write to it, so a member could swap or change elect's files; {advice}",
                group_name(gid)
            ),
        ));
    }
    Ok(())
}

/// Vets a symbolic link before it is followed: the link and the directory
/// holding it must be owned by root or the caller, and the directory must
/// not let others replace the link (not writable by group or others, unless
/// it is sticky). `link` and `holder` are their `fstat`s.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn vet_link(
    link: &libc::stat,
    link_path: &Path,
    holder: &libc::stat,
    holder_path: &Path,
) -> Result<()> {
    let me = euid();
    let trusted = |uid: u32| uid == me || uid == 0;
    if !trusted(link.st_uid as u32) {
        return Err(Error::unsafe_path(
            link_path,
            format!(
                "it is a symbolic link that belongs to {}, and elect follows only links that you or root own; {FIX}",
                user_name(link.st_uid as u32)
            ),
        ));
    }
    let mode = holder.st_mode as u32;
    let sticky = mode & libc::S_ISVTX as u32 != 0;
    if !trusted(holder.st_uid as u32) || (mode & 0o022 != 0 && !sticky) {
        return Err(Error::unsafe_path(
            link_path,
            format!(
                "it is a symbolic link in {}, which belongs to {} with mode {:04o}, so someone else could replace the link; elect follows only links in directories that you or root own and that others cannot write; use the link's target instead",
                holder_path.display(),
                user_name(holder.st_uid as u32),
                mode & 0o7777
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(uid: u32, gid: u32, mode: u32) -> libc::stat {
        // SAFETY: a zeroed stat is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_uid = uid;
        st.st_gid = gid;
        st.st_mode = mode;
        st
    }

    #[allow(clippy::unnecessary_cast)]
    const DIR: u32 = libc::S_IFDIR as u32;
    #[allow(clippy::unnecessary_cast)]
    const FILE: u32 = libc::S_IFREG as u32;

    #[test]
    fn own_private_objects_pass_and_foreign_ones_are_refused() {
        let me = euid();
        let p = Path::new("/x");
        let private = Sharing::default();
        assert!(check(&stat(me, 0, DIR | 0o700), p, private).is_ok());
        assert!(check(&stat(me, 0, FILE | 0o600), p, private).is_ok());
        assert!(check(&stat(0, 0, DIR | 0o755), p, private).is_ok());
        assert!(check(&stat(0, 0, DIR | 0o1777), p, private).is_ok(), "/tmp");
        let stranger = if me == 4242 { 4243 } else { 4242 };
        let err = check(&stat(stranger, 0, DIR | 0o755), p, private).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("uid 4242") || msg.contains("uid 4243"),
            "{msg}"
        );
        assert!(msg.contains("0755") && msg.contains("ELECT_DIR"), "{msg}");
        // Writable by others: refused unless sticky, files always.
        assert!(check(&stat(me, 0, DIR | 0o777), p, private).is_err());
        assert!(check(&stat(me, 0, FILE | 0o666), p, private).is_err());
        // Writable by the group: refused unless sharing with that group.
        let err = check(&stat(me, 0, DIR | 0o2770), p, private).unwrap_err();
        assert!(err.to_string().contains("--group-shared"), "{err}");
        // SAFETY: getegid cannot fail.
        let my_group = unsafe { libc::getegid() };
        let shared = Sharing { group: true };
        assert!(check(&stat(me, my_group, DIR | 0o2770), p, shared).is_ok());
        assert!(check(&stat(stranger, my_group, FILE | 0o660), p, shared).is_ok());
        assert!(check(&stat(stranger, my_group, FILE | 0o666), p, shared).is_err());
    }

    #[test]
    fn modes_follow_the_choice() {
        assert_eq!(Sharing::of_mode(0o700), Sharing::default());
        let shared = Sharing::of_mode(0o770);
        assert_eq!((shared.dir_mode(), shared.file_mode()), (0o2770, 0o660));
        let private = Sharing::default();
        assert_eq!((private.dir_mode(), private.file_mode()), (0o700, 0o600));
    }
}
