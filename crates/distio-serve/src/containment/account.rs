//! Looking up the user and group slaves run as, from `/etc/passwd` and `/etc/group`.
//!
//! Plain file parsing rather than NSS: no `unsafe`, no extra crate. Users only known to
//! LDAP or another NSS source are not found by name; give their numeric id instead.

use crate::ServeError;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// The `(uid, gid)` slaves run as: `user` by name or number, and `group` (default: the
/// user's primary group).
pub(crate) fn resolve(user: &str, group: Option<&str>) -> Result<(u32, u32), ServeError> {
    let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
    let (uid, primary) = lookup_user(&passwd, user).ok_or_else(|| ServeError::UnknownAccount {
        key: "run_as_user",
        name: user.to_owned(),
        what: "user",
        file: PASSWD,
    })?;
    let gid = match group {
        None => primary.ok_or_else(|| ServeError::UnknownAccount {
            key: "run_as_user",
            name: user.to_owned(),
            what: "user with a primary group (set `run_as_group`)",
            file: PASSWD,
        })?,
        Some(group) => {
            let groups = std::fs::read_to_string(GROUP).unwrap_or_default();
            lookup_group(&groups, group).ok_or_else(|| ServeError::UnknownAccount {
                key: "run_as_group",
                name: group.to_owned(),
                what: "group",
                file: GROUP,
            })?
        }
    };
    Ok((uid, gid))
}

/// `(uid, primary gid)` of `user` (a name, or a number that need not be listed).
fn lookup_user(passwd: &str, user: &str) -> Option<(u32, Option<u32>)> {
    let entry = |line: &str| {
        let fields: Vec<&str> = line.split(':').collect();
        let uid = fields.get(2)?.parse::<u32>().ok()?;
        let gid = fields.get(3)?.parse::<u32>().ok()?;
        Some((fields[0].to_owned(), uid, gid))
    };
    let entries = passwd.lines().filter_map(entry);
    if let Ok(uid) = user.parse::<u32>() {
        let primary = entries.into_iter().find(|e| e.1 == uid).map(|e| e.2);
        return Some((uid, primary));
    }
    entries
        .into_iter()
        .find(|e| e.0 == user)
        .map(|e| (e.1, Some(e.2)))
}

/// The gid of `group` (a name, or a number).
fn lookup_group(groups: &str, group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Some(gid);
    }
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == group).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65533::/:/sbin/nologin\nbad line\n";
    const GROUP_TEXT: &str = "root:x:0:\nnogroup:x:65533:\nstaff:x:50:alice\n";

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert_eq!(
            lookup_user(PASSWD_TEXT, "nobody"),
            Some((65534, Some(65533)))
        );
        assert_eq!(lookup_user(PASSWD_TEXT, "0"), Some((0, Some(0))));
        assert_eq!(lookup_user(PASSWD_TEXT, "4242"), Some((4242, None)));
        assert_eq!(lookup_user(PASSWD_TEXT, "alice"), None);
        assert_eq!(lookup_group(GROUP_TEXT, "staff"), Some(50));
        assert_eq!(lookup_group(GROUP_TEXT, "77"), Some(77));
        assert_eq!(lookup_group(GROUP_TEXT, "wheel"), None);
    }

    #[test]
    fn an_unknown_user_is_a_clear_error() {
        let err = resolve("no-such-user-distio", None).unwrap_err();
        assert!(err.to_string().contains("run_as_user"), "{err}");
    }
}
