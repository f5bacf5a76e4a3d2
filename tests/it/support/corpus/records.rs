//! The records: vocabulary (accounts, regions, callers, buckets, keys), callers and
//! their bursts, planted exports and decoys, and each record's members in CloudTrail's
//! order. The ordinary API calls are in `calls`.

use serde_json::{json, Value};

use super::random::{iso, Rng, BASE64, LETTERS_DIGITS, UPPER_DIGITS};

mod calls;

pub(super) const ACCOUNTS: &[&str] = &[
    "111122223333",
    "444455556666",
    "777788889999",
    "210987654321",
];
pub(super) const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "sa-east-1",
];
const AGENTS: &[&str] = &[
    "aws-cli/2.17.4 Python/3.11.9 Linux/6.1.94-99.176.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off command/s3.cp",
    "Boto3/1.34.140 md/Botocore#1.34.140 ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.12.4 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.140",
    "aws-sdk-go-v2/1.30.1 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#arm64 api/rds#1.81.1",
    "aws-sdk-java/2.26.15 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/21.0.3+9-LTS Java/21.0.3 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard",
    "aws-sdk-rust/1.3.1 os/linux lang/rust/1.79.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Terraform/1.9.1 (+https://www.terraform.io) terraform-provider-aws/5.57.0 (+https://registry.terraform.io/providers/hashicorp/aws)",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.750 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/25.412-b08 java/1.8.0_412]",
    "console.amazonaws.com",
    "AWS Internal",
];
const USERS: &[&str] = &[
    "amelia",
    "bao.tran",
    "søren.kierkegaard",
    "ci-release",
    "ops+oncall@example.org",
    "svc_reporting",
    "zoë",
];
const ROLES: &[&str] = &[
    "OrganizationAccountAccessRole",
    "AWSReservedSSO_PowerUserAccess_9c1d2e3f4a5b6c7d",
    "etl-nightly",
    "lambda-exec-thumbnails",
    "eks-workers-NodeInstanceRole-7QK2LM9ZP1",
    "rds-s3-export-role",
];
const SERVICES: &[&str] = &[
    "lambda.amazonaws.com",
    "ec2.amazonaws.com",
    "rds.amazonaws.com",
    "s3.amazonaws.com",
    "cloudformation.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
];
const BUCKETS: &[&str] = &[
    "analytics-lake-prod",
    "web-access-logs",
    "partner-uploads-eu",
    "rds-exports-archive",
    "terraform-state-4711",
];
const KEYS: &[&str] = &[
    "raw/2024/03/15/part-00042-1f2e.snappy.parquet",
    "contracts/Müller & Söhne \"signed\" (v3).pdf",
    "reports/季度/2024-Q1.csv",
    "backup\\windows\\C$\\users.txt",
    "emoji/✅ done\tlist.md",
    "data/åäö/naïve café.json",
    "logs/i-0fedcba9876543210/app.log.gz",
];
const TLS: &[(&str, &str)] = &[
    ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
];

/// Services whose events CloudTrail delivers to us-east-1 only.
fn global(source: &str) -> bool {
    matches!(source, "iam.amazonaws.com" | "signin.amazonaws.com")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Alert,
    Failed,
    Decoy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    S3,
    Kms,
    Sts,
    Ec2,
    Rds,
    Lambda,
    Iam,
    Signin,
    Secrets,
    Sqs,
}

const BODIES: &[(Body, u64)] = &[
    (Body::S3, 40),
    (Body::Kms, 15),
    (Body::Sts, 5),
    (Body::Ec2, 13),
    (Body::Rds, 6),
    (Body::Lambda, 9),
    (Body::Iam, 5),
    (Body::Signin, 2),
    (Body::Secrets, 3),
    (Body::Sqs, 2),
];

/// Probability that a record comes from the same caller as the previous one.
const BURST: f64 = 0.8;

/// What a body contributes to a record.
struct Call {
    source: &'static str,
    name: String,
    request: Value,
    response: Value,
    /// Extra members, inserted at their usual place (see [`Generator::event`]).
    error: Option<(String, String)>,
    additional: Option<Value>,
    resources: Option<Value>,
    read_only: bool,
    data_event: bool,
    event_type: &'static str,
}

impl Call {
    fn new(source: &'static str, name: &str, request: Value, response: Value) -> Call {
        Call {
            source,
            name: name.to_owned(),
            request,
            response,
            error: None,
            additional: None,
            resources: None,
            read_only: name.starts_with("Describe")
                || name.starts_with("Get")
                || name.starts_with("List")
                || name.starts_with("Head")
                || name == "Decrypt"
                || name == "LookupEvents",
            data_event: false,
            event_type: "AwsApiCall",
        }
    }
}

