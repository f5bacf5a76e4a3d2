//! Why a call to AWS failed, in the terms an operator acts on.
//!
//! Throttling wants a retry (and maybe more capacity), access denied wants an IAM
//! fix, a missing object or topic wants a configuration check. The S3 source, the
//! SNS sink and the DynamoDB store classify their SDK errors into a [`Cause`], keep
//! it in their typed errors, and the [`events`](crate::events) module logs and counts
//! failures by it.

use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};

/// The class of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Cause {
    /// Rate limits: `Throttling`, `SlowDown`, provisioned throughput, HTTP 429.
    Throttled,
    /// Permissions or credentials: `AccessDenied`, `AuthorizationError`, HTTP 403.
    AccessDenied,
    /// The resource is not there: `NoSuchKey`, `NotFound`, `ResourceNotFoundException`.
    NotFound,
    /// The call took too long (after the SDK's own retries).
    Timeout,
    /// The connection failed or the response could not be read.
    Network,
    /// The service failed (HTTP 5xx).
    ServerError,
    /// The service refused the request as invalid (other HTTP 4xx).
    Rejected,
    /// Not a call to AWS, or not classifiable.
    Other,
}

impl Cause {
    /// Whether the same request may succeed later (S3 Batch Operations' temporary
    /// failure, Lambda's retry).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Cause::Throttled | Cause::Timeout | Cause::Network | Cause::ServerError
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Cause::Throttled => "throttled",
            Cause::AccessDenied => "access denied",
            Cause::NotFound => "not found",
            Cause::Timeout => "timeout",
            Cause::Network => "network",
            Cause::ServerError => "server error",
            Cause::Rejected => "rejected",
            Cause::Other => "other",
        }
    }

    /// From an AWS error code and HTTP status (codes win: some throttling errors
    /// come back as 400).
    pub fn from_code(code: Option<&str>, status: u16) -> Cause {
        match code {
            Some(
                "Throttling"
                | "ThrottlingException"
                | "ThrottledException"
                | "SlowDown"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "ProvisionedThroughputExceededException"
                | "RequestThrottled",
            ) => return Cause::Throttled,
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "AuthorizationError"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredToken"
                | "ExpiredTokenException"
                | "SignatureDoesNotMatch"
                | "KMSAccessDeniedException"
                | "KMSDisabledException",
            ) => return Cause::AccessDenied,
            Some(
                "NoSuchKey"
                | "NoSuchBucket"
                | "NotFound"
                | "NotFoundException"
                | "ResourceNotFoundException",
            ) => return Cause::NotFound,
            Some("RequestTimeout" | "RequestTimeoutException") => return Cause::Timeout,
            _ => {}
        }
        match status {
            429 => Cause::Throttled,
            401 | 403 => Cause::AccessDenied,
            404 => Cause::NotFound,
            408 => Cause::Timeout,
            500..=599 => Cause::ServerError,
            400..=499 => Cause::Rejected,
            _ => Cause::Other,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Classifies any AWS SDK error (every service's `SdkError` is this one type).
pub fn classify<E: ProvideErrorMetadata>(error: &SdkError<E, Response>) -> Cause {
    match error {
        SdkError::TimeoutError(_) => Cause::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => Cause::Timeout,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Cause::Network,
        SdkError::ServiceError(service) => {
            Cause::from_code(service.err().code(), service.raw().status().as_u16())
        }
        _ => Cause::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_classify() {
        assert_eq!(Cause::from_code(Some("SlowDown"), 503), Cause::Throttled);
        assert_eq!(
            Cause::from_code(Some("ThrottlingException"), 400),
            Cause::Throttled
        );
        assert_eq!(Cause::from_code(None, 429), Cause::Throttled);
        assert_eq!(
            Cause::from_code(Some("AuthorizationError"), 403),
            Cause::AccessDenied
        );
        assert_eq!(Cause::from_code(Some("NoSuchKey"), 404), Cause::NotFound);
        assert_eq!(
            Cause::from_code(Some("InternalError"), 500),
            Cause::ServerError
        );
        assert_eq!(
            Cause::from_code(Some("ValidationException"), 400),
            Cause::Rejected
        );
        assert!(Cause::Throttled.is_transient() && Cause::ServerError.is_transient());
        assert!(!Cause::AccessDenied.is_transient() && !Cause::NotFound.is_transient());
    }
}
