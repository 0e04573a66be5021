//! Where inputs and outputs live: a local path or `s3://bucket/prefix`, and the [`Store`] that
//! reads and writes objects there. The one place that touches files or S3 objects, so
//! snapshot, query and exporters never write that code twice.
//!
//! A [`Store`] is a [`Location`] bound to what it needs: a local root directory, or an S3
//! client, bucket and prefix. Objects are named by relative, `/`-separated keys, checked by
//! [`validate_key`] before they become a path or an S3 key, so a key from outside (an id from
//! an API, a key from a listing) can never reach outside the store.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use connect_audit_core::location::Store;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::local(dir.path());
//! store.put("users/a.json", b"{}".to_vec()).await?;
//! assert_eq!(store.get("users/a.json").await?, Some(b"{}".to_vec()));
//! assert_eq!(store.get("users/b.json").await?, None);
//! assert_eq!(store.list_dirs("").await?, ["users/"]);
//! assert!(store.get("../etc/passwd").await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;

use crate::error::Error;

/// A local path or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or directory on this machine.
    Local(PathBuf),
    /// An S3 bucket and key prefix (no leading or trailing `/`).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, possibly empty.
        prefix: String,
    },
}

impl Location {
    /// Reads `s3://bucket/prefix` or a local path.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(Error::BadLocation(text.to_owned()));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if text.is_empty() {
            return Err(Error::BadLocation(text.to_owned()));
        }
        Ok(Self::Local(PathBuf::from(text)))
    }

    /// The local path, or [`Error::S3Unsupported`].
    pub fn local_path(&self) -> Result<&Path, Error> {
        match self {
            Self::Local(p) => Ok(p),
            Self::S3 { .. } => Err(Error::S3Unsupported(self.to_string())),
        }
    }

    /// Reads a whole object.
    pub fn get(&self) -> Result<Vec<u8>, Error> {
        let path = self.local_path()?;
        fs::read(path).map_err(|e| Error::io(path, e))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A [`Location`] bound to what it needs to be read and written: a local root, or an S3
/// client + bucket + prefix.
///
/// Keys are relative to the root and `/`-separated on every backend, so the same code writes
/// `users/<id>.json` to a directory or to S3. Cloning is cheap (the S3 client is shared).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// No leading or trailing `/`; possibly empty.
        prefix: String,
    },
}

/// An object found by [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key, relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// A token that changes whenever the object is rewritten, as [`Store::list`] and
    /// [`Store::put_tagged`] give it: S3's `ETag`; locally the size and the modification time
    /// to the nanosecond. `None` from [`Store::walk`], which does not need it.
    pub tag: Option<String>,
}

/// What [`Store::walk`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Walked {
    /// The objects, in path order.
    pub objects: Vec<ObjectInfo>,
    /// What could not be read (locally only), in the order the walk met it.
    pub unreadable: Vec<Unreadable>,
}

/// An entry of a local walk that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its path.
    pub path: PathBuf,
    /// Why: `cannot read: …`, `symbolic link loop back to …`, or a name that is not UTF-8.
    pub reason: String,
}

