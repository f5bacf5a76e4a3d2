//! SDK clients that act in the account of an event.
//!
//! The function usually runs in a security or log-archive account and the export
//! happens in a member account. For an event of another account the clients use
//! credentials from assuming `arn:<partition>:iam::<account>:role/<MemberRoleName>`
//! with aws-config's [`AssumeRoleProvider`]; in the function's own account (learned
//! once with `sts:GetCallerIdentity`) they use the function's own credentials. One
//! credentials provider per account, one pair of clients per account and region:
//! the SDK's identity cache keeps each account's assumed credentials until they
//! are about to expire, for every client built from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_sdk_sts::config::SharedCredentialsProvider;
use tokio::sync::OnceCell;

use super::{CallError, Place, ASSUME_ROLE, GET_CALLER_IDENTITY};
use crate::aws_error::{classify, Cause};

/// The role session name member accounts see in their CloudTrail.
pub const SESSION_NAME: &str = "trailwatch";

/// Attempts per call: one retry, the budget bounds the rest.
const MAX_ATTEMPTS: u32 = 2;
/// How long a failed `sts:GetCallerIdentity` is answered from memory: the
/// concurrent lookups of an alert wait for one another's attempt, and without it
/// each would try (and wait) again, in turn, until the budget runs out.
const OWN_ACCOUNT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// The RDS and S3 clients of one account and region.
#[derive(Debug, Clone)]
pub struct Clients {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
}

/// Clients per account and region, assuming the member role where needed.
pub struct MemberAccounts {
    base: SdkConfig,
    role_name: Option<String>,
    own_account: OnceCell<String>,
    /// The last failure to learn it, and when.
    own_account_failure: Mutex<Option<(std::time::Instant, CallError)>>,
    providers: Mutex<HashMap<String, SharedCredentialsProvider>>,
    clients: Mutex<HashMap<Place, Arc<Clients>>>,
    s3_path_style: bool,
}

/// The partition of a region: `aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`,
/// `aws-iso`/`aws-iso-b` for the isolated regions, `aws` otherwise.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

impl MemberAccounts {
    /// `base`: the function's own configuration (credentials, endpoint, identity
    /// cache). `role_name`: the member role (`TRAILWATCH_MEMBER_ROLE_NAME`); without
    /// it, events of other accounts are not looked up.
    pub fn new(base: &SdkConfig, role_name: Option<String>) -> MemberAccounts {
        MemberAccounts {
            base: base.clone(),
            role_name,
            own_account: OnceCell::new(),
            own_account_failure: Mutex::new(None),
            providers: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            s3_path_style: false,
        }
    }

    /// The deployment's: `aws` as loaded from the environment, the member role of
    /// `TRAILWATCH_MEMBER_ROLE_NAME`.
    pub fn for_config(aws: &SdkConfig, settings: &crate::config::EnrichSettings) -> MemberAccounts {
        MemberAccounts::new(aws, settings.member_role_name.clone())
    }

    /// Path-style S3 addressing (an emulator on a bare address).
    pub fn with_s3_path_style(mut self, path_style: bool) -> MemberAccounts {
        self.s3_path_style = path_style;
        self
    }

    /// The function's own account, when known without asking STS.
    pub fn with_own_account(self, account: impl Into<String>) -> MemberAccounts {
        let _ = self.own_account.set(account.into());
        self
    }

    /// The member role's ARN in `account` (the partition of `region`).
    pub fn role_arn(&self, account: &str, region: &str) -> Option<String> {
        let name = self.role_name.as_deref()?;
        Some(format!(
            "arn:{}:iam::{account}:role/{name}",
            partition_of(region)
        ))
    }

