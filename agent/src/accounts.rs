//! User and group names of this node (`getpwuid`/`getpwnam` through nix): shown in file
//! results and safety errors, and resolved for a file resource's owner and group. Blocking;
//! call from a blocking thread.

use nix::unistd::{Gid, Group, Uid, User};

/// The name of `uid`, or the number when the node has no such user.
pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// The name of `gid`, or the number when the node has no such group.
pub fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// The uid of the user `name`; an error names the user and what to do.
pub fn lookup_uid(name: &str) -> Result<u32, String> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!(
            "unknown user '{name}'; create it on the node or change the file's owner"
        )),
        Err(e) => Err(format!("cannot look up user '{name}': {}", e.desc())),
    }
}

/// The gid of the group `name`; an error names the group and what to do.
pub fn lookup_gid(name: &str) -> Result<u32, String> {
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!(
            "unknown group '{name}'; create it on the node or change the file's group"
        )),
        Err(e) => Err(format!("cannot look up group '{name}': {}", e.desc())),
    }
}
