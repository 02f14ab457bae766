//! Resolving the container's `User` (`""`, `uid`, `uid:gid`, `name`, `name:group`)
//! against the container's own `/etc/passwd` and `/etc/group`, with Docker's rules:
//! a numeric user needs no passwd entry, a name does; an explicit group replaces the
//! user's primary group and then no supplementary groups apply; otherwise the user's
//! supplementary groups are the groups that list it as a member. The messages are
//! Docker's (`unable to find user x: no matching entries in passwd file`).

use std::io;
use std::path::Path;

/// Who the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub sgids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The largest ID Docker accepts.
const MAX_ID: u64 = i32::MAX as u64;

/// The colon-separated fields of each entry of a passwd or group file (blank lines
/// and comments skipped).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').collect())
}

/// Field `i` as a number; missing or malformed reads as 0, as Docker's parser does.
fn number(f: &[&str], i: usize) -> u32 {
    f.get(i).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text)
        .map(|f| PasswdEntry {
            name: f[0].to_string(),
            uid: number(&f, 2),
            gid: number(&f, 3),
            home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text)
        .map(|f| GroupEntry {
            name: f[0].to_string(),
            gid: number(&f, 2),
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

fn parse_id(s: &str) -> Option<Result<u32, String>> {
    let n: u64 = s.parse().ok()?;
    Some(if n > MAX_ID {
        Err("uids and gids must be in range 0-2147483647".to_string())
    } else {
        Ok(n as u32)
    })
}

/// Resolves `spec` with the contents of passwd and group (`None`: file missing).
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser, String> {
    let mut parts = spec.splitn(3, ':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();

    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        sgids: Vec::new(),
        home: "/".to_string(),
    };
    let uid_arg = parse_id(user_arg).transpose()?;
    let found = users.iter().find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(uid)) => u.uid == uid,
        (name, None) => u.name == name,
    });
    let mut matched_name = None;
    if let Some(u) = found {
        matched_name = Some(u.name.as_str());
        out.uid = u.uid;
        out.gid = u.gid;
        out.home = u.home.clone();
    } else if !user_arg.is_empty() {
        match uid_arg {
            Some(uid) => out.uid = uid,
            None => {
                return Err(format!(
                    "unable to find user {user_arg}: no matching entries in passwd file"
                ));
            }
        }
    }

    if !group_arg.is_empty() {
        let gid_arg = parse_id(group_arg).transpose()?;
        let found = groups.iter().find(|g| match gid_arg {
            Some(gid) => g.gid == gid,
            None => g.name == group_arg,
        });
        out.gid = match (found, gid_arg) {
            (Some(g), _) => g.gid,
            (None, Some(gid)) => gid,
            (None, None) => {
                return Err(format!(
                    "unable to find group {group_arg}: no matching entries in group file"
                ));
            }
        };
    } else if let Some(name) = matched_name {
        out.sgids = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(out)
}

/// Adds `--group-add`s (names from the container's /etc/group, or numeric IDs used as
/// they are) to the process's supplementary groups.
pub fn add_groups(who: &mut ExecUser, extra: &[String], group: Option<&str>) -> Result<(), String> {
    let groups = group.map(parse_group).unwrap_or_default();
    for g in extra {
        let gid = match parse_id(g).transpose()? {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    format!("Unable to find group {g}: no matching entries in group file")
                })?,
        };
        if !who.sgids.contains(&gid) {
            who.sgids.push(gid);
        }
    }
    Ok(())
}

/// Reads a file of the container (after pivot_root); `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::store::with_path(e, "read", path)),
    }
}

/// `env` with `HOME=home` added when it has no `HOME`, as Docker does.
pub fn with_home(env: &[String], home: &str) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_added_by_name_or_number() {
        let mut who = ExecUser {
            uid: 0,
            gid: 0,
            sgids: vec![10],
            home: "/".into(),
        };
        let group = "wheel:x:10:\naudio:x:29:\n";
        add_groups(
            &mut who,
            &["audio".into(), "12345".into(), "10".into()],
            Some(group),
        )
        .unwrap();
        assert_eq!(who.sgids, vec![10, 29, 12345]);
        assert_eq!(
            add_groups(&mut who, &["nosuch".into()], Some(group)).unwrap_err(),
            "Unable to find group nosuch: no matching entries in group file"
        );
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        # comment\n\
        app:x:1000:1000::/home/app:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app,other\naudio:x:29:app\n\
        app:x:1000:\nnogroup:x:65534:\n";

    fn r(spec: &str) -> Result<ExecUser, String> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn empty_user_is_root_with_roots_home() {
        let u = r("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert!(u.sgids.is_empty());
    }

    #[test]
    fn names_and_numbers_resolve_with_supplementary_groups() {
        let u = r("app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.sgids, vec![10, 29]);
        assert_eq!(u.home, "/home/app");
        let u = r("1000").unwrap();
        assert_eq!(u.sgids, vec![10, 29]);
        let u = r("65534").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_str()),
            (65534, 65534, "/nonexistent")
        );
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let u = r("app:audio").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 29));
        assert!(u.sgids.is_empty());
        let u = r("app:4242").unwrap();
        assert_eq!(u.gid, 4242);
    }

    #[test]
    fn unknown_numeric_ids_are_used_as_given() {
        let u = r("4321:8765").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4321, 8765, "/"));
        let u = resolve("7", None, None).unwrap();
        assert_eq!((u.uid, u.gid), (7, 0));
    }

    #[test]
    fn unknown_names_fail_with_dockers_words() {
        assert_eq!(
            r("ghost").unwrap_err(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            r("app:ghosts").unwrap_err(),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert_eq!(
            resolve("app", None, None).unwrap_err(),
            "unable to find user app: no matching entries in passwd file"
        );
        assert!(r("99999999999").unwrap_err().contains("range"));
    }

    #[test]
    fn home_is_added_only_when_missing() {
        let env = vec!["PATH=/bin".to_string()];
        assert_eq!(with_home(&env, "/root"), vec!["PATH=/bin", "HOME=/root"]);
        let env = vec!["HOME=/x".to_string()];
        assert_eq!(with_home(&env, "/root"), vec!["HOME=/x"]);
    }
}
