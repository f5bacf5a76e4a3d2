//! Streams objects from S3 with `GetObject`. The body is never collected: it is
//! bridged to a blocking `Read` and decompressed as it arrives.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use tokio_util::io::SyncIoBridge;

use super::{Body, ObjectRef, ObjectSource, SourceError};

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
                let transient = is_transient(&e);
                let message = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
                if transient {
                    SourceError::Transient {
                        object: object.clone(),
                        message,
                    }
                } else {
                    SourceError::Failed {
                        object: object.clone(),
                        message,
                    }
                }
            })?;
        let reader = response.body.into_async_read();
        Ok(Box::new(SyncIoBridge::new(reader)))
    }
}

/// Throttling, server errors, timeouts and connection failures are worth retrying;
/// the SDK has already retried them with backoff, so they are reported as transient
/// (S3 Batch Operations retries a `TemporaryFailure` task later).
pub fn is_transient<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout() || failure.is_io(),
        SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 429
                || status >= 500
                || matches!(
                    service.err().code(),
                    Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout")
                )
        }
        _ => false,
    }
}