impl Store {
    /// A store in a local directory (created on the first [`put`](Self::put)).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Local { root: root.into() },
        }
    }

    /// A store under `s3://bucket/prefix`, reached with `client`.
    pub fn s3(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            backend: Backend::S3 {
                client,
                bucket: bucket.into(),
                prefix: prefix.into().trim_matches('/').to_owned(),
            },
        }
    }

    /// A local path becomes a local store; an `s3://` location needs a client
    /// ([`Error::NoS3Client`] if `s3` is `None`).
    pub fn open(location: &Location, s3: Option<&aws_sdk_s3::Client>) -> Result<Self, Error> {
        match (location, s3) {
            (Location::Local(root), _) => Ok(Self::local(root.clone())),
            (Location::S3 { bucket, prefix }, Some(client)) => {
                Ok(Self::s3(client.clone(), bucket.clone(), prefix.clone()))
            }
            (Location::S3 { .. }, None) => Err(Error::NoS3Client(location.to_string())),
        }
    }

    /// Where the store is.
    pub fn location(&self) -> Location {
        match &self.backend {
            Backend::Local { root } => Location::Local(root.clone()),
            Backend::S3 { bucket, prefix, .. } => Location::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        }
    }

    /// The root directory of a local store; `None` for S3.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local { root } => Some(root),
            Backend::S3 { .. } => None,
        }
    }

    /// The human-readable name of a key, for messages: a path, or `s3://bucket/prefix/key`.
    pub fn describe(&self, key: &str) -> String {
        match &self.backend {
            Backend::Local { root } if key.is_empty() => root.display().to_string(),
            Backend::Local { root } => root.join(key).display().to_string(),
            Backend::S3 { bucket, prefix, .. } if key.is_empty() => Location::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            }
            .to_string(),
            Backend::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{}", s3_key(prefix, key)),
        }
    }

    /// Reads a whole object; `None` when it does not exist. On S3 a body cut off mid-stream,
    /// or not whole within the client's operation attempt timeout (a server that stopped
    /// sending), is fetched again, up to the client's `max_attempts` in all.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get_with_metadata(key).await?.map(|(bytes, _)| bytes))
    }

    /// [`get`](Self::get), with the object's user metadata (`x-amz-meta-*`, names without
    /// the prefix); `None` for a local file, which has none.
    pub async fn get_with_metadata(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<std::collections::HashMap<String, String>>)>, Error> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                blocking(path.clone(), move || match fs::read(&path) {
                    Ok(bytes) => Ok(Some((bytes, None))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(path, e)),
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                // The SDK retries a request that fails; a body cut off while it streams (the
                // server died under it) is fetched again, as many times as a request is tried.
                // The SDK's attempt timeout ends with the answer's headers, so the body gets
                // the same budget here: a server that stops sending mid-body fails the attempt
                // instead of stalling the run.
                let attempts = client
                    .config()
                    .retry_config()
                    .map_or(1, aws_sdk_s3::config::retry::RetryConfig::max_attempts);
                let body_limit = client.config().timeout_config().and_then(
                    aws_sdk_s3::config::timeout::TimeoutConfig::operation_attempt_timeout,
                );
                let mut attempt = 1;
                loop {
                    let sent = client
                        .get_object()
                        .bucket(bucket)
                        .key(s3_key(prefix, key))
                        .send()
                        .await;
                    let output = match sent {
                        Ok(output) => output,
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(GetObjectError::is_no_such_key) =>
                        {
                            return Ok(None);
                        }
                        Err(e) => return Err(s3_error(self.describe(key), "GetObject", e)),
                    };
                    let metadata = output.metadata().cloned().unwrap_or_default();
                    let read = match body_limit {
                        Some(limit) => tokio::time::timeout(limit, output.body.collect())
                            .await
                            .map_err(|elapsed| BodyError::TimedOut(limit, elapsed)),
                        None => Ok(output.body.collect().await),
                    };
                    let failed = match read {
                        // `into_bytes` copies the chunks whole; `to_vec` would collect byte by
                        // byte (a seventh of a scan's CPU time when measured).
                        Ok(Ok(body)) => {
                            return Ok(Some((Vec::from(body.into_bytes()), Some(metadata))));
                        }
                        Ok(Err(e)) => BodyError::Broken(e),
                        Err(timed_out) => timed_out,
                    };
                    if attempt < attempts {
                        attempt += 1;
                        continue;
                    }
                    let (text, source): (String, Box<dyn std::error::Error + Send + Sync>) =
                        match failed {
                            BodyError::Broken(e) => (chain_text(&e), Box::new(e)),
                            BodyError::TimedOut(limit, elapsed) => (
                                format!(
                                    "timed out: not whole within the attempt timeout of {limit:?}"
                                ),
                                Box::new(elapsed),
                            ),
                        };
                    return Err(Error::S3 {
                        url: self.describe(key),
                        operation: "GetObject",
                        detail: format!(": reading the body ({attempt} attempts): {text}"),
                        source,
                    });
                }
            }
        }
    }

    /// Every object under `prefix` (recursive; a plain string prefix, as S3 has it), keys
    /// relative to the store root, sorted, with sizes. Nothing there is an empty list.
    ///
    /// Locally, the temporary files of writes in progress (`.<name>.<random>.tmp`) are not
    /// listed, and a file name that is not UTF-8 is an error naming the file.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Error> {
        self.list_after(prefix, None).await
    }

    /// [`list`](Self::list), only the keys that sort after `start_after` (a key relative to
    /// the root; S3's `start-after`, so the objects before it are not even listed there).
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<ObjectInfo>, Error> {
        validate_prefix(prefix)?;
        let mut objects = match &self.backend {
            Backend::Local { root } => {
                let (root, prefix) = (root.clone(), prefix.to_owned());
                let mut found =
                    blocking(root.clone(), move || list_local(&root, &prefix, None)).await?;
                if let Some(after) = start_after {
                    found.retain(|o| o.key.as_str() > after);
                }
                found
            }
            Backend::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                let full = s3_key(root, prefix);
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&full)
                    .set_start_after(start_after.map(|k| s3_key(root, k)))
                    .into_paginator()
                    .send();
                let mut objects = Vec::new();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(|e| s3_error(self.describe(prefix), "ListObjectsV2", e))?;
                    for object in page.contents() {
                        let Some(key) = object.key().and_then(|k| relative_key(root, k)) else {
                            continue;
                        };
                        // Zero-byte "folder" markers some tools create are not objects.
                        if key.is_empty() || key.ends_with('/') {
                            continue;
                        }
                        objects.push(ObjectInfo {
                            key: key.to_owned(),
                            size: object
                                .size()
                                .and_then(|s| u64::try_from(s).ok())
                                .unwrap_or(0),
                            tag: object.e_tag().map(str::to_owned),
                        });
                    }
                }
                objects
            }
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Every object of the store as a reader of the whole tree sees it, for trails whose
    /// layout the caller does not know: keys in path order (by `/`-separated segment), with
    /// sizes, never descending into a folder named in `skip_folders`. Unlike
    /// [`list`](Self::list), what cannot be read does not stop the walk: it is reported in
    /// [`Walked::unreadable`], named, and the walk goes on.
    ///
    /// Locally: links are followed, only regular files are objects (a FIFO or a socket is
    /// passed over without being opened), a symbolic link loop or an entry that cannot be
    /// read is unreadable, and so is a file name that is not UTF-8. A root that is itself a
    /// file is one object with the empty key. On S3: one recursive listing of the prefix, whose
    /// failure is an error as in [`list`](Self::list).
    pub async fn walk(&self, skip_folders: &'static [&'static str]) -> Result<Walked, Error> {
        match &self.backend {
            Backend::Local { root } => {
                let root = root.clone();
                blocking(root.clone(), move || Ok(walk_local(&root, skip_folders))).await
            }
            Backend::S3 { .. } => {
                let mut objects: Vec<ObjectInfo> = self
                    .list("")
                    .await?
                    .into_iter()
                    .filter(|o| {
                        // Every segment but the last is a folder.
                        !o.key
                            .split('/')
                            .rev()
                            .skip(1)
                            .any(|f| skip_folders.contains(&f))
                    })
                    .collect();
                objects.sort_by(|a, b| a.key.split('/').cmp(b.key.split('/')));
                Ok(Walked {
                    objects,
                    unreadable: Vec::new(),
                })
            }
        }
    }

    /// Whether any object exists under `prefix` (on S3, one request whatever the size).
    pub async fn has_objects(&self, prefix: &str) -> Result<bool, Error> {
        validate_prefix(prefix)?;
        match &self.backend {
            Backend::Local { root } => {
                let (root, prefix) = (root.clone(), prefix.to_owned());
                blocking(root.clone(), move || {
                    list_local(&root, &prefix, Some(1)).map(|found| !found.is_empty())
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                let page = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(s3_key(root, prefix))
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| s3_error(self.describe(prefix), "ListObjectsV2", e))?;
                Ok(!page.contents().is_empty())
            }
        }
    }

    /// The "sub-directories" directly under `prefix` (S3: common prefixes with delimiter `/`;
    /// locally: directories), as relative keys ending in `/`, sorted. S3 has no empty
    /// directories; a local one is listed.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, Error> {
        validate_prefix(prefix)?;
        let mut dirs = match &self.backend {
            Backend::Local { root } => {
                let (root, prefix) = (root.clone(), prefix.to_owned());
                blocking(root.clone(), move || list_local_dirs(&root, &prefix)).await?
            }
            Backend::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(s3_key(root, prefix))
                    .delimiter("/")
                    .into_paginator()
                    .send();
                let mut dirs = Vec::new();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(|e| s3_error(self.describe(prefix), "ListObjectsV2", e))?;
                    for common in page.common_prefixes() {
                        if let Some(dir) = common.prefix().and_then(|p| relative_key(root, p)) {
                            dirs.push(dir.to_owned());
                        }
                    }
                }
                dirs
            }
        };
        dirs.sort();
        Ok(dirs)
    }

    /// Writes a whole object so that it appears complete or not at all: locally an
    /// [`AtomicFile`] (temporary file, fsync, rename); on S3 one `PutObject`.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), Error> {
        self.put_tagged(key, body).await.map(drop)
    }

    /// [`put`](Self::put), returning the object's new [`ObjectInfo::tag`] (as a listing
    /// will show it), when the backend gives one.
    pub async fn put_tagged(&self, key: &str, body: Vec<u8>) -> Result<Option<String>, Error> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                blocking(path.clone(), move || {
                    let path = AtomicFile::written(&path, &body)?.commit()?;
                    let metadata = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
                    Ok(local_tag(&metadata))
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let mut request = client
                    .put_object()
                    .bucket(bucket)
                    .key(s3_key(prefix, key))
                    .body(ByteStream::from(body));
                if Path::new(key).extension().is_some_and(|e| e == "json") {
                    request = request.content_type("application/json");
                }
                let out = request
                    .send()
                    .await
                    .map_err(|e| s3_error(self.describe(key), "PutObject", e))?;
                Ok(out.e_tag().map(str::to_owned))
            }
        }
    }

    /// Writes a whole object only if none is there yet: `true` when this call created it,
    /// `false` when an object already was (it is left as it was). Locally the temporary file
    /// is linked to its final name, which fails when the name exists; on S3 a `PutObject` with
    /// `If-None-Match: *` (412 when the key exists). Two writers racing: exactly one wins.
    pub async fn put_new(&self, key: &str, body: Vec<u8>) -> Result<bool, Error> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                blocking(path.clone(), move || {
                    AtomicFile::written(&path, &body)?.commit_new()
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                // 412: the key exists. 409 (`ConditionalRequestConflict`): another conditional
                // write raced this one; S3 asks to try again.
                let mut attempt: u64 = 0;
                loop {
                    attempt += 1;
                    let sent = client
                        .put_object()
                        .bucket(bucket)
                        .key(s3_key(prefix, key))
                        .if_none_match("*")
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await;
                    let status = match &sent {
                        Ok(_) => return Ok(true),
                        Err(e) => e.raw_response().map(|r| r.status().as_u16()),
                    };
                    match (status, sent) {
                        (Some(412), _) => return Ok(false),
                        (Some(409), _) if attempt < 5 => {
                            tokio::time::sleep(std::time::Duration::from_millis(50 * attempt))
                                .await;
                        }
                        (_, Err(e)) => return Err(s3_error(self.describe(key), "PutObject", e)),
                        (_, Ok(_)) => return Ok(true),
                    }
                }
            }
        }
    }

    /// Removes an object; nothing there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                blocking(path.clone(), move || match fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io(&path, e)),
                })
                .await
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(s3_key(prefix, key))
                    .send()
                    .await
                    .map_err(|e| s3_error(self.describe(key), "DeleteObject", e))?;
                Ok(())
            }
        }
    }
}

