//! Trigger events: arbitrary and mutated ones never panic, and a rejected event is
//! rejected for the right reason.

use super::*;

// ---- trigger events --------------------------------------------------------------

fn samples() -> &'static Vec<Value> {
    static SAMPLES: OnceLock<Vec<Value>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                !crate::triggers::is_batch_job(&name)
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    })
}

/// One change somewhere in an event: a value replaced, a member removed, or a string
/// (an SQS body, an SNS message, a key) cut or extended.
#[derive(Debug, Clone)]
struct Mutation {
    path: Vec<prop::sample::Index>,
    kind: u8,
    replacement: Value,
    cut: prop::sample::Index,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 1..8),
        0u8..4,
        json_value(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(path, kind, replacement, cut)| Mutation {
            path,
            kind,
            replacement,
            cut,
        })
}

fn apply(value: &mut Value, m: &Mutation, depth: usize) {
    let last = depth + 1 >= m.path.len();
    match value {
        Value::Object(map) if !map.is_empty() => {
            let Some(key) = map.keys().nth(m.path[depth].index(map.len())).cloned() else {
                return;
            };
            if last && m.kind == 1 {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                if last {
                    mutate_here(child, m);
                } else {
                    apply(child, m, depth + 1);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = m.path[depth].index(items.len());
            if last && m.kind == 1 {
                items.remove(i);
            } else if last {
                mutate_here(&mut items[i], m);
            } else {
                apply(&mut items[i], m, depth + 1);
            }
        }
        _ => mutate_here(value, m),
    }
}

fn mutate_here(value: &mut Value, m: &Mutation) {
    match (m.kind, &mut *value) {
        (2, Value::String(s)) => {
            let mut at = m.cut.index(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.truncate(at);
        }
        (3, Value::String(s)) => {
            let mut at = m.cut.index(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.insert_str(at, &m.replacement.to_string());
        }
        _ => *value = m.replacement.clone(),
    }
}

/// Events shaped like triggers, with arbitrary insides.
fn trigger_like() -> impl Strategy<Value = Value> {
    let body = prop_oneof![
        text(),
        json_value().prop_map(|v| v.to_string()),
        document().prop_map(|d| d.text),
    ];
    prop_oneof![
        json_value(),
        (text(), body.clone()).prop_map(|(id, body)| json!({"Records": [
            {"messageId": id, "body": body, "eventSource": "aws:sqs"}
        ]})),
        body.clone().prop_map(|message| json!({"Records": [
            {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": message}}
        ]})),
        body.prop_map(
            |message| json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m",
            "body": json!({"Type": "Notification", "Message": message}).to_string()}]})
        ),
        json_value().prop_map(
            |detail| json!({"source": "aws.s3", "detail-type": "Object Created", "detail": detail})
        ),
        json_value().prop_map(|s3| json!({"Records": [{"s3": s3}]})),
    ]
}

fn check_trigger(event: &Value) -> Result<(), TestCaseError> {
    match parse_trigger(event) {
        Ok(Trigger::Batch(messages)) => {
            let records = event["Records"].as_array().map_or(0, Vec::len);
            prop_assert_eq!(messages.len(), records, "one entry per SQS message");
            for (index, message) in messages.iter().enumerate() {
                let id = event["Records"][index]["messageId"].as_str();
                prop_assert_eq!(Some(message.message_id.as_str()), id, "message {}", index);
            }
        }
        Ok(_) => {}
        Err(error) => check_trigger_error(event, &error)?,
    }
    Ok(())
}

/// The envelope an event claims to be, by the markers AWS puts on each: the kind a
/// malformed one must be reported as (`None`: no known envelope).
fn claimed_envelope(event: &Value) -> Option<&'static str> {
    let first = &event["Records"][0];
    let api_call = event["detail-type"] == trailwatch::trigger::api_call::DETAIL_TYPE;
    if api_call || (event["source"] == "aws.s3" && event["detail-type"].is_string()) {
        Some("EventBridge")
    } else if first["eventSource"] == "aws:sqs" {
        Some("SQS")
    } else if first["EventSource"] == "aws:sns" {
        Some("SNS")
    } else if first.get("s3").is_some() {
        Some("S3")
    } else {
        None
    }
}

/// A rejected event is rejected for the right reason: a broken envelope as malformed
/// of that envelope's kind, anything else as an unknown shape naming its keys.
fn check_trigger_error(event: &Value, error: &TriggerError) -> Result<(), TestCaseError> {
    let text = error.to_string();
    match (claimed_envelope(event), error) {
        (None, TriggerError::UnknownShape(keys)) => match event.as_object() {
            Some(members) => {
                for key in members.keys() {
                    prop_assert!(keys.contains(key.as_str()), "{key:?} not named in {text}");
                }
            }
            None => prop_assert!(keys.contains("not an object"), "{text}"),
        },
        // An SNS message carries an inner notification, reported by its own kind.
        (Some("SNS"), TriggerError::Malformed { message, .. }) => {
            prop_assert!(!message.is_empty(), "{text}");
        }
        (Some(claimed), TriggerError::Malformed { kind, message }) => {
            prop_assert_eq!(*kind, claimed, "{}", text);
            prop_assert!(!message.is_empty(), "{text}");
        }
        (claimed, _) => prop_assert!(false, "{claimed:?} event rejected as {error:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_trigger_events_never_panic(event in trigger_like()) {
        check_trigger(&event)?;
    }

    #[test]
    fn mutated_samples_never_panic(
        sample in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let samples = samples();
        let mut event = samples[sample.index(samples.len())].clone();
        for m in &mutations {
            apply(&mut event, m, 0);
        }
        check_trigger(&event)?;
        // The nested JSON texts (SQS bodies, SNS messages) are mutated too.
        if let Some(records) = event.get_mut("Records").and_then(Value::as_array_mut) {
            for record in records {
                if let Some(Value::String(body)) = record.get("body") {
                    let mut nested: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                    for m in &mutations {
                        apply(&mut nested, m, 0);
                    }
                    record["body"] = Value::String(nested.to_string());
                }
            }
        }
        check_trigger(&event)?;
    }
}

#[test]
fn unmodified_samples_parse() {
    for sample in samples() {
        assert!(parse_trigger(sample).is_ok(), "{sample}");
    }
}
