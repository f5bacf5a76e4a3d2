//! Serves `s3://bucket/key` from `DIR/bucket/key`, for `trailwatch invoke`.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use super::{Body, ObjectRef, ObjectSource, SourceError};
use crate::aws_error::Cause;

pub struct LocalSource {
    root: PathBuf,
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSource { root: root.into() }
    }

    /// The file for an object; keys that would escape the folder are refused.
    pub fn path_of(&self, object: &ObjectRef) -> Option<PathBuf> {
        let relative = Path::new(&object.bucket).join(&object.key);
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.root.join(relative))
    }
}

#[async_trait]
impl ObjectSource for LocalSource {
    async fn open(&self, object: &ObjectRef) -> Result<Body, SourceError> {
        let path = self.path_of(object).ok_or_else(|| SourceError::Failed {
            object: object.clone(),
            cause: Cause::Rejected,
            message: "key leaves the objects folder".into(),
        })?;
        match std::fs::File::open(&path) {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SourceError::NotFound(object.clone()))
            }
            Err(e) => Err(SourceError::Failed {
                object: object.clone(),
                cause: match e.kind() {
                    std::io::ErrorKind::PermissionDenied => Cause::AccessDenied,
                    _ => Cause::Other,
                },
                message: format!("{}: {e}", path.display()),
            }),
        }
    }
}
