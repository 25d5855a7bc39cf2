//! Which file runs for a script a client names, confined beneath the root without races.
//!
//! A script path is first checked as text: it must be relative, made of `/`-separated
//! normal components, none of them empty, `.` or `..`, with no NUL byte (a `.` component is
//! refused, not skipped: there is one way to name a script). It is then opened beneath the
//! root's directory descriptor, held open since the server started, with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel refuses any resolution
//! that would leave the root, through `..`, an absolute symlink or a symlink whose target
//! climbs out, at the moment of the open, so a directory swapped for a symlink between
//! checks cannot lead outside. The open is `O_PATH`, so a FIFO or a device is never opened
//! (nothing blocks, no driver runs); `fstat` on it must say a regular file. Only then is it
//! reopened for reading through its own descriptor, and that descriptor is what runs: the
//! child executes `/proc/self/fd/N` (or the interpreter reads it), never the path again.
//!
//! A script writable by everyone (`mode & 0o002`) is refused unless the
//! `allow_world_writable_scripts` option is set: anyone on the host could change what runs.
//! The owner is not checked: a deploy user owning the scripts is normal, and who may write
//! the root is the operator's choice (see `docs/security.md`).

use distio_proto::remote::SpawnFailure;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The scripts root, open as a directory (`O_PATH`) for the life of the server.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (canonical) and checks that this kernel has `openat2`
    /// (`Err(None)`: it does not).
    pub(crate) fn open(path: &Path) -> Result<Root, Option<std::io::Error>> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| Some(err.into()))?;
        match rustix::fs::openat2(
            &fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(_) => {}
            Err(Errno::NOSYS) => return Err(None),
            Err(err) => return Err(Some(err.into())),
        }
        Ok(Root {
            fd,
            path: path.to_owned(),
        })
    }

    /// The root's path, for the child's working directory and messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// What runs for a script: the checked file itself, or an interpreter given it.
#[derive(Debug)]
pub(crate) enum Program {
    /// An executable file, run from its descriptor.
    Direct(OwnedFd),
    /// `interpreter`, given the script's descriptor as `/proc/self/fd/N`.
    Interpreted {
        interpreter: PathBuf,
        script: OwnedFd,
    },
}

/// Why a script does not run, as the spawn-failed frame says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) kind: SpawnFailure,
    pub(crate) message: String,
}

fn refuse(kind: SpawnFailure, message: String) -> Refusal {
    Refusal { kind, message }
}