/// [`ObjectInfo::tag`] of a local file: its size and modification time (nanoseconds).
fn local_tag(metadata: &fs::Metadata) -> Option<String> {
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{}-{}.{:09}",
        metadata.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    ))
}

/// Objects up to this size are uploaded by [`Store::put_file`] in one `PutObject`; larger
/// ones in parts of this size (S3 accepts parts of 5 MiB to 5 GiB, at most 10 000 of them).
pub const MULTIPART_PART_SIZE: u64 = 16 * 1024 * 1024;

impl Store {
    /// Copies a local file into the store so that it appears complete or not at all: locally
    /// an [`AtomicFile`]; on S3 one `PutObject`, or a multipart upload above
    /// [`MULTIPART_PART_SIZE`] (completed only when every part landed, aborted on failure).
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64, Error> {
        self.put_file_in_parts(key, file, MULTIPART_PART_SIZE).await
    }

    /// [`put_file`](Self::put_file) with another part size (at least 5 MiB on AWS).
    pub async fn put_file_in_parts(
        &self,
        key: &str,
        file: &Path,
        part_size: u64,
    ) -> Result<u64, Error> {
        validate_key(key)?;
        let size = fs::metadata(file).map_err(|e| Error::io(file, e))?.len();
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                let from = file.to_owned();
                blocking(path.clone(), move || {
                    let mut out = AtomicFile::create(&path)?;
                    let mut input = fs::File::open(&from).map_err(|e| Error::io(&from, e))?;
                    io::copy(&mut input, &mut out).map_err(|e| Error::io(&path, e))?;
                    out.commit().map(drop)
                })
                .await?;
            }
            Backend::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = s3_key(prefix, key);
                if size <= part_size {
                    let body = ByteStream::from(read_part(file, 0, size).await?);
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(&full)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| s3_error(self.describe(key), "PutObject", e))?;
                } else {
                    self.multipart(client, bucket, &full, key, file, size, part_size)
                        .await?;
                }
            }
        }
        Ok(size)
    }

    #[allow(clippy::too_many_arguments)]
    async fn multipart(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
        full: &str,
        key: &str,
        file: &Path,
        size: u64,
        part_size: u64,
    ) -> Result<(), Error> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(full)
            .send()
            .await
            .map_err(|e| s3_error(self.describe(key), "CreateMultipartUpload", e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let upload = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < size {
                let length = part_size.min(size - offset);
                let body = ByteStream::from(read_part(file, offset, length).await?);
                let part = client
                    .upload_part()
                    .bucket(bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| s3_error(self.describe(key), "UploadPart", e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(ToOwned::to_owned))
                        .build(),
                );
                offset += length;
                number += 1;
            }
            client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| s3_error(self.describe(key), "CompleteMultipartUpload", e))?;
            Ok(())
        };
        let result = upload.await;
        if result.is_err() {
            // Best effort: the parts would otherwise be billed until a lifecycle rule
            // removes them. The upload's own error is the one reported.
            let _ = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(full)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

/// Reads `length` bytes of `file` from `offset`: one part in memory (at most the part size),
/// so its signature covers a known body.
async fn read_part(file: &Path, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let path = file.to_owned();
    blocking(path.clone(), move || {
        let mut f = fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(&path, e))?;
        let mut buf = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        f.take(length)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        if buf.len() as u64 != length {
            return Err(Error::io(
                &path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file changed while uploading",
                ),
            ));
        }
        Ok(buf)
    })
    .await
}

