//! Streams objects from S3 with `GetObject`. The body is never collected: it is
//! bridged to a blocking `Read` and decompressed as it arrives.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use tokio_util::io::SyncIoBridge;

use super::{Body, Metadata, ObjectRef, ObjectSource, SourceError};
use crate::aws_error::classify;

pub struct S3Source {
    client: Client,
}

impl S3Source {
    pub fn new(client: Client) -> Self {
        S3Source { client }
    }
}

#[async_trait]
impl ObjectSource for S3Source {
    async fn open(&self, object: &ObjectRef) -> Result<Body, SourceError> {
        Ok(self.open_with_metadata(object).await?.0)
    }

    async fn open_with_metadata(
        &self,
        object: &ObjectRef,
    ) -> Result<(Body, Metadata), SourceError> {
        let response = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return SourceError::NotFound(object.clone());
                }
                SourceError::Failed {
                    object: object.clone(),
                    cause: classify(&e),
                    message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                }
            })?;
        let metadata = response
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let reader = response.body.into_async_read();
        Ok((Box::new(SyncIoBridge::new(reader)), metadata))
    }
}
