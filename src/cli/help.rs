//! What `--help` shows after the arguments: an example and the exit codes of
//! every command, so that a reader never needs the README to run one. The
//! one-line summaries and the arguments are the doc comments in [`super`].
//!
//! Every example here is run or parsed by the tests (`tests/it/help.rs`): the
//! offline ones run against the sample events and logs in `events/`, the ones
//! that need AWS must at least parse.

pub const TRAILWATCH: &str = "\
Examples:
  trailwatch scan events/objects
  trailwatch invoke events/s3-put.json --objects events/objects
  trailwatch test

Exit codes:
  0  done, nothing failed (an alert is output, not a failure)
  1  something named on stderr could not be read, verified, published or tested
  2  usage error: bad arguments, configuration or rules; nothing was read";

pub const SCAN: &str = "\
Examples:
  trailwatch scan events/objects
  trailwatch scan s3://my-trail-bucket --since 7d --accounts 123456789012 --regions us-east-1
  zcat 123456789012_CloudTrail_us-east-1_20240315T1035Z_x.json.gz | trailwatch scan -

Exit codes:
  0  every file was read (alerts or not)
  1  a file or s3:// location could not be read (the others are still reported), or
     --verify found a log file that failed verification
  2  usage error: bad arguments, configuration or rules; nothing was read";

pub const INVOKE: &str = "\
Examples:
  trailwatch invoke events/s3-put.json --objects events/objects
  trailwatch invoke events/eventbridge-api-call.json events/s3-put-same-call.json

Exit codes:
  0  every event was handled
  1  an invocation failed (its error is on stderr; the other events still ran)
  2  usage error: an event file that cannot be read or is not JSON, bad configuration";

pub const EVENTBRIDGE_PATTERN: &str = "\
Examples:
  trailwatch eventbridge-pattern
  trailwatch eventbridge-pattern --rules AWS.RDS.SnapshotShared --pretty

Exit codes:
  0  the pattern was printed
  2  usage error: a rule that does not load, no enabled rule, or a rule whose
     calls no event pattern can select";

pub const BACKFILL: &str = "\
Example:
  trailwatch backfill s3://my-trail-bucket --since 90d \\
      --manifest s3://my-backfill-bucket/manifests/90d.csv \\
      --function-arn arn:aws:lambda:us-east-1:123456789012:function:trailwatch-backfill \\
      --role-arn arn:aws:iam::123456789012:role/trailwatch-batch-operations

Exit codes:
  0  the manifest was uploaded and the `aws s3control create-job` command printed
  1  listing or uploading failed, or no log file matches the filters
  2  usage error: no --since, a malformed s3:// location, ARN, time or account";

pub const VERIFY: &str = "\
Examples:
  trailwatch verify s3://my-trail-bucket --since 7d
  trailwatch verify s3://my-trail-bucket --since 2024-03-01 --until 2024-03-15 --public-keys keys.json --format json

Exit codes:
  0  every log file and digest is valid (or could not be verified: `unverified`)
  1  a file is modified, missing, unlisted or invalid, or the bucket could not be read
  2  usage error: no --since, a malformed s3:// location, time or account";

pub const TEST: &str = "\
Examples:
  trailwatch test
  trailwatch test rules/aws_rds_snapshot_export.yml

Exit codes:
  0  every test passed
  1  a test failed (its line reads FAIL)
  2  a rule file could not be loaded";

pub const LAMBDA: &str = "\
Example (what the Lambda runtime runs; by hand, only against a local Runtime API):
  AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 TRAILWATCH_TOPIC_ARN=arn:aws:sns:us-east-1:123456789012:trailwatch trailwatch lambda

Exit codes:
  0  the runtime loop ended
  1  invalid configuration at cold start (the variable is named), or the runtime failed";