/// Checks that `key` names an object inside a store: relative, `/`-separated, not empty, no
/// `..`, no backslash, no NUL or other control character, no empty or `.` segment, no
/// trailing `/`. Every key the store uses passes here first, so ids and listed keys cannot
/// escape the root or alias another object.
pub fn validate_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(bad_key(key, "it is empty"));
    }
    check_parts(key, false)
}

/// [`validate_key`] for a listing prefix: may also be empty or end with `/`.
fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_parts(prefix, true)
}

fn check_parts(key: &str, trailing_slash: bool) -> Result<(), Error> {
    if key.starts_with('/') {
        return Err(bad_key(key, "it is absolute (starts with `/`)"));
    }
    if key.contains("..") {
        return Err(bad_key(key, "it contains `..`"));
    }
    if key.contains('\\') {
        return Err(bad_key(key, "it contains a backslash"));
    }
    if key.chars().any(char::is_control) {
        return Err(bad_key(key, "it contains a control character"));
    }
    let body = if trailing_slash {
        key.strip_suffix('/').unwrap_or(key)
    } else {
        key
    };
    if body
        .split('/')
        .any(|segment| segment.is_empty() || segment == ".")
    {
        return Err(bad_key(key, "it has an empty or `.` path segment"));
    }
    Ok(())
}

