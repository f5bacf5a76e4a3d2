#!/usr/bin/env bash
# The real Lambda binary against a local AWS emulator, end to end:
#
#   moto_server (S3, SNS, SQS, DynamoDB) on a free loopback port
#   + bucket with the sample CloudTrail log file that events/s3-put.json announces
#   + alert topic with an SQS queue subscribed, DynamoDB dedup table (pk, TTL on)
#   + `cargo lambda watch` running the trailwatch binary in Lambda mode
#   -> `cargo lambda invoke --data-file events/s3-put.json`
#   -> the alert, read back from the queue (SNS -> SQS), printed
#   -> a second invocation of the same event: no second alert.
#
# Everything it starts is stopped on exit (also on error or Ctrl-C); logs are kept
# in .emulate/. Works on a fresh machine: the tools come from .venv (scripts/venv.sh lambda).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/venv.sh lambda
export PATH="$root/.venv/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python="$root/.venv/bin/python"
work="$root/.emulate"
mkdir -p "$work"

say() { printf '\n==> %s\n' "$*" >&2; }

groups=()
# True while any process of the group is alive (signal 0 only checks).
alive() { kill -0 -- "-$1" 2>/dev/null; }
stop() {
    local status=$?
    trap - EXIT INT TERM
    # Each background command runs in a process group of its own (cargo lambda
    # watch: cargo and the function too): stop the groups, then check they are gone.
    local group left
    for group in "${groups[@]}"; do
        kill -TERM -- "-$group" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        left=""
        for group in "${groups[@]}"; do
            alive "$group" && left+=" $group"
        done
        [[ -z "$left" ]] && break
        sleep 0.1
    done
    for group in "${groups[@]}"; do
        kill -KILL -- "-$group" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    left=""
    for group in "${groups[@]}"; do
        alive "$group" && left+=" $group"
    done
    if [[ -n "$left" ]]; then
        echo "emulate: process groups still running:$left" >&2
        status=1
    elif ((${#groups[@]})); then
        say "stopped everything it started (process groups ${groups[*]}; none left)"
    fi
    exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start a command in a process group of its own (so that it and its children can
# be stopped together), in the background; its pid is the group id.
start_group() {
    local log="$1"
    shift
    if command -v setsid >/dev/null; then
        setsid "$@" >"$log" 2>&1 </dev/null &
    else
        set -m
        "$@" >"$log" 2>&1 </dev/null &
        set +m
    fi
}

say "building the function (the first build on a machine takes a few minutes)"
cargo build --bin trailwatch

port="$(free_port)"
endpoint="http://127.0.0.1:$port"
say "starting moto_server on $endpoint"
start_group "$work/moto.log" "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port"
groups+=($!)
"$python" - "$endpoint" <<'EOF'
import sys, time, urllib.request
deadline = time.time() + 60
while True:
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=2)
        break
    except Exception:
        if time.time() > deadline:
            sys.exit("moto_server did not answer within 60 s (see .emulate/moto.log)")
        time.sleep(0.2)
EOF

export AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

say "creating the bucket, topic, subscribed queue and dedup table; uploading the sample log"
eval "$("$python" - <<'EOF'
import json, shlex
import boto3

event = json.load(open("events/s3-put.json"))
s3_info = event["Records"][0]["s3"]
bucket, key = s3_info["bucket"]["name"], s3_info["object"]["key"]
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
s3.upload_file(f"events/objects/{bucket}/{key}", bucket, key)

topic = boto3.client("sns").create_topic(Name="trailwatch-alerts")["TopicArn"]
sqs = boto3.client("sqs")
queue = sqs.create_queue(QueueName="trailwatch-alerts-subscriber")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

ddb = boto3.client("dynamodb")
table = "trailwatch-dedup"
ddb.create_table(
    TableName=table,
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST",
)
ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})

for name, value in {"topic_arn": topic, "queue_url": queue, "table": table,
                    "object": f"s3://{bucket}/{key}"}.items():
    print(f"{name}={shlex.quote(value)}")
EOF
)"
echo "  object $object" >&2
echo "  topic  $topic_arn -> queue $queue_url" >&2
echo "  table  $table" >&2

invoke_port="$(free_port)"
say "starting the function: cargo lambda watch --bin trailwatch"
start_group "$work/watch.log" cargo lambda watch --bin trailwatch --ignore-changes \
    --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
    --env-var "TRAILWATCH_TOPIC_ARN=$topic_arn" \
    --env-var "TRAILWATCH_DEDUP_TABLE=$table" \
    --env-var "AWS_ENDPOINT_URL=$endpoint" \
    --env-var "AWS_REGION=us-east-1" \
    --env-var "AWS_ACCESS_KEY_ID=testing" \
    --env-var "AWS_SECRET_ACCESS_KEY=testing" \
    --env-var "AWS_EC2_METADATA_DISABLED=true" \
    --env-var "RUST_LOG=info"
groups+=($!)
watch_pid=$!

invoke() {
    cargo lambda invoke trailwatch --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
        --data-file events/s3-put.json --output-format json
}

# The emulator answers as soon as it listens; the function itself is built and
# booted on the first invocation. Retry while the server is not up yet.
first=""
for _ in $(seq 600); do
    if ! kill -0 "$watch_pid" 2>/dev/null; then
        echo "emulate: cargo lambda watch stopped; its log:" >&2
        tail -n 40 "$work/watch.log" >&2
        exit 1
    fi
    if first="$(invoke 2>"$work/invoke.err")"; then
        break
    fi
    first=""
    sleep 1
done
if [[ -z "$first" ]]; then
    echo "emulate: the function did not answer; see .emulate/watch.log" >&2
    cat "$work/invoke.err" >&2
    exit 1
fi
say "invocation 1 (events/s3-put.json) returned: $first"

receive() {
    "$python" - "$queue_url" "$1" <<'EOF'
import json, sys, time
import boto3

queue, wait = sys.argv[1], int(sys.argv[2])
sqs = boto3.client("sqs")
deadline = time.time() + wait
messages = []
# Poll until the deadline, or until a poll comes back empty after some arrived.
while time.time() < deadline:
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for m in got:
        messages.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    if messages and not got:
        break
for envelope in messages:
    print("---- SNS -> SQS message ----")
    print("Subject:", envelope.get("Subject"))
    print("MessageAttributes:", json.dumps({k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()}))
    print(json.dumps(json.loads(envelope["Message"]), indent=2))
print(f"{len(messages)} message(s)", file=sys.stderr)
EOF
}

say "alerts received from the SQS queue subscribed to the topic"
alert="$(receive 10 2>"$work/receive.err")"
cat "$work/receive.err" >&2
printf '%s\n' "$alert"
if ! grep -q '"eventName": "StartExportTask"' <<<"$alert"; then
    echo "emulate: no alert for StartExportTask arrived" >&2
    exit 1
fi
if ! grep -q '^1 message' "$work/receive.err"; then
    echo "emulate: expected exactly one alert" >&2
    exit 1
fi

say "invocation 2: the same event again (a Lambda retry, or S3 delivering twice)"
second="$(invoke)"
echo "returned: $second" >&2
again="$(receive 5 2>"$work/receive.err")"
if [[ -n "$again" ]]; then
    printf '%s\n' "$again"
    echo "emulate: a second alert arrived for the same window" >&2
    exit 1
fi
say "no second alert within 5 s: the window is held in DynamoDB table $table"
