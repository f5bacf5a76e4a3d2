//! Test helper: the function's AWS surroundings on a private `moto_server` (an S3
//! bucket, an SNS topic with an SQS queue subscribed, a DynamoDB dedup table) and
//! the Lambda handler wired to them the way `run_lambda` wires it in production.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{json, Value};

use trailwatch::config::Config;
use trailwatch::handler::Handler;
use trailwatch::sink::{AlertSink, SnsSink};

pub use crate::support::fixtures::log_file;
use crate::support::fixtures::s3_event;
use crate::support::moto::{unique, MotoServer};

/// One alert as an SQS subscriber of the topic receives it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The SNS envelope (`Type`, `Subject`, `Message`, `MessageAttributes`, ...).
    pub envelope: Value,
    /// `Message` parsed: the alert or roll-up document.
    pub document: Value,
}

impl Delivered {
    pub fn kind(&self) -> &str {
        self.document["kind"].as_str().unwrap_or_default()
    }

    pub fn alert_id(&self) -> &str {
        self.document["alertId"].as_str().unwrap_or_default()
    }

    /// A message attribute's value, as SNS puts it in the envelope.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        let attribute = &self.envelope["MessageAttributes"][name];
        assert_eq!(attribute["Type"], "String", "attribute {name}: {attribute}");
        attribute["Value"].as_str()
    }
}

pub struct Stack {
    pub server: MotoServer,
    pub conf: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub bucket: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub table: String,
}

impl Stack {
    /// A fresh server with its own bucket, topic, subscribed queue and table. The
    /// server answers one request at a time, as atomically as AWS does (see
    /// [`MotoServer::start_serialized`]).
    pub async fn start() -> Stack {
        Stack::on(MotoServer::start_serialized).await
    }

    /// [`Stack::start`] on a server whose new RDS export tasks stay `starting`
    /// (see [`MotoServer::start_with_running_exports`]).
    pub async fn with_running_exports() -> Stack {
        Stack::on(MotoServer::start_with_running_exports).await
    }