fn bad_key(key: &str, reason: &'static str) -> Error {
    Error::BadKey {
        key: key.to_owned(),
        reason,
    }
}

/// The full S3 key of a relative key (or prefix) under the store's prefix.
fn s3_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

/// A full S3 key made relative to the store's prefix; `None` if it is not under it.
fn relative_key<'a>(prefix: &str, full: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(full);
    }
    full.strip_prefix(prefix)?.strip_prefix('/')
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::io(path, io::Error::other(e))))
}

/// Files under `root` whose relative key starts with `prefix`, up to `limit` of them.
fn list_local(root: &Path, prefix: &str, limit: Option<usize>) -> Result<Vec<ObjectInfo>, Error> {
    let dir = root.join(&prefix[..prefix.rfind('/').map_or(0, |i| i + 1)]);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut objects = Vec::new();
    for entry in walkdir::WalkDir::new(&dir).follow_links(true).min_depth(1) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(&dir).to_owned();
            Error::io(path, e.into())
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            continue;
        }
        let key = local_key(root, entry.path())?;
        if !key.starts_with(prefix) {
            continue;
        }
        let metadata = entry
            .metadata()
            .map_err(|e| Error::io(entry.path(), e.into()))?;
        objects.push(ObjectInfo {
            key,
            size: metadata.len(),
            tag: local_tag(&metadata),
        });
        if limit.is_some_and(|n| objects.len() >= n) {
            break;
        }
    }
    Ok(objects)
}

