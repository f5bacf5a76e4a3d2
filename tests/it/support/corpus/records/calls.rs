//! The ordinary API calls of the corpus, one method per service: S3 object access,
//! KMS, STS, EC2, RDS, Lambda, IAM, console sign-in, Secrets Manager and SQS.

use super::*;

impl Generator {
    pub(super) fn body(&mut self, body: Body, account: &str, region: &str) -> Call {
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
}
