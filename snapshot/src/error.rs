//! Errors of a snapshot run: each names the instance, id or store object it is about.

/// The SDK's error of a Connect call, boxed (SDK errors are large).
pub type ConnectSource = Box<dyn std::error::Error + Send + Sync>;

/// Why a snapshot run (or one instance of it) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An instance given to the run is neither a Connect instance id (UUID) nor an instance
    /// ARN.
    #[error("{given:?} is not a Connect instance id (UUID) or instance ARN")]
    BadInstance {
        /// What was given.
        given: String,
    },
    /// A Connect call failed (after the SDK's retries).
    #[error("instance {instance}: Connect {operation}{} failed: {detail}", user.as_ref().map(|u| format!(" of {u}")).unwrap_or_default())]
    Connect {
        /// The instance id.
        instance: String,
        /// The API called, e.g. `ListUsers`.
        operation: &'static str,
        /// What it was called on, e.g. `user <id>` or `security profile <id>`.
        user: Option<String>,
        /// The error code and message, as the SDK reports them.
        detail: String,
        /// The SDK's error.
        #[source]
        source: ConnectSource,
    },
    /// The API returned an id that is not a Connect id (UUID), so it cannot become an object
    /// key. Nothing was written for the instance.
    #[error(
        "instance {instance}: Connect {operation} returned {kind} id {id:?}, which is not a Connect id (UUID); nothing was written for this instance"
    )]
    BadId {
        /// The instance id.
        instance: String,
        /// The API that returned it.
        operation: &'static str,
        /// What the id names (`user`, `security_profile`, …).
        kind: &'static str,
        /// The id as returned.
        id: String,
    },
    /// The API answered something the snapshot cannot trust, e.g. a summary without an `Id`,
    /// a repeated `NextToken`, or a `DescribeUser` of another user. Nothing was written for
    /// the instance.
    #[error(
        "instance {instance}: Connect {operation} answered {problem}; nothing was written for this instance"
    )]
    BadAnswer {
        /// The instance id.
        instance: String,
        /// The API that answered.
        operation: &'static str,
        /// What was wrong.
        problem: String,
    },
    /// An object already in the store could not be read as a snapshot object. It is left
    /// as it is: a snapshot is evidence, and the run does not overwrite what it cannot read.
    #[error("snapshot object {object}: {reason}")]
    BadObject {
        /// The object: a path or `s3://bucket/key`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing the store failed (the error names the object).
    #[error(transparent)]
    Store(#[from] connect_audit_core::Error),
    /// The change log of this run could not be written after the instances were done.
    #[error("{key}: writing the run's change log failed: {source}")]
    RunLog {
        /// The run log's key, e.g. `runs/20240501T000000Z.json`.
        key: String,
        /// Why.
        #[source]
        source: connect_audit_core::Error,
    },
    /// A run log already exists for this second: two runs started at the same time.
    #[error("{key} already exists: another snapshot run started in the same second")]
    RunExists {
        /// The run log's key.
        key: String,
    },
}