/// [`Store::walk`] of a local root.
fn walk_local(root: &Path, skip_folders: &[&str]) -> Walked {
    let mut walked = Walked::default();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !(e.depth() > 0
                && e.file_type().is_dir()
                && e.file_name()
                    .to_str()
                    .is_some_and(|name| skip_folders.contains(&name)))
        });
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                walked.unreadable.push(Unreadable {
                    path: e.path().unwrap_or(root).to_owned(),
                    reason: walk_error_reason(&e),
                });
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(key) = local_key(root, entry.path()) else {
            walked.unreadable.push(Unreadable {
                path: entry.into_path(),
                reason: "the file name is not UTF-8".to_owned(),
            });
            continue;
        };
        let size = entry.metadata().map_or(0, |m| m.len());
        walked.objects.push(ObjectInfo {
            key,
            size,
            tag: None,
        });
    }
    walked
}

fn walk_error_reason(e: &walkdir::Error) -> String {
    if let Some(ancestor) = e.loop_ancestor() {
        return format!("symbolic link loop back to {}", ancestor.display());
    }
    match e.io_error() {
        Some(io) => format!("cannot read: {io}"),
        None => e.to_string(),
    }
}

/// Directories directly under `root/prefix`'s folder whose key starts with `prefix`.
fn list_local_dirs(root: &Path, prefix: &str) -> Result<Vec<String>, Error> {
    let split = prefix.rfind('/').map_or(0, |i| i + 1);
    let (folder, start) = prefix.split_at(split);
    let dir = root.join(folder);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(not_utf8(&path));
        };
        if name.starts_with(start) {
            dirs.push(format!("{folder}{name}/"));
        }
    }
    Ok(dirs)
}

/// The `/`-separated key of a file under `root`.
fn local_key(root: &Path, path: &Path) -> Result<String, Error> {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let mut key = String::new();
    for part in relative.components() {
        let part = part.as_os_str().to_str().ok_or_else(|| not_utf8(path))?;
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(part);
    }
    Ok(key)
}

fn not_utf8(path: &Path) -> Error {
    Error::io(
        path,
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the file name is not UTF-8, so it cannot be an object key",
        ),
    )
}

/// Wraps an SDK error with the object it is about, keeping the SDK error as the source.
fn s3_error<E, R>(url: String, operation: &'static str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let detail = match err.as_service_error() {
        Some(service) => {
            let mut detail = String::new();
            if let Some(code) = service.code() {
                detail.push_str(": ");
                detail.push_str(code);
            }
            if let Some(message) = service.message() {
                detail.push_str(": ");
                detail.push_str(message);
            }
            if detail.is_empty() {
                detail = format!(": {}", chain_text(&err));
            }
            detail
        }
        None => format!(": {}", chain_text(&err)),
    };
    Error::S3 {
        url,
        operation,
        detail,
        source: Box::new(err),
    }
}

/// Why an S3 object body could not be read whole.
enum BodyError {
    /// The stream broke (cut off, connection reset).
    Broken(aws_sdk_s3::primitives::ByteStreamError),
    /// Not whole within the attempt timeout: the server stopped sending.
    TimedOut(std::time::Duration, tokio::time::error::Elapsed),
}

/// An error and its causes on one line, e.g. `dispatch failure: io error: … Connection refused`.
fn chain_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

