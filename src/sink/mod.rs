//! Alert -> sink. Where notifications go: SNS in Lambda (and Security Hub when
//! enabled), stdout on the command line, memory in tests.

pub mod fanout;
#[cfg(feature = "securityhub")]
pub mod securityhub;
pub mod sns;
pub mod stdout;

use std::sync::Mutex;

use async_trait::async_trait;

use crate::alert::Notification;
use crate::aws_error::Cause;

pub use fanout::{lambda_sink, FanOut};
pub use sns::SnsSink;
pub use stdout::{OutputFormat, StdoutSink};

/// A notification that was not delivered, and why (throttling and access denied
/// are told apart, see [`Cause`]).
#[derive(Debug, thiserror::Error)]
#[error("publishing alert {alert_id} failed ({cause}): {message}")]
pub struct SinkError {
    pub alert_id: String,
    pub cause: Cause,
    pub message: String,
}

/// Publishes one notification. An error means it was not delivered: the caller
/// releases the dedup claim so a retry alerts again.
#[async_trait]
pub trait AlertSink: Send + Sync {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError>;
}

/// Keeps notifications in memory (tests, and `scan`, which sorts before printing).
#[derive(Default)]
pub struct MemorySink {
    published: Mutex<Vec<Notification>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published so far.
    pub fn notifications(&self) -> Vec<Notification> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl AlertSink for MemorySink {
    async fn publish(&self, notification: &Notification) -> Result<(), SinkError> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notification.clone());
        Ok(())
    }
}