    /// The function's own account (`sts:GetCallerIdentity`, asked once; a failure
    /// is remembered for [`OWN_ACCOUNT_RETRY_AFTER`], then asked again).
    pub async fn own_account(&self) -> Result<&str, CallError> {
        self.own_account
            .get_or_try_init(|| async {
                let recent = self
                    .own_account_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .filter(|(at, _)| at.elapsed() < OWN_ACCOUNT_RETRY_AFTER)
                    .map(|(_, e)| e.clone());
                if let Some(e) = recent {
                    return Err(e);
                }
                let asked = self.ask_own_account().await;
                if let Err(e) = &asked {
                    *self
                        .own_account_failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) =
                        Some((std::time::Instant::now(), e.clone()));
                }
                asked
            })
            .await
            .map(String::as_str)
    }

    async fn ask_own_account(&self) -> Result<String, CallError> {
        let conf = self
            .base
            .to_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        let identity = aws_sdk_sts::Client::new(&conf)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| CallError {
                cause: classify(&e),
                message: aws_sdk_sts::error::DisplayErrorContext(e).to_string(),
                via: Some(GET_CALLER_IDENTITY),
            })?;
        identity.account.ok_or_else(|| CallError {
            cause: Cause::Other,
            message: "GetCallerIdentity returned no account".into(),
            via: Some(GET_CALLER_IDENTITY),
        })
    }

    /// The clients acting in `at`.
    pub async fn clients(&self, at: &Place) -> Result<Arc<Clients>, CallError> {
        if let Some(clients) = self.lock_clients().get(at) {
            return Ok(Arc::clone(clients));
        }
        let credentials = self.credentials(at).await?;
        let mut builder = self
            .base
            .to_builder()
            .region(Region::new(at.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if let Some(credentials) = credentials {
            builder = builder.credentials_provider(credentials);
        }
        let conf = builder.build();
        let s3 = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(self.s3_path_style)
            .build();
        let clients = Arc::new(Clients {
            rds: aws_sdk_rds::Client::new(&conf),
            s3: aws_sdk_s3::Client::from_conf(s3),
        });
        self.lock_clients()
            .entry(at.clone())
            .or_insert_with(|| Arc::clone(&clients));
        Ok(clients)
    }

    /// `None`: the function's own credentials. Another account needs the member
    /// role; when the own account cannot be learned, the role is assumed if one is
    /// configured (an event of the own account then needs the role there too).
    async fn credentials(
        &self,
        at: &Place,
    ) -> Result<Option<SharedCredentialsProvider>, CallError> {
        let own = match self.own_account().await {
            Ok(own) => Some(own.to_owned()),
            Err(e) => {
                tracing::warn!(error = %e, "the function's own account is unknown");
                None
            }
        };
        if own.as_deref() == Some(at.account.as_str()) {
            return Ok(None);
        }
        let Some(role_arn) = self.role_arn(&at.account, &at.region) else {
            return match own {
                None => Ok(None),
                Some(own) => Err(CallError {
                    cause: Cause::Other,
                    message: format!(
                        "account {} is not the function's own ({own}) and no member role is \
                         configured (TRAILWATCH_MEMBER_ROLE_NAME)",
                        at.account
                    ),
                    via: Some(ASSUME_ROLE),
                }),
            };
        };
        if let Some(provider) = self.lock_providers().get(&at.account) {
            return Ok(Some(provider.clone()));
        }
        let provider = AssumeRoleProvider::builder(role_arn)
            .configure(&self.base)
            .session_name(SESSION_NAME)
            .build()
            .await;
        let provider = SharedCredentialsProvider::new(provider);
        Ok(Some(
            self.lock_providers()
                .entry(at.account.clone())
                .or_insert(provider)
                .clone(),
        ))
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<Place, Arc<Clients>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_providers(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, SharedCredentialsProvider>> {
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_role_arns() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        let base = SdkConfig::builder().build();
        let accounts = MemberAccounts::new(&base, Some("TrailwatchMember".into()));
        assert_eq!(
            accounts.role_arn("111122223333", "cn-north-1").as_deref(),
            Some("arn:aws-cn:iam::111122223333:role/TrailwatchMember")
        );
        assert_eq!(MemberAccounts::new(&base, None).role_arn("1", "r"), None);
    }

    #[tokio::test]
    async fn another_account_without_a_member_role_is_refused_not_guessed() {
        let base = SdkConfig::builder().build();
        let accounts = MemberAccounts::new(&base, None).with_own_account("123456789012");
        let error = accounts
            .clients(&Place::new("111122223333", "us-east-1"))
            .await
            .unwrap_err();
        assert_eq!(error.via, Some(ASSUME_ROLE));
        assert!(
            error.message.contains("TRAILWATCH_MEMBER_ROLE_NAME"),
            "{error}"
        );
    }
}
