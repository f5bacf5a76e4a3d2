#!/usr/bin/env bash
# `make template`: cfn-lint, `sam validate --lint` and checkov on template.yaml, on
# deploy/*.yaml, and on copies whose parameter defaults deploy everything the defaults leave out
# (template.yaml: IngestMode=sqs, UseEventBridge=true, Batch Operations on, ResponseMode=cancel;
# deploy/member.yaml: the member role, with the cancel permission).
#
# cfn-lint and sam follow every condition, but checkov evaluates the conditions
# with the parameters' defaults and skips the resources they turn off: without the
# second copy, the ingest queues, the EventBridge rule and the backfill function
# would never be checked. Every checkov finding must be fixed or skipped in the
# resource's Metadata with a reason.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SAM_CLI_TELEMETRY=0
checkov="$root/.venv/checkov/bin/checkov"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
all="$work/template-all-resources.yaml"
member_all="$work/member-all-resources.yaml"
# Each default below must be found exactly once, or the copy is not what it claims.
"$root/.venv/bin/python" - template.yaml "$all" deploy/member.yaml "$member_all" <<'EOF'
import sys

def deploy_all(source, target, changes):
    text = open(source).read()
    for old, new in changes:
        if text.count(old) != 1:
            sys.exit(f"lint-template: the default to change is not in {source} exactly once:\n{old}")
        text = text.replace(old, new)
    open(target, "w").write(text)

deploy_all(sys.argv[1], sys.argv[2], [
    ("  IngestMode:\n    Type: String\n    Default: direct\n",
     "  IngestMode:\n    Type: String\n    Default: sqs\n"),
    ("  UseEventBridge:\n    Type: String\n    Default: \"false\"\n",
     "  UseEventBridge:\n    Type: String\n    Default: \"true\"\n"),
    ("  EnableBatchOperations:\n    Type: String\n    Default: \"false\"\n",
     "  EnableBatchOperations:\n    Type: String\n    Default: \"true\"\n"),
    ("  BackfillBucketName:\n    Type: String\n    Default: \"\"\n",
     "  BackfillBucketName:\n    Type: String\n    Default: \"trailwatch-backfill\"\n"),
    ("  ResponseMode:\n    Type: String\n    Default: report\n",
     "  ResponseMode:\n    Type: String\n    Default: cancel\n"),
    ("  TrustedAccounts:\n    Type: String\n    Default: \"\"\n",
     "  TrustedAccounts:\n    Type: String\n    Default: \"111122223333\"\n"),
])
deploy_all(sys.argv[3], sys.argv[4], [
    ("  TrailwatchRoleArn:\n    Type: String\n    Default: \"\"\n",
     "  TrailwatchRoleArn:\n    Type: String\n    Default: \"arn:aws:iam::123456789012:role/trailwatch-live\"\n"),
    ("  ResponseMode:\n    Type: String\n    Default: report\n",
     "  ResponseMode:\n    Type: String\n    Default: cancel\n"),
    ("  TrustedAccountIds:\n    Type: String\n    Default: \"\"\n",
     "  TrustedAccountIds:\n    Type: String\n    Default: \"111122223333\"\n"),
])
EOF

for template in template.yaml "$all" deploy/*.yaml "$member_all"; do
    echo "== $(basename "$template")" >&2
    cfn-lint "$template"
    sam validate --lint --region us-east-1 -t "$template"
    # --skip-download: no call to Prisma Cloud for its guidelines (CI may be offline).
    "$checkov" -f "$template" --framework cloudformation --quiet --compact --skip-download
done
