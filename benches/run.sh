#!/usr/bin/env bash
# `make bench`: generate (or reuse) the corpus, build the release binaries if
# needed, and print every figure of the performance targets in one run.
#
# Corpus (cached in .bench/, one folder per set of generator arguments):
#   large: one file of ~300 MB decompressed; small: 300 files, ~450 MB in all;
#   huge: one file over 1 GiB decompressed, for peak memory. Realistic export rate.
#   s3: 2,000 small objects, uploaded to a local S3 (moto) for `scan s3://`.
# Environment: BENCH_CPU (core to pin to, default 0), BENCH_RUNS (default 7),
# BENCH_PYTHON_RUNS (default 3), BENCH_S3_RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
# The project's seeded corpus generator (examples/gen_corpus.rs).
GEN="$TARGET/release/examples/gen_corpus"
LARGE_ARGS="--events 200000 --files 1 --seed 1 --export-rate 1e-4"
SMALL_ARGS="--events 300000 --files 300 --seed 2 --export-rate 1e-4"
HUGE_ARGS="--events 1000000 --files 1 --seed 3 --export-rate 1e-4"
# For `scan s3://`: 2,000 small objects, as CloudTrail delivers them.
S3_ARGS="--events 100000 --files 2000 --seed 4 --export-rate 1e-3"

# Generates the corpus for these generator arguments once; prints its folder.
corpus() {
    local dir=".bench/gen-corpus-$(echo "$*" | sed 's/--//g; s/ /_/g')"
    if [ ! -f "$dir/.done" ]; then
        echo "generating $dir ..." >&2
        rm -rf "$dir.tmp"
        "$GEN" "$@" --out "$dir.tmp" >/dev/null
        touch "$dir.tmp/.done"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

echo "building release binaries (no-op when up to date) ..." >&2
cargo build --release --quiet --bin trailwatch
# The examples in a build of their own: built together, the dev-dependencies'
# features would be unified into the binary too (0.5 MB more), and the size
# reported must be that of the binary that ships.
cargo build --release --quiet --example decode_only --example gen_corpus

mkdir -p .bench
large=$(corpus $LARGE_ARGS)
small=$(corpus $SMALL_ARGS)
huge=$(corpus $HUGE_ARGS)
tiny=.bench/tiny.json.gz
if [ ! -f "$tiny" ]; then
    printf '{"Records":[{"eventVersion":"1.09","eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"2024-03-15T10:00:00Z","eventID":"e1","awsRegion":"us-east-1","recipientAccountId":"111122223333"}]}' \
        | gzip -9 >"$tiny"
fi

python3 benches/bench.py \
    --bin "$TARGET/release/trailwatch" \
    --decode "$TARGET/release/examples/decode_only" \
    --large "$large" --small "$small" --huge "$huge" --tiny "$tiny" \
    --cpu "${BENCH_CPU:-0}" --runs "${BENCH_RUNS:-7}" --python-runs "${BENCH_PYTHON_RUNS:-3}"

# `scan s3://` against moto (started and stopped by the script) next to a local
# scan of the same objects.
scripts/venv.sh test
s3=$(corpus $S3_ARGS)
s3_decoded=$("$TARGET/release/examples/decode_only" $(find "$s3" -name '*.json.gz' | sort) | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
echo
.venv/bin/python benches/s3_scan.py \
    --bin "$TARGET/release/trailwatch" --moto .venv/bin/moto_server \
    --corpus "$s3" --decoded-bytes "$s3_decoded" --runs "${BENCH_S3_RUNS:-3}"
