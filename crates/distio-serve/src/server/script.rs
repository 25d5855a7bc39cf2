//! Which program runs for a script a client names, confined beneath the root.
//!
//! A script path is refused before anything starts when it is empty, absolute, has a
//! `..` component, or resolves (through symlinks) outside the root. The path that runs is
//! the canonical one checked here.
//!
//! Not yet race-free: a directory of the root swapped for a symlink between this check
//! and the `exec` could lead outside it. Roots writable by untrusted users are out of
//! scope until the security issue replaces this with `openat2(RESOLVE_BENEATH)` and
//! `execveat`.

use distio_proto::remote::SpawnFailure;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// What runs for a script: `program`, with `args` before the client's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<PathBuf>,
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

/// Resolves `script` under `root` (canonical). Blocking: call it off the runtime.
pub(crate) fn resolve(
    root: &Path,
    script: &str,
    interpreters: &BTreeMap<String, PathBuf>,
) -> Result<Resolved, Refusal> {
    if script.is_empty() || script.contains('\0') {
        return Err(refuse(
            SpawnFailure::Invalid,
            format!("the script path {script:?} is empty or contains a NUL byte"),
        ));
    }
    let relative = Path::new(script);
    let outside = || {
        refuse(
            SpawnFailure::OutsideRoot,
            format!(
                "the script `{script}` is outside the server's root: name it by a relative \
                 path without `..` that stays beneath the root"
            ),
        )
    };
    let confined = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if relative.is_absolute() || !confined {
        return Err(outside());
    }
    let canonical = match std::fs::canonicalize(root.join(relative)) {
        Ok(path) => path,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(
                SpawnFailure::NoSuchScript,
                format!("there is no script `{script}` under the server's root"),
            ));
        }
        Err(err) => {
            return Err(refuse(
                SpawnFailure::NoSuchScript,
                format!("the script `{script}` cannot be read on the server: {err}"),
            ));
        }
    };
    if !canonical.starts_with(root) {
        return Err(outside());
    }
    let meta = std::fs::metadata(&canonical).map_err(|err| {
        refuse(
            SpawnFailure::NoSuchScript,
            format!("the script `{script}` cannot be read on the server: {err}"),
        )
    })?;
    if !meta.is_file() {
        return Err(refuse(
            SpawnFailure::NotExecutable,
            format!("the script `{script}` is not a file"),
        ));
    }
    let interpreter = canonical
        .extension()
        .and_then(|ext| ext.to_str())
        .and_then(|ext| interpreters.get(ext));
    if let Some(interpreter) = interpreter {
        return Ok(Resolved {
            program: interpreter.clone(),
            args: vec![canonical],
        });
    }
    if meta.permissions().mode() & 0o111 != 0 {
        return Ok(Resolved {
            program: canonical,
            args: Vec::new(),
        });
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

    fn root() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("distio-script-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.sh"), "echo hi\n").unwrap();
        std::fs::write(dir.join("plain.txt"), "x").unwrap();
        let exe = dir.join("run");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _ = std::os::unix::fs::symlink("/etc/passwd", dir.join("escape"));
        std::fs::canonicalize(dir).unwrap()
    }

    #[test]
    fn scripts_are_confined_and_typed() {
        let root = root();
        let mut interpreters = BTreeMap::new();
        interpreters.insert("sh".to_owned(), PathBuf::from("/bin/sh"));
        let kind = |s: &str| resolve(&root, s, &interpreters).unwrap_err().kind;
        assert_eq!(kind("/etc/passwd"), SpawnFailure::OutsideRoot);
        assert_eq!(kind("sub/../plain.txt"), SpawnFailure::OutsideRoot);
        assert_eq!(kind("../x"), SpawnFailure::OutsideRoot);
        assert_eq!(kind("escape"), SpawnFailure::OutsideRoot);
        assert_eq!(kind("missing"), SpawnFailure::NoSuchScript);
        assert_eq!(kind("plain.txt"), SpawnFailure::NotExecutable);
        assert_eq!(kind("sub"), SpawnFailure::NotExecutable);
        assert_eq!(kind(""), SpawnFailure::Invalid);
        let sh = resolve(&root, "./sub/a.sh", &interpreters).unwrap();
        assert_eq!(sh.program, PathBuf::from("/bin/sh"));
        assert_eq!(sh.args, vec![root.join("sub/a.sh")]);
        let exe = resolve(&root, "run", &interpreters).unwrap();
        assert_eq!(exe.program, root.join("run"));
    }
}
