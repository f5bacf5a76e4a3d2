//! `template.yaml` checked against the code and against its own promises, where
//! cfn-lint, `sam validate` and checkov cannot see: the dashboard and the alarms
//! name only metrics the function emits (and every emitted metric is shown), the
//! S3 Batch Operations role can invoke only the backfill function, the queues
//! outlast the function's timeout, and the grants stay as narrow as documented.
//!
//! The template is read with its short tags (`!Sub`, `!Ref`, ...) turned into
//! CloudFormation's long form (`{"Fn::Sub": ...}`), so every check reads one shape.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use trailwatch::events::{METRICS, NAMESPACE};

/// The template, in long form.
fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let text = std::fs::read_to_string(path).expect("read template.yaml");
    parse(&text)
}

fn parse(text: &str) -> Value {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("template.yaml is YAML");
    long_form(yaml)
}

/// A YAML value as JSON, short tags in CloudFormation's long form.
fn long_form(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Number(n) => serde_json::to_value(n).expect("a YAML number is JSON"),
        Y::String(s) => json!(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml_ng::to_string(&other)
                            .expect("a key")
                            .trim()
                            .to_owned(),
                    };
                    (key, long_form(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = long_form(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                // `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`.
                "GetAtt" => match value.as_str().and_then(|s| s.split_once('.')) {
                    Some((resource, attribute)) => json!({"Fn::GetAtt": [resource, attribute]}),
                    None => json!({ "Fn::GetAtt": value }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

fn resources(template: &Value) -> &serde_json::Map<String, Value> {
    template["Resources"]
        .as_object()
        .expect("the template has resources")
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    template["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("resource {name} is in the template"))
}

/// A string-valued expression rendered with every condition true (so conditional
/// parts are checked too): `Fn::Join`, `Fn::Sub` (a `${Name}` becomes `Name`,
/// `${AWS::Region}` a region), `Fn::If` (its first branch), `Ref`, `Fn::GetAtt`.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => {
            let (function, argument) = map.iter().next().expect("one entry");
            match function.as_str() {
                "Fn::Join" => {
                    let separator = argument[0].as_str().expect("a Join separator");
                    let parts = argument[1].as_array().expect("a Join list");
                    parts.iter().map(render).collect::<Vec<_>>().join(separator)
                }
                "Fn::Sub" => {
                    let (text, variables) = match argument {
                        Value::Array(pair) => {
                            (pair[0].as_str().expect("a Sub string"), Some(&pair[1]))
                        }
                        other => (other.as_str().expect("a Sub string"), None),
                    };
                    substitute(text, variables)
                }
                "Fn::If" => render(&argument[1]),
                "Ref" => argument.as_str().expect("a Ref name").to_owned(),
                "Fn::GetAtt" => {
                    let parts: Vec<&str> = argument
                        .as_array()
                        .expect("GetAtt parts")
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    parts.join(".")
                }
                other => panic!("cannot render {other}"),
            }
        }
        other => panic!("cannot render {other}"),
    }
}

fn substitute(text: &str, variables: Option<&Value>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${...}") + start;
        let name = &rest[start + 2..end];
        match (name, variables.and_then(|v| v.get(name))) {
            (_, Some(value)) => out.push_str(&render(value)),
            ("AWS::Region", None) => out.push_str("us-east-1"),
            (name, None) => out.push_str(name),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A metric a widget or an alarm names: namespace, name, dimension names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricRef {
    namespace: String,
    name: String,
    dimensions: BTreeSet<String>,
}

/// Every metric of every widget of the dashboard, `"."` (same as the line above)
/// resolved.
fn dashboard_metrics(template: &Value) -> Vec<(String, MetricRef)> {
    let body = render(&resource(template, "Dashboard")["Properties"]["DashboardBody"]);
    let body: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the dashboard body is JSON ({e}): {body}"));
    let mut found = Vec::new();
    for widget in body["widgets"].as_array().expect("dashboard widgets") {
        let title = widget["properties"]["title"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let Some(lines) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        let mut previous: Vec<String> = Vec::new();
        for line in lines {
            let line = line.as_array().expect("a metric line is an array");
            let words: Vec<String> =
                line.iter()
                    .map_while(Value::as_str)
                    .enumerate()
                    .map(|(i, word)| match word {
                        "." => previous.get(i).cloned().unwrap_or_else(|| {
                            panic!("widget {title}: \".\" with nothing above it")
                        }),
                        word => word.to_owned(),
                    })
                    .collect();
            if words.len() < 2 {
                continue; // An expression, not a metric.
            }
            assert!(
                words.len().is_multiple_of(2),
                "widget {title}: dimensions come in name/value pairs: {words:?}"
            );
            found.push((
                title.clone(),
                MetricRef {
                    namespace: words[0].clone(),
                    name: words[1].clone(),
                    dimensions: words[2..].iter().step_by(2).cloned().collect(),
                },
            ));
            previous = words;
        }
    }
    found
}

/// Every alarm's metric (single-metric alarms and metric-math alarms alike).
fn alarm_metrics(template: &Value) -> Vec<(String, MetricRef)> {
    let mut found = Vec::new();
    for (name, resource) in resources(template) {
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        let properties = &resource["Properties"];
        let dimensions = |list: &Value| -> BTreeSet<String> {
            list.as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|d| d["Name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut metrics = Vec::new();
        if let Some(metric_name) = properties["MetricName"].as_str() {
            metrics.push(MetricRef {
                namespace: properties["Namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: metric_name.to_owned(),
                dimensions: dimensions(&properties["Dimensions"]),
            });
        }
        for query in properties["Metrics"].as_array().into_iter().flatten() {
            let metric = &query["MetricStat"]["Metric"];
            if let Some(metric_name) = metric["MetricName"].as_str() {
                metrics.push(MetricRef {
                    namespace: metric["Namespace"].as_str().unwrap_or_default().to_owned(),
                    name: metric_name.to_owned(),
                    dimensions: dimensions(&metric["Dimensions"]),
                });
            }
        }
        assert!(!metrics.is_empty(), "alarm {name} names no metric");
        found.extend(metrics.into_iter().map(|m| (name.clone(), m)));
    }
    found
}

/// The metrics the code emits, as the template must name them.
fn emitted() -> BTreeSet<MetricRef> {
    METRICS
        .iter()
        .map(|m| MetricRef {
            namespace: NAMESPACE.to_owned(),
            name: m.name.to_owned(),
            dimensions: m.dimensions.iter().map(|d| (*d).to_owned()).collect(),
        })
        .collect()
}

/// What is wrong between the emitted metrics and what the template names.
fn metric_disagreements(template: &Value) -> Vec<String> {
    let emitted = emitted();
    let mut problems = Vec::new();
    let shown = dashboard_metrics(template);
    for (widget, metric) in &shown {
        if metric.namespace == NAMESPACE && !emitted.contains(metric) {
            problems.push(format!(
                "widget \"{widget}\" shows {} {:?}, which the code does not emit (src/events.rs METRICS)",
                metric.name, metric.dimensions
            ));
        }
    }
    let shown: BTreeSet<MetricRef> = shown.into_iter().map(|(_, m)| m).collect();
    for metric in &emitted {
        if !shown.contains(metric) {
            problems.push(format!(
                "{} {:?} is emitted but on no dashboard widget",
                metric.name, metric.dimensions
            ));
        }
    }
    for (alarm, metric) in alarm_metrics(template) {
        if metric.namespace != NAMESPACE {
            continue;
        }
        if !emitted.contains(&metric) {
            problems.push(format!(
                "alarm {alarm} watches {} {:?}, which the code does not emit",
                metric.name, metric.dimensions
            ));
        } else if !shown.contains(&metric) {
            problems.push(format!(
                "alarm {alarm} watches {}, which no widget shows",
                metric.name
            ));
        }
    }
    problems
}

#[test]
fn the_dashboard_and_the_alarms_name_the_emitted_metrics() {
    let template = template();
    let problems = metric_disagreements(&template);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let alarmed: Vec<String> = alarm_metrics(&template)
        .into_iter()
        .filter(|(_, m)| m.namespace == NAMESPACE)
        .map(|(_, m)| m.name)
        .collect();
    assert!(
        alarmed.contains(&"PublishFailures".to_owned()),
        "{alarmed:?}"
    );
}

#[test]
fn a_dashboard_or_alarm_naming_another_metric_is_caught() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    // A widget on a metric the code does not emit.
    let renamed = parse(&text.replacen(r#"[".","Suppressed"]"#, r#"[".","Supressed"]"#, 1));
    let problems = metric_disagreements(&renamed);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Supressed") && p.contains("does not emit")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Suppressed") && p.contains("on no dashboard widget")),
        "{problems:?}"
    );
    // An alarm on a metric the code does not emit.
    let alarm = parse(&text.replacen(
        "MetricName: PublishFailures",
        "MetricName: PublishFailure",
        1,
    ));
    let problems = metric_disagreements(&alarm);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("alarm PublishFailuresAlarm")),
        "{problems:?}"
    );
}

/// Every statement of every policy that `role` holds: its inline policies, and any
/// policy resource of the template attached to it.
fn statements_of(template: &Value, role: &str) -> Vec<Value> {
    let mut statements = Vec::new();
    let properties = &resource(template, role)["Properties"];
    assert!(
        properties["ManagedPolicyArns"].is_null(),
        "{role} holds managed policies: {}",
        properties["ManagedPolicyArns"]
    );
    for policy in properties["Policies"].as_array().into_iter().flatten() {
        statements.extend(
            policy["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    for (name, resource) in resources(template) {
        let kind = resource["Type"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy"
        ) {
            continue;
        }
        let properties = &resource["Properties"];
        let attached = properties["Roles"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&properties["RoleName"]))
            .any(|r| r == &json!({"Ref": role}));
        if attached {
            let document = &properties["PolicyDocument"];
            assert!(document.is_object(), "policy {name}");
            statements.extend(
                document["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    statements
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Why `role` could invoke a function other than the backfill function, if it can.
fn invokes_more_than_the_backfill_function(template: &Value, role: &str) -> Option<String> {
    for statement in statements_of(template, role) {
        if statement["Effect"] != "Allow" {
            continue;
        }
        if !statement["NotAction"].is_null() || !statement["NotResource"].is_null() {
            return Some(format!("NotAction/NotResource grant: {statement}"));
        }
        let actions = strings(&statement["Action"]);
        let lambda = actions.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a.starts_with("lambda:")
        });
        if !lambda {
            continue;
        }
        if actions
            .iter()
            .any(|a| !a.eq_ignore_ascii_case("lambda:InvokeFunction"))
        {
            return Some(format!("Lambda actions beyond InvokeFunction: {actions:?}"));
        }
        let resources = match &statement["Resource"] {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for resource in resources {
            let backfill = resource == json!({"Fn::GetAtt": ["BackfillFunction", "Arn"]})
                || resource == json!({"Fn::Sub": "${BackfillFunction.Arn}:*"});
            if !backfill {
                return Some(format!("lambda:InvokeFunction on {resource}"));
            }
        }
    }
    None
}

#[test]
fn batch_operations_can_invoke_only_the_backfill_function() {
    let template = template();
    if let Some(problem) = invokes_more_than_the_backfill_function(&template, "BatchOperationsRole")
    {
        panic!("BatchOperationsRole: {problem}");
    }
    // No resource policy lets Batch Operations at the live function either.
    for (name, resource) in resources(&template) {
        if resource["Type"] == "AWS::Lambda::Permission" {
            assert_ne!(
                resource["Properties"]["Principal"], "batchoperations.s3.amazonaws.com",
                "{name}"
            );
        }
    }
    // The check sees a grant on the live function, or on every function.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    let live = parse(&text.replacen(
        "                  - !GetAtt BackfillFunction.Arn\n",
        "                  - !GetAtt BackfillFunction.Arn\n                  - !GetAtt TrailwatchFunction.Arn\n",
        1,
    ));
    let problem = invokes_more_than_the_backfill_function(&live, "BatchOperationsRole");
    assert!(problem.is_some_and(|p| p.contains("TrailwatchFunction")));
    let every = parse(&text.replacen("Sid: InvokeTheBackfillFunction", "Sid: InvokeTheBackfillFunction\n                Effect: Allow\n                Action: lambda:*\n                Resource: \"*\"\n              - Sid: Was", 1));
    assert!(invokes_more_than_the_backfill_function(&every, "BatchOperationsRole").is_some());
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("a number: {value}"))
}

#[test]
fn the_queues_outlast_the_function() {
    let template = template();
    let timeout = number(&template["Globals"]["Function"]["Timeout"]);
    let window_max = number(&template["Parameters"]["QueueBatchWindowSeconds"]["MaxValue"]);
    let visibility =
        |queue: &str| number(&resource(&template, queue)["Properties"]["VisibilityTimeout"]);
    // AWS's advice for a Lambda event source: six times the timeout, plus the window.
    assert!(visibility("IngestQueue") >= 6 * timeout + window_max);
    // A dead-letter queue must be readable by an event source mapping (redrive).
    assert!(visibility("IngestDeadLetterQueue") >= timeout);
    assert!(visibility("DeadLetterQueue") >= timeout);
    for queue in ["IngestQueue", "IngestDeadLetterQueue", "DeadLetterQueue"] {
        assert_eq!(
            resource(&template, queue)["Properties"]["SqsManagedSseEnabled"],
            true,
            "{queue}"
        );
    }
    let redrive = &resource(&template, "IngestQueue")["Properties"]["RedrivePolicy"];
    assert_eq!(
        redrive["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]})
    );
    let mapping = &resource(&template, "IngestQueueEventSource")["Properties"];
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(mapping["BatchSize"], json!({"Ref": "QueueBatchSize"}));
    assert_eq!(
        mapping["MaximumBatchingWindowInSeconds"],
        json!({"Ref": "QueueBatchWindowSeconds"})
    );
    // The ingest queue has an age alarm, and so has its dead-letter queue.
    for queue in ["IngestQueue", "IngestDeadLetterQueue"] {
        let watched = resources(&template).values().any(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
                && r["Properties"]["Dimensions"][0]["Value"]
                    == json!({"Fn::GetAtt": [queue, "QueueName"]})
        });
        assert!(watched, "{queue} has an age alarm");
    }
}

#[test]
fn grants_stay_narrow() {
    let template = template();
    let shared =
        &resource(&template, "FunctionAccessPolicy")["Properties"]["PolicyDocument"]["Statement"];
    let read = shared
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "ReadTrailLogFiles")
        .expect("the read grant");
    assert_eq!(read["Action"], "s3:GetObject");
    assert!(
        render(&read["Resource"]).ends_with("/TrailPrefixAWSLogs/*/CloudTrail/*"),
        "log files only: {}",
        read["Resource"]
    );
    // Each function writes only its own log group.
    for (role, group) in [
        ("LiveFunctionRole", "LiveLogGroup"),
        ("BackfillFunctionRole", "BackfillLogGroup"),
    ] {
        let statements: Vec<Value> = resource(&template, role)["Properties"]["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        for statement in statements {
            if strings(&statement["Action"])
                .iter()
                .any(|a| a.starts_with("logs:"))
            {
                assert_eq!(
                    statement["Resource"],
                    json!({"Fn::GetAtt": [group, "Arn"]}),
                    "{role}"
                );
            }
        }
    }
    // The topic: the functions and this account's alarms publish, over TLS only.
    let topic =
        &resource(&template, "AlertTopicPolicy")["Properties"]["PolicyDocument"]["Statement"];
    let sid = |sid: &str| {
        topic
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("topic statement {sid}"))
            .clone()
    };
    assert_eq!(
        sid("TlsOnly")["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    assert_eq!(
        sid("AlarmsPublish")["Condition"]["StringEquals"]["aws:SourceAccount"],
        json!({"Ref": "AWS::AccountId"})
    );
    assert_eq!(sid("NoOtherPublishers")["Effect"], "Deny");
    let key = &resource(&template, "AlertTopicKey")["Properties"]["KeyPolicy"]["Statement"];
    let alarms = key
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "CloudWatchAlarmsPublish")
        .expect("the key's CloudWatch statement");
    assert!(alarms["Condition"]["StringEquals"]["aws:SourceAccount"].is_object());
    assert!(alarms["Condition"]["ArnLike"]["aws:SourceArn"].is_object());
    // Live detection has its own capacity; backfills have theirs.
    for function in ["TrailwatchFunction", "BackfillFunction"] {
        assert!(
            !resource(&template, function)["Properties"]["ReservedConcurrentExecutions"].is_null()
        );
    }
    // EventBridge with a bucket elsewhere is refused, saying what to do instead.
    let rule = &template["Rules"]["EventBridgeNeedsTheBucketHere"];
    assert_eq!(
        rule["RuleCondition"],
        json!({"Fn::Equals": [{"Ref": "UseEventBridge"}, "true"]})
    );
    let description = rule["Assertions"][0]["AssertDescription"].as_str().unwrap();
    assert!(description.contains("UseEventBridge=false") && description.contains("IngestMode=sqs"));
}

/// The live function's grants for enrichment and response: what it may do in its
/// own account, the member role it may assume, and `rds:CancelExportTask` only
/// with `ResponseMode=cancel`. The backfill function neither looks up nor acts.
#[test]
fn acting_in_event_accounts_is_granted_only_as_configured() {
    let template = template();
    let policies = resource(&template, "LiveFunctionRole")["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .clone();
    let act = policies
        .iter()
        .find_map(|p| {
            let branches = p["Fn::If"].as_array()?;
            (branches[0] == "ActsInEventAccounts").then(|| branches[1].clone())
        })
        .expect("the act-in-event-accounts policy, only when enrichment or cancel is on");
    let mut granted = Vec::new();
    for statement in act["PolicyDocument"]["Statement"].as_array().unwrap() {
        // (condition, statement): an unconditional statement has none.
        let (condition, statement) = match statement["Fn::If"].as_array() {
            Some(branches) => {
                assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}));
                (
                    branches[0].as_str().unwrap().to_owned(),
                    branches[1].clone(),
                )
            }
            None => (String::new(), statement.clone()),
        };
        assert_eq!(statement["Effect"], "Allow");
        let action = statement["Action"].as_str().unwrap().to_owned();
        granted.push((condition, action, render(&statement["Resource"])));
    }
    let expected = [
        (
            "AssumesMemberRoles",
            "sts:AssumeRole",
            "arn:AWS::Partition:iam::*:role/MemberRoleName",
        ),
        ("", "rds:DescribeExportTasks", "*"),
        (
            "EnrichmentEnabled",
            "rds:DescribeDBSnapshots",
            "arn:AWS::Partition:rds:*:AWS::AccountId:snapshot:*",
        ),
        (
            "EnrichmentEnabled",
            "rds:DescribeDBClusterSnapshots",
            "arn:AWS::Partition:rds:*:AWS::AccountId:cluster-snapshot:*",
        ),
        (
            "EnrichmentEnabled",
            "s3:ListBucket",
            "arn:AWS::Partition:s3:::*",
        ),
        ("CancelEnabled", "rds:CancelExportTask", "*"),
    ];
    let granted: Vec<(&str, &str, &str)> = granted
        .iter()
        .map(|(c, a, r)| (c.as_str(), a.as_str(), r.as_str()))
        .collect();
    assert_eq!(granted, expected);
    let conditions = &template["Conditions"];
    assert_eq!(
        conditions["CancelEnabled"],
        json!({"Fn::Equals": [{"Ref": "ResponseMode"}, "cancel"]})
    );
    assert_eq!(template["Parameters"]["ResponseMode"]["Default"], "report");
    // The live function is configured from the parameters; the backfill function
    // is told to do neither.
    let live = &resource(&template, "TrailwatchFunction")["Properties"]["Environment"]["Variables"];
    for (variable, parameter) in [
        ("TRAILWATCH_ENRICH", "EnableEnrichment"),
        ("TRAILWATCH_ENRICH_TIMEOUT_MS", "EnrichTimeoutMs"),
        ("TRAILWATCH_MEMBER_ROLE_NAME", "MemberRoleName"),
        ("TRAILWATCH_TRUSTED_BUCKETS", "TrustedBuckets"),
        ("TRAILWATCH_TRUSTED_ACCOUNTS", "TrustedAccounts"),
        ("TRAILWATCH_RESPONSE", "ResponseMode"),
        ("TRAILWATCH_RESPONSE_MAX_PER_HOUR", "ResponseMaxPerHour"),
    ] {
        assert_eq!(live[variable], json!({"Ref": parameter}), "{variable}");
    }
    let backfill =
        &resource(&template, "BackfillFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(backfill["TRAILWATCH_ENRICH"], "false");
    assert_eq!(backfill["TRAILWATCH_RESPONSE"], "off");
    assert_eq!(
        template["Outputs"]["FunctionRoleArn"]["Value"],
        json!({"Fn::GetAtt": ["LiveFunctionRole", "Arn"]})
    );
}