/// The lexical check: `Err` names what is wrong with `script` as text.
fn check_text(script: &str) -> Result<(), Refusal> {
    let invalid = |why: &str| {
        Err(refuse(
            SpawnFailure::Invalid,
            format!(
                "the script path {script:?} {why}; name it by a relative path like `dir/worker.py`"
            ),
        ))
    };
    if script.is_empty() {
        return invalid("is empty");
    }
    if script.contains('\0') {
        return invalid("contains a NUL byte");
    }
    let outside = || {
        Err(refuse(
            SpawnFailure::OutsideRoot,
            format!(
                "the script `{script}` is outside the server's root: name it by a relative \
                 path without `..` that stays beneath the root"
            ),
        ))
    };
    if script.starts_with('/') {
        return outside();
    }
    for component in script.split('/') {
        match component {
            ".." => return outside(),
            "" => return invalid("has an empty component (`//` or a trailing `/`)"),
            "." => return invalid("has a `.` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Resolves `script` beneath `root`. Blocking (a few system calls): call it off the
/// runtime.
pub(crate) fn resolve(
    root: &Root,
    script: &str,
    interpreters: &BTreeMap<String, PathBuf>,
    allow_world_writable: bool,
) -> Result<Program, Refusal> {
    check_text(script)?;
    let cannot_read = |err: Errno| {
        refuse(
            SpawnFailure::NoSuchScript,
            format!("the script `{script}` cannot be read on the server: {err}"),
        )
    };
    let found = rustix::fs::openat2(
        &root.fd,
        script,
        // openat2 refuses any flag but these with O_PATH.
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|err| match err {
        // EXDEV: the resolution would leave the root; ELOOP: a magic link or a symlink loop.
        Errno::XDEV | Errno::LOOP => refuse(
            SpawnFailure::OutsideRoot,
            format!(
                "the script `{script}` leads outside the server's root (through a symlink); \
                 name a file beneath the root"
            ),
        ),
        Errno::NOENT | Errno::NOTDIR => refuse(
            SpawnFailure::NoSuchScript,
            format!("there is no script `{script}` under the server's root"),
        ),
        other => cannot_read(other),
    })?;
    let stat = rustix::fs::fstat(&found).map_err(cannot_read)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(refuse(
            SpawnFailure::NotExecutable,
            format!(
                "the script `{script}` is not a regular file (a directory, FIFO, device or \
                 socket cannot run)"
            ),
        ));
    }
    if stat.st_mode & 0o002 != 0 && !allow_world_writable {
        return Err(refuse(
            SpawnFailure::NotExecutable,
            format!(
                "the script `{script}` is writable by every user of the server's host, so \
                 anyone there could change what runs; remove that permission (chmod o-w) or \
                 set `allow_world_writable_scripts`"
            ),
        ));
    }
    // Reopen the very inode for reading through its descriptor (no path is resolved).
    let file = rustix::fs::open(
        format!("/proc/self/fd/{}", found.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(cannot_read)?;
    let again = rustix::fs::fstat(file.as_fd()).map_err(cannot_read)?;
    if (again.st_dev, again.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err(cannot_read(Errno::STALE));
    }
    let interpreter = Path::new(script)
        .extension()
        .and_then(|ext| ext.to_str())
        .and_then(|ext| interpreters.get(ext));
    if let Some(interpreter) = interpreter {
        return Ok(Program::Interpreted {
            interpreter: interpreter.clone(),
            script: file,
        });
    }
    if stat.st_mode & 0o111 != 0 {
        return Ok(Program::Direct(file));
    }
    Err(refuse(
        SpawnFailure::NotExecutable,
        format!(
            "the script `{script}` is neither executable nor of a type the server has an \
             interpreter for"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("distio-script-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.sh"), "echo hi\n").unwrap();
        std::fs::write(dir.join("plain.txt"), "x").unwrap();
        let exe = dir.join("run");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("open.sh"), "echo hi\n").unwrap();
        std::fs::set_permissions(dir.join("open.sh"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("escape")).unwrap();
        std::os::unix::fs::symlink("../..", dir.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("sub/a.sh", dir.join("inside.sh")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.join("fifo"),
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        std::fs::canonicalize(dir).unwrap()
    }

    fn interpreters() -> BTreeMap<String, PathBuf> {
        BTreeMap::from([("sh".to_owned(), PathBuf::from("/bin/sh"))])
    }

    #[test]
    fn text_checks_refuse_every_non_normal_component() {
        for (script, kind) in [
            ("", SpawnFailure::Invalid),
            ("a\0b", SpawnFailure::Invalid),
            ("./a.sh", SpawnFailure::Invalid),
            ("sub/./a.sh", SpawnFailure::Invalid),
            ("sub//a.sh", SpawnFailure::Invalid),
            ("sub/", SpawnFailure::Invalid),
            ("/etc/passwd", SpawnFailure::OutsideRoot),
            ("../x", SpawnFailure::OutsideRoot),
            ("sub/../a.sh", SpawnFailure::OutsideRoot),
        ] {
            assert_eq!(check_text(script).unwrap_err().kind, kind, "{script:?}");
        }
        assert!(check_text("sub/a.sh").is_ok());
        assert!(check_text("..hidden/x.sh").is_ok());
    }

    #[test]
    fn scripts_are_confined_and_typed() {
        let path = root("typed");
        let root = Root::open(&path).unwrap();
        let kind = |s: &str| resolve(&root, s, &interpreters(), false).unwrap_err().kind;
        assert_eq!(kind("escape"), SpawnFailure::OutsideRoot);
        assert_eq!(kind("sub/up/etc/passwd"), SpawnFailure::OutsideRoot);
        assert_eq!(kind("missing"), SpawnFailure::NoSuchScript);
        assert_eq!(kind("plain.txt"), SpawnFailure::NotExecutable);
        assert_eq!(kind("sub"), SpawnFailure::NotExecutable);
        assert_eq!(kind("fifo"), SpawnFailure::NotExecutable);
        assert_eq!(kind("open.sh"), SpawnFailure::NotExecutable);
        assert!(resolve(&root, "open.sh", &interpreters(), true).is_ok());
        match resolve(&root, "inside.sh", &interpreters(), false).unwrap() {
            Program::Interpreted {
                interpreter,
                script,
            } => {
                assert_eq!(interpreter, PathBuf::from("/bin/sh"));
                let target = std::fs::read_link(format!("/proc/self/fd/{}", script.as_raw_fd()));
                assert_eq!(target.unwrap(), path.join("sub/a.sh"));
            }
            other => panic!("expected an interpreted script, got {other:?}"),
        }
        assert!(matches!(
            resolve(&root, "run", &interpreters(), false).unwrap(),
            Program::Direct(_)
        ));
        let _ = std::fs::remove_dir_all(path);
    }
}
