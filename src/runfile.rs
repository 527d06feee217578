//! The daemon's run file, `<ccs>/run/ccsfs<mount point>.pid`: JSON (serde), so no file or
//! profile name can forge a field. The daemon writes it at mount and rewrites it (atomically)
//! whenever the profiles it serves change, so `ccsfs status` reports what the daemon serves,
//! not what `config.yaml` says.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One profile as the daemon serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// The account name in `config.yaml`.
    pub name: String,
    /// Its name in the mount (the instance dir's name).
    pub dir: String,
    /// `isolated`, `shared, group g`, … (see `status::describe`).
    pub mode: String,
    /// (routed name, where it leads)
    pub routes: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFile {
    pub pid: i32,
    pub mount_point: PathBuf,
    pub passthrough: bool,
    pub served: Vec<Served>,
    /// Why `config.yaml` is not what is served (a malformed edit), if it is not.
    pub config_error: Option<String>,
}

impl RunFile {
    pub fn read(path: &Path) -> Option<RunFile> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Writes it atomically (temp file, rename), mode 0600 in a 0700 dir.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_forge_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/x.pid");
        let rf = RunFile {
            pid: 42,
            mount_point: PathBuf::from("/m\npid=1\n"),
            passthrough: true,
            served: vec![Served {
                name: "a\"}\npid=7".into(),
                dir: "a".into(),
                mode: "isolated".into(),
                routes: vec![],
            }],
            config_error: None,
        };
        rf.write(&path).unwrap();
        assert_eq!(RunFile::read(&path), Some(rf));
    }
}
