//! Seeded generator of realistic CloudTrail log files, with a manifest of what it
//! planted: the ground truth for the oracle tests and the corpus of `make bench`.
//!
//! Each file is a gzipped compact `{"Records":[...]}` document at the key CloudTrail
//! delivers it to:
//! `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 chars>.json.gz`.
//! Records come from several accounts and regions, with IAM users, assumed roles
//! (some cross-account), root and AWS services as callers, in bursts of one caller
//! as real trails have them, over S3, KMS, STS, EC2, RDS, Lambda, IAM, sign-in,
//! Secrets Manager and SQS. Strings carry non-ASCII text, quotes, backslashes and
//! tabs, so they are escaped in the JSON.
//!
//! Planted, each at `export_rate` per record:
//! - successful `rds:StartExportTask` (no `errorCode`): must alert ([`Manifest::alerts`]);
//! - failed `rds:StartExportTask` (with `errorCode`): must not ([`Manifest::failed`]);
//! - decoys holding the text `StartExportTask` that must not alert: the Application
//!   Discovery Service's own `StartExportTask`, an IAM policy document granting
//!   `rds:StartExportTask`, a CloudTrail `LookupEvents` query for it ([`Manifest::decoys`]).
//!
//! With `dup_rate`, a successful export is delivered again, byte for byte, in the next
//! file of the same account and region (CloudTrail's at-least-once delivery); those
//! with no later file are dropped. File sizes
//! follow a log-normal distribution. All randomness comes from one seeded splitmix64
//! stream and gzip headers carry no time or name, so one seed gives byte-identical
//! output.
//!
//! Used in-process by the tests (`support::corpus`) and, through `#[path]`, by the
//! `gen_corpus` example that `make bench` runs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};
use serde::Serialize;
use serde_json::{json, Value};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Records over all files (before redeliveries are added).
    pub events: usize,
    /// Number of log files.
    pub files: usize,
    /// Seed of the random stream.
    pub seed: u64,
    /// Per-record probability of a planted `StartExportTask` (30 % of them fail);
    /// decoys are planted at the same rate.
    pub export_rate: f64,
    /// Probability that a successful export is delivered again in the next file.
    pub dup_rate: f64,
    /// gzip level, 0-9.
    pub level: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            events: 10_000,
            files: 10,
            seed: 1,
            export_rate: 1e-4,
            dup_rate: 0.0,
            level: 6,
        }
    }
}

/// One planted record, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planted {
    pub aws_region: String,
    pub recipient_account_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_source: String,
    pub error_code: Option<String>,
    /// Path of the file holding it, relative to the output folder.
    pub file: String,
    /// A redelivery of a record already listed (same eventID, a later file).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Path relative to the output folder.
    pub file: String,
    /// Records in the file, redeliveries included.
    pub events: usize,
    pub bytes_uncompressed: u64,
    pub bytes_gz: u64,
}

/// Everything the generator planted, written as `manifest.json` beside the files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub seed: u64,
    /// Successful exports, one entry per delivery (redeliveries marked `duplicate`).
    pub alerts: Vec<Planted>,
    pub failed: Vec<Planted>,
    pub decoys: Vec<Planted>,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// eventIDs of the distinct successful exports.
    pub fn distinct_alerts(&self) -> std::collections::BTreeSet<String> {
        self.alerts
            .iter()
            .filter(|a| !a.duplicate)
            .map(|a| a.event_id.clone())
            .collect()
    }

    /// Records over all files.
    pub fn records(&self) -> usize {
        self.files.iter().map(|f| f.events).sum()
    }
}