    async fn on(start: fn() -> MotoServer) -> Stack {
        let server = tokio::task::spawn_blocking(start)
            .await
            .expect("moto_server starts");
        let conf = server.sdk_config().await;
        let s3 = server.s3_client(&conf);
        let sns = aws_sdk_sns::Client::new(&conf);
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let dynamodb = aws_sdk_dynamodb::Client::new(&conf);

        let bucket = unique("trail");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        let topic_arn = sns
            .create_topic()
            .name(unique("alerts"))
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic ARN");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("subscriber"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue ARN");
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("subscribe the queue");
        let stack = Stack {
            server,
            conf,
            s3,
            sns,
            sqs,
            dynamodb,
            bucket,
            topic_arn,
            queue_url,
            table: unique("dedup"),
        };
        stack.create_table(&stack.table).await;
        stack
    }

    /// A dedup table as `template.yaml` declares it: hash key `pk` (S).
    pub async fn create_table(&self, name: &str) {
        self.dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("key schema"),
            )
            .send()
            .await
            .expect("create table");
    }

    /// The function's configuration, as Lambda would pass it in the environment,
    /// with dedup windows in `table`, enrichment and response off: the tests of
    /// the other steps do not depend on what the emulator holds of RDS and S3
    /// (tests/it/enrich_respond.rs turns them on, [`Stack::config_with`]).
    pub fn config(&self, table: &str) -> Config {
        self.config_with(table, &[])
    }

    /// [`Stack::config`] with more variables (they win over its own).
    pub fn config_with(&self, table: &str, vars: &[(&str, &str)]) -> Config {
        let mut env: std::collections::HashMap<String, String> = [
            ("TRAILWATCH_TOPIC_ARN", self.topic_arn.as_str()),
            ("TRAILWATCH_DEDUP_TABLE", table),
            ("TRAILWATCH_ENRICH", "false"),
            ("TRAILWATCH_RESPONSE", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Config::from_lookup(|name| env.get(name).cloned()).expect("valid configuration")
    }

    /// The SNS sink of the function.
    pub fn sns_sink(&self) -> Arc<dyn AlertSink> {
        Arc::new(SnsSink::new(self.sns.clone(), self.topic_arn.clone()))
    }

    /// A handler built like `run_lambda` builds it (a fresh instance: a cold start),
    /// publishing through `sink` when given, through SNS otherwise.
    pub fn handler(&self, sink: Option<Arc<dyn AlertSink>>) -> Handler {
        self.handler_on(&self.table, sink)
    }

    /// [`Stack::handler`] with more variables (`TRAILWATCH_ENRICH=true`,
    /// `TRAILWATCH_RESPONSE=cancel`...), publishing through SNS.
    pub fn handler_with(&self, vars: &[(&str, &str)]) -> Handler {
        Handler::for_aws(
            &self.config_with(&self.table, vars),
            &self.conf,
            self.sns_sink(),
        )
    }

    /// [`Stack::handler`] with dedup windows in another table.
    pub fn handler_on(&self, table: &str, sink: Option<Arc<dyn AlertSink>>) -> Handler {
        let sink = sink.unwrap_or_else(|| self.sns_sink());
        Handler::for_aws(&self.config(table), &self.conf, sink)
    }

    pub async fn put_object(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put object");
    }

    /// The S3 notification Lambda receives for these keys of the stack's bucket.
    pub fn s3_event(&self, keys: &[String]) -> Value {
        s3_event(&self.bucket, keys)
    }

    /// Everything in the queue now, deleted as it is read. SNS delivers to SQS
    /// before `Publish` returns on this server, so a short poll sees every alert.
    pub async fn drain(&self) -> Vec<Delivered> {
        let mut out = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if out.is_empty() { 1 } else { 0 })
                .send()
                .await
                .expect("receive messages");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for message in messages {
                let body = message.body.as_deref().expect("message body");
                let envelope: Value = serde_json::from_str(body).expect("SNS envelope JSON");
                let document = serde_json::from_str(
                    envelope["Message"].as_str().expect("Message is a string"),
                )
                .expect("Message is the JSON document");
                out.push(Delivered { envelope, document });
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .set_receipt_handle(message.receipt_handle)
                    .send()
                    .await
                    .expect("delete message");
            }
        }
    }

    /// The `Message` of every publication to the topic as SNS received it (before
    /// it picked a variant per protocol), from the server's model data.
    pub async fn published(&self) -> Vec<Value> {
        let url = format!("{}/moto-api/data.json", self.server.endpoint);
        let (status, data) = crate::support::http::get(&url, Duration::from_secs(30))
            .await
            .expect("model data request");
        assert_eq!(status, 200, "GET {url}");
        let data: Value = serde_json::from_slice(&data).expect("model data JSON");
        let topic = data["sns"]["Topic"]
            .as_array()
            .expect("SNS topics in the model data")
            .iter()
            .find(|t| t["arn"] == self.topic_arn.as_str())
            .expect("the stack's topic")
            .clone();
        topic["sent_notifications"]
            .as_array()
            .expect("sent notifications")
            .iter()
            // (message id, message, subject, attributes, group id)
            .map(|n| {
                serde_json::from_str(n[1].as_str().expect("message text")).expect("message JSON")
            })
            .collect()
    }
}

/// The EventBridge event of the function's five-minute schedule.
pub fn scheduled_event() -> Value {
    json!({
        "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/trailwatch-flush"],
        "detail": {}
    })
}

/// A CloudTrail log file key of `account` in us-east-1.
pub fn log_key(account: &str, name: &str) -> String {
    format!("AWSLogs/{account}/CloudTrail/us-east-1/2024/05/01/{account}_CloudTrail_us-east-1_20240501T1040Z_{name}.json.gz")
}

/// A successful `rds:StartExportTask` record.
pub fn export_record(event_id: &str, event_time: &str, account: &str, snapshot: &str) -> Value {
    json!({
        "eventVersion": "1.09", "eventSource": "rds.amazonaws.com", "eventName": "StartExportTask",
        "eventTime": event_time, "eventID": event_id, "awsRegion": "us-east-1",
        "recipientAccountId": account, "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.15.30",
        "eventType": "AwsApiCall", "readOnly": false,
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:jdoe",
                         "arn": format!("arn:aws:sts::{account}:assumed-role/DataEngineer/jdoe")},
        "requestParameters": {
            "exportTaskIdentifier": format!("export-{event_id}"),
            "sourceArn": format!("arn:aws:rds:us-east-1:{account}:snapshot:{snapshot}"),
            "s3BucketName": "exports-bucket", "s3Prefix": "rds",
            "iamRoleArn": format!("arn:aws:iam::{account}:role/rds-export"),
            "kmsKeyId": format!("arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        },
        "responseElements": {"status": "STARTING"}
    })
}

/// A record that does not match (another API of the same service).
pub fn other_record(event_id: &str, event_time: &str, account: &str) -> Value {
    json!({
        "eventVersion": "1.09", "eventSource": "rds.amazonaws.com", "eventName": "DescribeDBSnapshots",
        "eventTime": event_time, "eventID": event_id, "awsRegion": "us-east-1",
        "recipientAccountId": account, "requestParameters": null, "responseElements": null
    })
}