/// A caller: identity, source address and user agent.
#[derive(Clone)]
struct Actor {
    identity: Value,
    address: String,
    agent: String,
    service: bool,
}

struct Pool {
    addresses: Vec<String>,
    users: Vec<(String, String, String)>,
    roles: Vec<(String, String)>,
    temporary_keys: Vec<String>,
    sessions: Vec<String>,
    kms_keys: Vec<String>,
}

fn account_index(account: &str) -> usize {
    ACCOUNTS.iter().position(|a| *a == account).unwrap_or(0)
}

pub(super) struct Generator {
    pub(super) rng: Rng,
    export_rate: f64,
    pools: Vec<Pool>,
    /// File (account, region), body and caller of the previous ordinary record.
    last: Option<((&'static str, &'static str), Body, Actor)>,
}

impl Generator {
    pub(super) fn new(seed: u64, export_rate: f64) -> Generator {
        let mut rng = Rng::new(seed);
        let pools = ACCOUNTS
            .iter()
            .map(|account| Self::pool(&mut rng, account))
            .collect();
        Generator {
            rng,
            export_rate,
            pools,
            last: None,
        }
    }

    fn pool(rng: &mut Rng, account: &str) -> Pool {
        let mut addresses: Vec<String> = (0..20)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    rng.range(3, 223),
                    rng.below(256),
                    rng.below(256),
                    rng.range(1, 254)
                )
            })
            .collect();
        addresses.extend(
            (0..3).map(|_| format!("2a05:d018:{}:{}::{}", rng.hex(4), rng.hex(4), rng.hex(3))),
        );
        Pool {
            addresses,
            users: USERS
                .iter()
                .map(|u| {
                    (
                        (*u).to_owned(),
                        format!("AIDA{}", rng.chars(17, UPPER_DIGITS)),
                        format!("AKIA{}", rng.chars(16, UPPER_DIGITS)),
                    )
                })
                .collect(),
            roles: ROLES
                .iter()
                .map(|r| {
                    (
                        (*r).to_owned(),
                        format!("AROA{}", rng.chars(17, UPPER_DIGITS)),
                    )
                })
                .collect(),
            temporary_keys: (0..40)
                .map(|_| format!("ASIA{}", rng.chars(16, UPPER_DIGITS)))
                .collect(),
            sessions: {
                let mut sessions: Vec<String> =
                    (0..8).map(|_| format!("i-0{}", rng.hex(16))).collect();
                sessions.extend(USERS.iter().map(|u| (*u).to_owned()));
                sessions.extend((0..12).map(|_| {
                    format!(
                        "botocore-session-{}",
                        rng.range(1_000_000_000, 9_999_999_999)
                    )
                }));
                sessions
            },
            kms_keys: (0..4)
                .map(|_| format!("arn:aws:kms:{{region}}:{account}:key/{}", rng.uuid()))
                .collect(),
        }
    }

    fn kms_key(&self, account: &str, region: &str, index: usize) -> String {
        self.pools[account_index(account)].kms_keys[index].replace("{region}", region)
    }

    // ---- callers

    fn identity(&mut self, account: &str, time: i64, service: bool) -> Value {
        let kind = if service {
            3
        } else {
            self.rng.weighted(&[55, 25, 3, 17])
        };
        let created = iso(time - self.rng.range(1, 700) as i64 * 60_000);
        match kind {
            3 => json!({"type": "AWSService", "invokedBy": *self.rng.pick(SERVICES)}),
            1 => {
                let pool = &self.pools[account_index(account)];
                let (name, id, key) =
                    pool.users[self.rng.below(pool.users.len() as u64) as usize].clone();
                json!({"type": "IAMUser", "principalId": id, "arn": format!("arn:aws:iam::{account}:user/{name}"),
                       "accountId": account, "accessKeyId": key, "userName": name})
            }
            2 => {
                let key = self
                    .rng
                    .pick(&self.pools[account_index(account)].temporary_keys)
                    .clone();
                json!({"type": "Root", "principalId": account, "arn": format!("arn:aws:iam::{account}:root"),
                       "accountId": account, "accessKeyId": key,
                       "sessionContext": {"attributes": {"creationDate": created, "mfaAuthenticated": "true"}}})
            }
            _ => {
                let pool = &self.pools[account_index(account)];
                let (role, role_id) =
                    pool.roles[self.rng.below(pool.roles.len() as u64) as usize].clone();
                let session =
                    pool.sessions[self.rng.below(pool.sessions.len() as u64) as usize].clone();
                let key = pool.temporary_keys
                    [self.rng.below(pool.temporary_keys.len() as u64) as usize]
                    .clone();
                // One session in five was issued by a role of another account.
                let issuer = if self.rng.chance(0.8) {
                    account.to_owned()
                } else {
                    (*self.rng.pick(ACCOUNTS)).to_owned()
                };
                let mut identity = json!({"type": "AssumedRole", "principalId": format!("{role_id}:{session}"),
                    "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"), "accountId": account,
                    "accessKeyId": key,
                    "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": role_id,
                                                         "arn": format!("arn:aws:iam::{issuer}:role/{role}"),
                                                         "accountId": issuer, "userName": role},
                                       "webIdFederationData": {},
                                       "attributes": {"creationDate": created, "mfaAuthenticated": "false"}}});
                if session.starts_with("i-") {
                    identity["sessionContext"]["ec2RoleDelivery"] = json!("2.0");
                }
                identity
            }
        }
    }

    fn actor(&mut self, account: &str, time: i64, source: &str) -> Actor {
        let service = source == "kms.amazonaws.com" && self.rng.chance(0.7);
        let identity = self.identity(account, time, service);
        if let Some(by) = identity["invokedBy"].as_str() {
            let by = by.to_owned();
            return Actor {
                identity,
                address: by.clone(),
                agent: by,
                service: true,
            };
        }
        let address = self
            .rng
            .pick(&self.pools[account_index(account)].addresses)
            .clone();
        Actor {
            identity,
            address,
            agent: (*self.rng.pick(AGENTS)).to_owned(),
            service: false,
        }
    }

    // ---- planted calls

    fn export(&mut self, account: &str, region: &str, failed: bool) -> Call {
        let task = format!("export-{}", self.rng.hex(10));
        let source = format!(
            "arn:aws:rds:{region}:{account}:snapshot:orders-prod-manual-{}",
            self.rng.hex(4)
        );
        let request = json!({"exportTaskIdentifier": task, "sourceArn": source,
            "s3BucketName": "rds-exports-archive", "s3Prefix": "exports/orders",
            "iamRoleArn": format!("arn:aws:iam::{account}:role/rds-s3-export-role"),
            "kmsKeyId": self.kms_key(account, region, 1)});
        let mut response = Value::Null;
        let mut error = None;
        if failed {
            error = Some(match self.rng.below(3) {
                0 => ("AccessDenied".to_owned(), format!("User is not authorized to perform: rds:StartExportTask on resource: {source}")),
                1 => ("KMSKeyNotAccessibleFault".to_owned(), "The specified KMS key isn't accessible.".to_owned()),
                _ => ("ExportTaskAlreadyExistsFault".to_owned(),
                      format!("Cannot start export task because a task with the identifier {task} already exists.")),
            });
        } else {
            response = request.clone();
            for (key, value) in [
                ("status", json!("STARTING")),
                ("percentProgress", json!(0)),
                ("totalExtractedDataInGB", json!(0)),
                ("snapshotTime", json!("Mar 15, 2024, 4:05:11 AM")),
            ] {
                response[key] = value;
            }
        }
        let mut call = Call::new("rds.amazonaws.com", "StartExportTask", request, response);
        call.error = error;
        call
    }

    /// IAM is global: its events, the policy-document decoy included, are delivered
    /// in us-east-1 files only.
    fn decoy(&mut self, region: &str) -> Call {
        let kinds = if region == "us-east-1" { 3 } else { 2 };
        match self.rng.below(kinds) {
            0 => Call::new(
                "discovery.amazonaws.com",
                "StartExportTask",
                json!({"exportDataFormat": ["CSV"]}),
                json!({"exportId": format!("export-{}", self.rng.uuid())}),
            ),
            2 => {
                // The policy document is itself JSON, so it sits escaped in a string.
                let document = serde_json::to_string_pretty(&json!({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["rds:StartExportTask", "rds:DescribeExportTasks"], "Resource": "*"}]}))
                .unwrap_or_default();
                Call::new(
                    "iam.amazonaws.com",
                    "PutRolePolicy",
                    json!({"roleName": "rds-s3-export-role", "policyName": "export", "policyDocument": document}),
                    Value::Null,
                )
            }
            _ => Call::new(
                "cloudtrail.amazonaws.com",
                "LookupEvents",
                json!({"lookupAttributes": [{"attributeKey": "EventName", "attributeValue": "StartExportTask"}], "maxResults": 50}),
                Value::Null,
            ),
        }
    }

    /// One record of `account`'s file delivered at `file_time`, and what it plants.
    pub(super) fn event(
        &mut self,
        account: &'static str,
        region: &'static str,
        file_time: i64,
    ) -> (Value, Option<Kind>) {
        let x = self.rng.unit();
        let mut reuse = None;
        let (call, planted) = if x < self.export_rate {
            let kind = if self.rng.chance(0.3) {
                Kind::Failed
            } else {
                Kind::Alert
            };
            (
                self.export(account, region, kind == Kind::Failed),
                Some(kind),
            )
        } else if x < 2.0 * self.export_rate {
            (self.decoy(region), Some(Kind::Decoy))
        } else {
            let body = match &self.last {
                Some((last, body, actor))
                    if *last == (account, region) && self.rng.chance(BURST) =>
                {
                    reuse = Some(actor.clone());
                    *body
                }
                _ => {
                    let bodies: Vec<(Body, u64)> = BODIES
                        .iter()
                        .copied()
                        .filter(|(b, _)| {
                            region == "us-east-1" || !matches!(b, Body::Iam | Body::Signin)
                        })
                        .collect();
                    let weights: Vec<u64> = bodies.iter().map(|(_, w)| *w).collect();
                    bodies[self.rng.weighted(&weights)].0
                }
            };
            let call = self.body(body, account, region);
            if reuse.is_none() {
                let actor = self.actor(account, file_time, call.source);
                self.last = Some(((account, region), body, actor.clone()));
                reuse = Some(actor);
            }
            (call, None)
        };
        let actor = match reuse {
            Some(actor) => actor,
            None => self.actor(account, file_time, call.source),
        };
        (
            self.record(call, actor, account, region, file_time),
            planted,
        )
    }

    /// The record's members in the order CloudTrail writes them.
    fn record(
        &mut self,
        call: Call,
        actor: Actor,
        account: &str,
        region: &str,
        file_time: i64,
    ) -> Value {
        let time = iso(file_time + self.rng.below(300_000) as i64);
        let mut record = json!({
            "eventVersion": if call.data_event { "1.09" } else { "1.08" },
            "userIdentity": actor.identity,
            "eventTime": time,
            "eventSource": call.source,
            "eventName": call.name,
            "awsRegion": if global(call.source) { "us-east-1" } else { region },
            "sourceIPAddress": actor.address,
            "userAgent": actor.agent,
        });
        let members = record.as_object_mut().expect("a record is an object");
        if let Some((code, message)) = call.error {
            if call.event_type == "AwsConsoleSignIn" {
                members.insert("errorMessage".into(), json!(code));
            } else {
                members.insert("errorCode".into(), json!(code));
                members.insert("errorMessage".into(), json!(message));
            }
        }
        members.insert("requestParameters".into(), call.request);
        members.insert("responseElements".into(), call.response);
        if let Some(additional) = call.additional {
            members.insert("additionalEventData".into(), additional);
        }
        let request_id = if self.rng.chance(0.5) {
            self.rng.uuid()
        } else {
            self.rng.chars(16, UPPER_DIGITS)
        };
        members.insert("requestID".into(), json!(request_id));
        members.insert("eventID".into(), json!(self.rng.uuid()));
        members.insert("readOnly".into(), json!(call.read_only));
        if let Some(resources) = call.resources {
            members.insert("resources".into(), resources);
        }
        members.insert("eventType".into(), json!(call.event_type));
        members.insert("managementEvent".into(), json!(!call.data_event));
        members.insert("recipientAccountId".into(), json!(account));
        if actor.service {
            members.insert("sharedEventID".into(), json!(self.rng.uuid()));
        } else if self.rng.chance(0.15) {
            members.insert(
                "vpcEndpointId".into(),
                json!(format!("vpce-0{}", self.rng.hex(16))),
            );
        }
        members.insert(
            "eventCategory".into(),
            json!(if call.data_event {
                "Data"
            } else {
                "Management"
            }),
        );
        if !actor.service {
            let (version, suite) = *self.rng.pick(TLS);
            let host = if call.source == "s3.amazonaws.com" {
                "s3.amazonaws.com".to_owned()
            } else {
                call.source
                    .replace(".amazonaws.com", &format!(".{region}.amazonaws.com"))
            };
            members.insert(
                "tlsDetails".into(),
                json!({"tlsVersion": version, "cipherSuite": suite, "clientProvidedHostHeader": host}),
            );
        }
        if actor.agent == "console.amazonaws.com" {
            members.insert("sessionCredentialFromConsole".into(), json!("true"));
        }
        record
    }
}