/// A file that appears under its final name only when complete: written to a temporary file
/// in the same directory, flushed to disk, then renamed. Dropped without
/// [`commit`](Self::commit), it leaves nothing behind.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`, creating its parent directories.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = path
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            temp,
            path: path.to_owned(),
        })
    }

    /// [`commit`](Self::commit), only if nothing has the final name yet: `true` when this
    /// call created it; `false` (and the temporary file removed) when something had it.
    pub fn commit_new(mut self) -> Result<bool, Error> {
        self.temp.flush().map_err(|e| Error::io(&self.path, e))?;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(&self.path, e))?;
        match self.temp.persist_noclobber(&self.path) {
            Ok(_) => Ok(true),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(&self.path, e.error)),
        }
    }

    /// [`create`](Self::create), with `body` written: to be committed.
    pub fn written(path: &Path, body: &[u8]) -> Result<Self, Error> {
        let mut file = Self::create(path)?;
        file.write_all(body).map_err(|e| Error::io(path, e))?;
        Ok(file)
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file to its final name.
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        self.temp.flush().map_err(|e| Error::io(&self.path, e))?;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(&self.path, e))?;
        self.temp
            .persist(&self.path)
            .map_err(|e| Error::io(&self.path, e.error))?;
        Ok(self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(store: &Store) -> Walked {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(store.walk(&["skip"]))
            .unwrap()
    }

    #[test]
    fn a_local_walk_sees_every_file_in_path_order_and_names_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "b/2.json",
            "a/1.json",
            "a-b/3.json",
            "skip/x.json",
            "a/skip/y.json",
        ] {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, rel).unwrap();
        }
        let keys = |w: &Walked| w.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        let walked = walk(&Store::local(root));
        // By segment: `a/…` before `a-b/…`, as a listing sorted by path component.
        assert_eq!(keys(&walked), ["a/1.json", "a-b/3.json", "b/2.json"]);
        assert_eq!(walked.objects[0].size, 8);
        assert!(walked.unreadable.is_empty());

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("..", root.join("a/loop")).unwrap();
            std::os::unix::fs::symlink("/nonexistent/x", root.join("b/gone.json")).unwrap();
            let walked = walk(&Store::local(root));
            assert_eq!(keys(&walked), ["a/1.json", "a-b/3.json", "b/2.json"]);
            let reasons: Vec<(PathBuf, &str)> = walked
                .unreadable
                .iter()
                .map(|u| (u.path.clone(), u.reason.split(':').next().unwrap()))
                .collect();
            assert_eq!(reasons.len(), 2, "{:?}", walked.unreadable);
            assert_eq!(reasons[0].0, root.join("a/loop"));
            assert!(reasons[0].1.starts_with("symbolic link loop back to "));
            assert_eq!(reasons[1], (root.join("b/gone.json"), "cannot read"));
        }

        // A root that is a file is one object, with the empty key.
        let file = Store::local(root.join("a/1.json"));
        assert_eq!(
            walk(&file).objects,
            [ObjectInfo {
                key: String::new(),
                size: 8,
                tag: None,
            }]
        );
    }

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("s3://trail-bucket/AWSLogs/").unwrap(),
            Location::S3 {
                bucket: "trail-bucket".into(),
                prefix: "AWSLogs".into()
            }
        );
        assert!(Location::parse("s3://Bad_Bucket/x").is_err());
        assert!(Location::parse("").is_err());
        let s3 = Location::parse("s3://bucket").unwrap();
        assert!(matches!(s3.get(), Err(Error::S3Unsupported(_))));
        assert_eq!(s3.to_string(), "s3://bucket");
        assert!(matches!(
            Store::open(&s3, None),
            Err(Error::NoS3Client(name)) if name == "s3://bucket"
        ));
        let local = Store::open(&Location::Local("some/dir".into()), None).unwrap();
        assert_eq!(local.location(), Location::Local("some/dir".into()));
    }

    #[test]
    fn keys_that_could_escape_are_rejected() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "users/../../x",
            "a/..",
            "a..b",
            "a\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            "a//b",
            "./a",
            "a/./b",
            "users/",
        ] {
            let err = validate_key(key).unwrap_err();
            assert!(
                matches!(&err, Error::BadKey { key: k, .. } if k == key),
                "{key:?}: {err}"
            );
            assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
        }
        for key in [
            "users/66666666-7777-8888-9999-000000000000.json",
            "a",
            "a/b.c/d-e_f",
        ] {
            validate_key(key).unwrap();
        }
        validate_prefix("").unwrap();
        validate_prefix("users/").unwrap();
        assert!(validate_prefix("users//").is_err());
        assert!(validate_prefix("/users/").is_err());
    }

    #[test]
    fn s3_keys_sit_under_the_prefix() {
        assert_eq!(s3_key("", "users/a.json"), "users/a.json");
        assert_eq!(s3_key("p/q", "users/a.json"), "p/q/users/a.json");
        assert_eq!(s3_key("p", ""), "p/");
        assert_eq!(relative_key("p", "p/users/a.json"), Some("users/a.json"));
        assert_eq!(relative_key("p", "pq/users/a.json"), None);
        assert_eq!(relative_key("", "users/a.json"), Some("users/a.json"));
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Runtime::new().unwrap()
    }

    #[test]
    fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path().join("root"));
        runtime().block_on(async {
            assert_eq!(store.get("users/a.json").await.unwrap(), None);
            assert_eq!(store.list("").await.unwrap(), []);
            assert_eq!(store.list_dirs("").await.unwrap(), Vec::<String>::new());
            store.put("users/a.json", b"A".to_vec()).await.unwrap();
            store.put("users/b.json", b"BB".to_vec()).await.unwrap();
            store
                .put("users/sub/c.json", b"CCC".to_vec())
                .await
                .unwrap();
            store.put("runs/r.json", Vec::new()).await.unwrap();
            store.put("users/a.json", b"A2".to_vec()).await.unwrap();
            assert_eq!(
                store.get("users/a.json").await.unwrap(),
                Some(b"A2".to_vec())
            );
            let listed = store.list("users/").await.unwrap();
            let keys: Vec<_> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
            assert_eq!(
                keys,
                [
                    ("users/a.json", 2),
                    ("users/b.json", 2),
                    ("users/sub/c.json", 3)
                ]
            );
            let keys: Vec<_> = store
                .list("users/b")
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
            assert_eq!(keys, ["users/b.json"]);
            assert_eq!(store.list("").await.unwrap().len(), 4);
            assert_eq!(store.list("nothing/").await.unwrap(), []);
            assert!(store.has_objects("").await.unwrap());
            assert!(store.has_objects("users/sub/").await.unwrap());
            assert!(!store.has_objects("nothing/").await.unwrap());
            assert_eq!(store.list_dirs("").await.unwrap(), ["runs/", "users/"]);
            assert_eq!(store.list_dirs("users/").await.unwrap(), ["users/sub/"]);
            assert_eq!(store.list_dirs("u").await.unwrap(), ["users/"]);
            assert_eq!(
                store.list_dirs("users/a.json/").await.unwrap(),
                Vec::<String>::new()
            );
            let err = store.put("../escape.json", Vec::new()).await.unwrap_err();
            assert!(err.to_string().contains("../escape.json"), "{err}");
            assert!(store.list("../").await.is_err());
            assert!(store.list_dirs("/").await.is_err());
        });
        assert!(!dir.path().join("escape.json").exists());
        assert_eq!(
            store.describe("users/a.json"),
            dir.path().join("root/users/a.json").display().to_string()
        );
    }

    #[test]
    fn local_listing_skips_writes_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path());
        fs::create_dir_all(dir.path().join("users")).unwrap();
        fs::write(dir.path().join("users/.a.json.x1y2.tmp"), b"half").unwrap();
        fs::write(dir.path().join("users/a.json"), b"{}").unwrap();
        let listed = runtime().block_on(store.list("")).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (listed[0].key.as_str(), listed[0].size),
            ("users/a.json", 2)
        );
        // The tag a listing shows is the one a write returns, and a rewrite changes it.
        let tag = listed[0].tag.clone().expect("a local listing tags objects");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let rewritten = runtime()
            .block_on(store.put_tagged("users/a.json", b"{ }".to_vec()))
            .unwrap();
        assert_ne!(rewritten.as_deref(), Some(tag.as_str()));
        let relisted = runtime().block_on(store.list("users/")).unwrap();
        assert_eq!(relisted[0].tag, rewritten);
    }

    #[test]
    fn local_read_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("users/a.json")).unwrap();
        let store = Store::local(dir.path());
        let err = runtime().block_on(store.get("users/a.json")).unwrap_err();
        assert!(err.to_string().contains("users/a.json"), "{err}");
    }

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.csv");
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        assert!(!path.exists());
        drop(f);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 0);
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
    }
}