/// Writes the corpus and `manifest.json` under `out` (created if missing).
pub fn generate(out: &Path, options: &Options) -> io::Result<Manifest> {
    let mut gen = Generator::new(options.seed, options.export_rate);
    let counts = file_sizes(&mut gen.rng, options.events, options.files);
    let mut manifest = Manifest {
        seed: options.seed,
        ..Manifest::default()
    };
    // Successful exports to deliver again, per (account, region): the next file of
    // the same trail prefix.
    let mut carry: std::collections::BTreeMap<(&str, &str), Vec<(String, Planted)>> =
        std::collections::BTreeMap::new();
    for (index, count) in counts.into_iter().enumerate() {
        let account = *gen.rng.pick(ACCOUNTS);
        let region = *gen.rng.pick(REGIONS);
        let start = START_MS + (index as i64 % 288) * 5 * 60_000 + (index as i64 / 288) * DAY_MS;
        let stamp = Civil::from_ms(start);
        let suffix = gen.rng.chars(16, LETTERS_DIGITS);
        let rel = format!(
            "AWSLogs/{account}/CloudTrail/{region}/{:04}/{:02}/{:02}/{account}_CloudTrail_{region}_{:04}{:02}{:02}T{:02}{:02}Z_{suffix}.json.gz",
            stamp.year, stamp.month, stamp.day, stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute
        );
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let pending = carry.remove(&(account, region)).unwrap_or_default();
        let mut writer = RecordWriter::create(&path, options.level)?;
        for _ in 0..count {
            let (record, planted) = gen.event(account, region, start);
            let text = record.to_string();
            writer.record(&text)?;
            if let Some(kind) = planted {
                let entry = Planted {
                    aws_region: record["awsRegion"].as_str().unwrap_or_default().to_owned(),
                    recipient_account_id: account.to_owned(),
                    event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
                    event_source: record["eventSource"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    error_code: record["errorCode"].as_str().map(str::to_owned),
                    file: rel.clone(),
                    duplicate: false,
                };
                match kind {
                    Kind::Alert => {
                        if gen.rng.chance(options.dup_rate) {
                            carry
                                .entry((account, region))
                                .or_default()
                                .push((text.clone(), entry.clone()));
                        }
                        manifest.alerts.push(entry);
                    }
                    Kind::Failed => manifest.failed.push(entry),
                    Kind::Decoy => manifest.decoys.push(entry),
                }
            }
        }
        for (text, entry) in pending {
            writer.record(&text)?;
            manifest.alerts.push(Planted {
                file: rel.clone(),
                duplicate: true,
                ..entry
            });
        }
        let (events, bytes_uncompressed) = writer.finish()?;
        manifest.files.push(FileEntry {
            file: rel,
            events,
            bytes_uncompressed,
            bytes_gz: std::fs::metadata(&path)?.len(),
        });
    }
    let text = serde_json::to_string_pretty(&manifest).map_err(io::Error::other)?;
    std::fs::write(out.join("manifest.json"), text)?;
    Ok(manifest)
}

/// Records per file: log-normal weights (sigma 1.2) scaled to `events`.
fn file_sizes(rng: &mut Rng, events: usize, files: usize) -> Vec<usize> {
    let weights: Vec<f64> = (0..files).map(|_| (1.2 * rng.normal()).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|w| (events as f64 * w / total) as usize)
        .collect();
    let assigned: usize = counts.iter().sum();
    if let Some(first) = counts.first_mut() {
        *first += events.saturating_sub(assigned);
    }
    counts
}

/// A gzipped `{"Records":[...]}` file written one record at a time.
struct RecordWriter {
    gz: flate2::write::GzEncoder<BufWriter<File>>,
    records: usize,
    bytes: u64,
}

impl RecordWriter {
    fn create(path: &Path, level: u32) -> io::Result<Self> {
        // No file name and mtime 0 in the header: the bytes depend on the seed only.
        let gz = GzBuilder::new()
            .mtime(0)
            .write(BufWriter::new(File::create(path)?), Compression::new(level));
        let mut writer = RecordWriter {
            gz,
            records: 0,
            bytes: 0,
        };
        writer.raw(b"{\"Records\":[")?;
        Ok(writer)
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes += bytes.len() as u64;
        self.gz.write_all(bytes)
    }

    fn record(&mut self, text: &str) -> io::Result<()> {
        if self.records > 0 {
            self.raw(b",")?;
        }
        self.records += 1;
        self.raw(text.as_bytes())
    }

    fn finish(mut self) -> io::Result<(usize, u64)> {
        self.raw(b"]}")?;
        self.gz.finish()?.flush()?;
        Ok((self.records, self.bytes))
    }
}

// ---------------------------------------------------------------------------
// Randomness

/// splitmix64: tiny, fast, and the same stream for a seed on every platform.
pub struct Rng(u64);

const LETTERS_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index chosen with the given weights.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut x = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    pub fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }

    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }

    /// A random (version 4) UUID.
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let a = (a & !0xf000) | 0x4000;
        let b = (b & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

// ---------------------------------------------------------------------------
// Time

/// 2024-03-15T00:00:00Z, the first file's time.
const START_MS: i64 = 1_710_460_800_000;
const DAY_MS: i64 = 86_400_000;

/// A UTC time broken down (days-to-civil, proleptic Gregorian).
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

impl Civil {
    fn from_ms(ms: i64) -> Civil {
        let days = ms.div_euclid(DAY_MS);
        let secs = ms.rem_euclid(DAY_MS) / 1000;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, CloudTrail's `eventTime`.
    fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn iso(ms: i64) -> String {
    Civil::from_ms(ms).iso()
}

// ---------------------------------------------------------------------------
// Vocabulary

const ACCOUNTS: &[&str] = &[
    "111122223333",
    "444455556666",
    "777788889999",
    "210987654321",
];
const REGIONS: &[&str] = &[
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

// ---------------------------------------------------------------------------
// Records

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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

struct Generator {
    rng: Rng,
    export_rate: f64,
    pools: Vec<Pool>,
    /// File (account, region), body and caller of the previous ordinary record.
    last: Option<((&'static str, &'static str), Body, Actor)>,
}

impl Generator {
    fn new(seed: u64, export_rate: f64) -> Generator {
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

    // ---- ordinary calls

    fn body(&mut self, body: Body, account: &str, region: &str) -> Call {
        match body {
            Body::S3 => self.s3(account, region),
            Body::Kms => self.kms(account, region),
            Body::Sts => self.sts(account),
            Body::Ec2 => self.ec2(account),
            Body::Rds => self.rds(account, region),
            Body::Lambda => self.lambda(account, region),
            Body::Iam => self.iam(),
            Body::Signin => self.signin(),
            Body::Secrets => self.secrets(account, region),
            Body::Sqs => self.sqs(account, region),
        }
    }

    fn s3(&mut self, account: &str, region: &str) -> Call {
        let bucket = *self.rng.pick(BUCKETS);
        let key = *self.rng.pick(KEYS);
        let name = ["GetObject", "PutObject", "HeadObject"][self.rng.weighted(&[6, 3, 1])];
        let mut request = json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "key": key});
        if name == "GetObject" && self.rng.chance(0.3) {
            request["response-content-disposition"] =
                json!("attachment; filename=\"Übersicht 2024.pdf\"");
        }
        let response = if name == "PutObject" {
            json!({"x-amz-server-side-encryption": "aws:kms", "x-amz-version-id": self.rng.chars(32, LETTERS_DIGITS)})
        } else {
            Value::Null
        };
        let mut call = Call::new("s3.amazonaws.com", name, request, response);
        call.additional = Some(
            json!({"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": if name == "PutObject" { self.rng.below(20_000_000) } else { 0 },
            "AuthenticationMethod": "AuthHeader", "x-amz-id-2": self.rng.chars(76, BASE64),
            "bytesTransferredOut": if name == "GetObject" { self.rng.below(50_000_000) } else { 0 }}),
        );
        call.resources = Some(
            json!([{"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}")},
                                     {"accountId": account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]),
        );
        call.data_event = true;
        call
    }

    fn kms(&mut self, account: &str, region: &str) -> Call {
        let index = self.rng.below(4) as usize;
        let key = self.kms_key(account, region, index);
        let context = if self.rng.chance(0.3) {
            json!({"aws:lambda:FunctionArn": format!("arn:aws:lambda:{region}:{account}:function:thumbnails")})
        } else {
            json!({"aws:s3:arn": format!("arn:aws:s3:::{}/{}", self.rng.pick(BUCKETS), self.rng.pick(KEYS))})
        };
        let name = *self.rng.pick(&["Decrypt", "GenerateDataKey"]);
        let mut call = Call::new(
            "kms.amazonaws.com",
            name,
            json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": key, "encryptionContext": context}),
            Value::Null,
        );
        call.resources = Some(json!([{"accountId": account, "type": "AWS::KMS::Key", "ARN": key}]));
        call.read_only = true;
        call
    }

    fn sts(&mut self, account: &str) -> Call {
        let pool = &self.pools[account_index(account)];
        let (role, role_id) = pool.roles[self.rng.below(pool.roles.len() as u64) as usize].clone();
        let session = format!("session-{}", self.rng.hex(8));
        let token_len = self.rng.range(300, 700) as usize;
        let response = json!({"credentials": {"accessKeyId": format!("ASIA{}", self.rng.chars(16, UPPER_DIGITS)),
            "sessionToken": self.rng.chars(token_len, BASE64),
            "expiration": format!("Mar 15, 2024, 1:{:02}:{:02} PM", self.rng.below(60), self.rng.below(60))},
            "assumedRoleUser": {"assumedRoleId": format!("{role_id}:{session}"),
                                "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")}});
        let mut call = Call::new(
            "sts.amazonaws.com",
            "AssumeRole",
            json!({"roleArn": format!("arn:aws:iam::{account}:role/{role}"), "roleSessionName": session, "durationSeconds": 3600}),
            response,
        );
        call.resources = Some(
            json!([{"accountId": account, "type": "AWS::IAM::Role", "ARN": format!("arn:aws:iam::{account}:role/{role}")}]),
        );
        call.read_only = true;
        call
    }

    fn ec2(&mut self, account: &str) -> Call {
        if self.rng.chance(0.05) {
            // Rare, but large responses.
            let count = self.rng.range(1, 6);
            let image = format!("ami-0{}", self.rng.hex(16));
            let items: Vec<Value> = (0..count)
                .map(|i| {
                    json!({"instanceId": format!("i-0{}", self.rng.hex(16)), "imageId": image,
                    "instanceState": {"code": 0, "name": "pending"},
                    "privateDnsName": format!("ip-10-1-{i}-23.ec2.internal"),
                    "tagSet": {"items": [{"key": "Name", "value": "worker ⚙ ñandú"}]}})
                })
                .collect();
            return Call::new(
                "ec2.amazonaws.com",
                "RunInstances",
                json!({"instancesSet": {"items": [{"imageId": image, "minCount": 1, "maxCount": count}]},
                       "instanceType": "m7g.large", "monitoring": {"enabled": false}}),
                json!({"requestId": self.rng.uuid(), "reservationId": format!("r-0{}", self.rng.hex(16)),
                       "ownerId": account, "instancesSet": {"items": items}}),
            );
        }
        let name = *self.rng.pick(&[
            "DescribeInstances",
            "DescribeSecurityGroups",
            "DescribeVolumes",
            "DescribeSubnets",
        ]);
        let request = if self.rng.chance(0.5) {
            json!({"filterSet": {"items": [{"name": "tag:Environment", "valueSet": {"items": [{"value": "prod"}]}}]}})
        } else {
            json!({"maxResults": 1000})
        };
        Call::new("ec2.amazonaws.com", name, request, Value::Null)
    }

    fn rds(&mut self, account: &str, region: &str) -> Call {
        let db = *self
            .rng
            .pick(&["orders-prod", "customers-db", "reporting-aurora"]);
        if self.rng.chance(0.9) {
            let name = *self.rng.pick(&[
                "DescribeDBInstances",
                "DescribeDBSnapshots",
                "DescribeDBClusters",
                "DescribeExportTasks",
            ]);
            let request = if name == "DescribeDBInstances" {
                json!({"dBInstanceIdentifier": db})
            } else {
                Value::Null
            };
            return Call::new("rds.amazonaws.com", name, request, Value::Null);
        }
        let snapshot = format!("{db}-manual-{}", self.rng.hex(6));
        let response = json!({"dBSnapshotIdentifier": snapshot, "dBInstanceIdentifier": db, "engine": "postgres",
            "status": "creating", "dBSnapshotArn": format!("arn:aws:rds:{region}:{account}:snapshot:{snapshot}"),
            "allocatedStorage": 500, "storageEncrypted": true, "kmsKeyId": self.kms_key(account, region, 0),
            "tagList": [{"key": "owner", "value": "Zoë Ørsted / データ基盤"}], "percentProgress": 0,
            "dbiResourceId": format!("db-{}", self.rng.chars(26, UPPER_DIGITS))});
        Call::new(
            "rds.amazonaws.com",
            "CreateDBSnapshot",
            json!({"dBSnapshotIdentifier": snapshot, "dBInstanceIdentifier": db}),
            response,
        )
    }

    fn lambda(&mut self, account: &str, region: &str) -> Call {
        let function = format!(
            "arn:aws:lambda:{region}:{account}:function:{}",
            self.rng.pick(&["thumbnails", "orders-api", "authorizer"])
        );
        let mut call = Call::new(
            "lambda.amazonaws.com",
            "Invoke",
            json!({"functionName": function, "invocationType": "Event", "sourceArn": null}),
            Value::Null,
        );
        call.additional = Some(json!({"functionVersion": format!("{function}:$LATEST")}));
        call.resources =
            Some(json!([{"accountId": account, "type": "AWS::Lambda::Function", "ARN": function}]));
        call.data_event = true;
        call
    }

    fn iam(&mut self) -> Call {
        let name = *self.rng.pick(&[
            "GetUser",
            "ListRoles",
            "ListAttachedRolePolicies",
            "GetAccountSummary",
        ]);
        let request = if name == "GetUser" {
            json!({"userName": *self.rng.pick(USERS)})
        } else {
            Value::Null
        };
        Call::new("iam.amazonaws.com", name, request, Value::Null)
    }

    fn signin(&mut self) -> Call {
        let ok = self.rng.chance(0.9);
        let mut call = Call::new(
            "signin.amazonaws.com",
            "ConsoleLogin",
            Value::Null,
            json!({"ConsoleLogin": if ok { "Success" } else { "Failure" }}),
        );
        call.additional = Some(
            json!({"LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true",
                                      "MobileVersion": "No", "MFAUsed": if ok { "Yes" } else { "No" }}),
        );
        call.event_type = "AwsConsoleSignIn";
        if !ok {
            call.error = Some(("Failed authentication".to_owned(), String::new()));
        }
        call
    }

    fn secrets(&mut self, account: &str, region: &str) -> Call {
        let secret = format!(
            "arn:aws:secretsmanager:{region}:{account}:secret:{}-{}",
            self.rng
                .pick(&["prod/orders/db", "ci/deploy-token", "partner/api-key"]),
            self.rng.chars(6, LETTERS_DIGITS)
        );
        let name = *self.rng.pick(&["GetSecretValue", "DescribeSecret"]);
        let mut call = Call::new(
            "secretsmanager.amazonaws.com",
            name,
            json!({"secretId": secret}),
            Value::Null,
        );
        call.resources = Some(
            json!([{"accountId": account, "type": "AWS::SecretsManager::Secret", "ARN": secret}]),
        );
        call
    }

    fn sqs(&mut self, account: &str, region: &str) -> Call {
        let queue = format!(
            "https://sqs.{region}.amazonaws.com/{account}/{}",
            self.rng
                .pick(&["orders-events", "thumbnails-jobs.fifo", "dead-letter"])
        );
        let name = *self
            .rng
            .pick(&["SendMessage", "DeleteMessage", "ReceiveMessage"]);
        let mut call = Call::new(
            "sqs.amazonaws.com",
            name,
            json!({"queueUrl": queue}),
            Value::Null,
        );
        call.data_event = true;
        call
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
    fn event(
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
