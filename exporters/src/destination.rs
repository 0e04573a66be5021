//! `s3://` destinations of the file exporters. The exporters write to a local staging
//! directory (their usual temporary file + rename); when every exporter finished, each staged
//! file is uploaded to its key through core's [`Store`] (multipart when large, see
//! [`Store::put_file`]). Names are deterministic per run window (`{since}`), so a repeated run
//! replaces its objects instead of adding copies.

use std::path::{Path, PathBuf};

use connect_audit_core::{Location, Store};

use crate::{Error, ValidExporter};

/// One exporter's S3 destination and the local directory it writes to meanwhile.
struct Staged {
    /// The local staging directory of this exporter.
    dir: PathBuf,
    /// Where the files go: the object's folder (a file output) or the dataset's root
    /// (partitions).
    target: Location,
}

/// The staging area of a run's `s3://` outputs.
pub struct S3Outputs {
    /// Removed when the run ends; nothing in it is ever a final output.
    _root: Option<tempfile::TempDir>,
    staged: Vec<Staged>,
}

/// An object uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// `s3://bucket/key`.
    pub url: String,
    /// Size in bytes.
    pub bytes: u64,
}

impl S3Outputs {
    /// Points every `s3://` file exporter at a local staging directory instead.
    pub fn stage(specs: &mut [ValidExporter]) -> Result<Self, Error> {
        let mut root = None;
        let mut staged = Vec::new();
        for (i, spec) in specs.iter_mut().enumerate() {
            let partitioned = spec.writes_folder();
            let Some(path) = spec.path_mut() else {
                continue;
            };
            if !path.starts_with("s3://") {
                continue;
            }
            let location = Location::parse(path).map_err(|source| Error::S3Output {
                context: format!("exporters[{i}].path `{path}`"),
                source: Box::new(source),
            })?;
            let Location::S3 { bucket, prefix } = location else {
                unreachable!("an s3:// path parses as S3");
            };
            if root.is_none() {
                root = Some(
                    tempfile::Builder::new()
                        .prefix("connect-audit-outputs-")
                        .tempdir()
                        .map_err(|source| Error::S3Output {
                            context: "cannot create a staging directory for the s3:// outputs"
                                .into(),
                            source: Box::new(source),
                        })?,
                );
            }
            let dir = root
                .as_ref()
                .map(|r| r.path().join(i.to_string()))
                .unwrap_or_default();
            let (target, local) = if partitioned {
                (Location::S3 { bucket, prefix }, dir.clone())
            } else {
                // Validation made sure the key names an object: `name` is not empty.
                let (folder, name) = prefix.rsplit_once('/').unwrap_or(("", &prefix));
                let local = dir.join(name);
                (
                    Location::S3 {
                        bucket,
                        prefix: folder.to_owned(),
                    },
                    local,
                )
            };
            *path = local.display().to_string();
            staged.push(Staged { dir, target });
        }
        Ok(Self {
            _root: root,
            staged,
        })
    }

    /// Whether any output goes to S3 (a client is then needed).
    pub fn any(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Uploads every staged file, after every exporter finished; `open_store` opens the store
    /// of an `s3://` folder (the caller holds the S3 client).
    pub async fn upload(
        &self,
        open_store: impl Fn(&Location) -> Result<Store, connect_audit_core::Error>,
    ) -> Result<Vec<Uploaded>, Error> {
        let mut uploaded = Vec::new();
        for staged in &self.staged {
            let store = open_store(&staged.target).map_err(Error::Store)?;
            for file in files(&staged.dir)? {
                let key = file
                    .strip_prefix(&staged.dir)
                    .expect("listed under the staging directory")
                    .iter()
                    .map(|part| part.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes =
                    store
                        .put_file(&key, &file)
                        .await
                        .map_err(|source| Error::S3Output {
                            context: format!("cannot upload {}", store.describe(&key)),
                            source: Box::new(source),
                        })?;
                uploaded.push(Uploaded {
                    url: store.describe(&key),
                    bytes,
                });
            }
        }
        Ok(uploaded)
    }
}

/// The finished files under `dir` (temporary files of the exporters start with `.`).
fn files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|source| Error::S3Output {
            context: format!("cannot list {}", dir.display()),
            source: Box::new(source),
        })?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type().is_file() && !hidden {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}
