//! Object refs -> byte stream. Where log objects come from: S3 in Lambda, a local
//! folder for `trailwatch invoke`, memory in tests.

pub mod local;
pub mod s3;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;

use async_trait::async_trait;

use crate::aws_error::Cause;

pub use local::LocalSource;
pub use s3::S3Source;

/// One S3 object, its key already URL-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A readable object body. Bodies are read on a blocking thread.
pub type Body = Box<dyn Read + Send>;

/// An object's user metadata: `x-amz-meta-NAME` by `NAME` (lower case). CloudTrail
/// keeps a digest's signature there.
pub type Metadata = BTreeMap<String, String>;

/// Why an object could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Deleted before we fetched it (or never there): logged and counted, not retried.
    #[error("{0}: object not found")]
    NotFound(ObjectRef),
    /// Any other failure, classified: throttling and timeouts may succeed later
    /// ([`SourceError::is_transient`]), access denied wants an IAM fix.
    #[error("{object}: {message} ({cause}{})", if cause.is_transient() { ", transient: retry later" } else { "" })]
    Failed {
        object: ObjectRef,
        cause: Cause,
        message: String,
    },
}

impl SourceError {
    /// Whether retrying the same request later can succeed.
    pub fn is_transient(&self) -> bool {
        self.cause().is_transient()
    }

    pub fn cause(&self) -> Cause {
        match self {
            SourceError::NotFound(_) => Cause::NotFound,
            SourceError::Failed { cause, .. } => *cause,
        }
    }
}

#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// Opens the object for streaming.
    async fn open(&self, object: &ObjectRef) -> Result<Body, SourceError>;

    /// Opens the object with its user metadata. A source that keeps none (a local
    /// folder) returns an empty map.
    async fn open_with_metadata(
        &self,
        object: &ObjectRef,
    ) -> Result<(Body, Metadata), SourceError> {
        Ok((self.open(object).await?, Metadata::new()))
    }
}

/// Objects held in memory (tests).
#[derive(Default)]
pub struct MemorySource {
    pub objects: HashMap<ObjectRef, Vec<u8>>,
    pub metadata: HashMap<ObjectRef, Metadata>,
}

impl MemorySource {
    pub fn with(mut self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.objects.insert(
            ObjectRef {
                bucket: bucket.into(),
                key: key.into(),
            },
            bytes.into(),
        );
        self
    }

    /// Sets one `x-amz-meta-NAME` of an object.
    pub fn with_metadata(mut self, bucket: &str, key: &str, name: &str, value: &str) -> Self {
        let object = ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
        };
        self.metadata
            .entry(object)
            .or_default()
            .insert(name.into(), value.into());
        self
    }
}

#[async_trait]
impl ObjectSource for MemorySource {
    async fn open(&self, object: &ObjectRef) -> Result<Body, SourceError> {
        self.objects
            .get(object)
            .map(|bytes| Box::new(std::io::Cursor::new(bytes.clone())) as Body)
            .ok_or_else(|| SourceError::NotFound(object.clone()))
    }

    async fn open_with_metadata(
        &self,
        object: &ObjectRef,
    ) -> Result<(Body, Metadata), SourceError> {
        let body = self.open(object).await?;
        Ok((body, self.metadata.get(object).cloned().unwrap_or_default()))
    }
}
