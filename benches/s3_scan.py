#!/usr/bin/env python3
"""`scan s3://` against a local S3 (moto) next to a local scan of the same files.

Starts a private `moto_server` on a free loopback port, uploads a generated corpus
(CloudTrail keys, many small objects as CloudTrail delivers them) into a bucket, then
times, interleaved, `trailwatch scan s3://BUCKET/` and `trailwatch scan FOLDER` of the
very same files, and checks both print the same alerts. Reports objects/s and MB/s
(compressed and decoded) of each.

moto is a Python emulator: it serves an object far slower than S3 does, so the S3
figure is a floor for what the listing and fetching code costs, not a forecast of
S3's throughput. What it does show is that the pipeline, not the emulator, is idle.
"""
import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BUCKET = "trailwatch-bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(moto_server):
    port = free_port()
    proc = subprocess.Popen(
        [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"moto_server exited early ({proc.returncode})")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto_server did not answer within 30 s")


def environment(endpoint):
    env = dict(os.environ)
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    })
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def upload(endpoint, corpus, files):
    import boto3  # moto's own dependency, in the same virtualenv
    from botocore.config import Config

    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(max_pool_connections=32, s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket=BUCKET)

    def put(path):
        s3.put_object(Bucket=BUCKET, Key=str(path.relative_to(corpus)), Body=path.read_bytes())

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(put, files))


def run_scan(binary, target, env):
    """Wall seconds and the alerts (eventIds) a scan prints."""
    started = time.perf_counter()
    proc = subprocess.run(
        [binary, "scan", "--format", "json", "--no-progress", target],
        env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"scan {target} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    alerts = sorted(json.loads(line).get("eventId", "") for line in proc.stdout.splitlines() if line.strip())
    return wall, alerts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--moto", required=True, help="path to moto_server")
    ap.add_argument("--corpus", required=True, help="folder of .json.gz files at CloudTrail keys")
    ap.add_argument("--decoded-bytes", type=int, required=True)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    corpus = Path(args.corpus)
    files = sorted(p for p in corpus.rglob("*.json.gz"))
    compressed = sum(p.stat().st_size for p in files)
    proc, endpoint = start_moto(args.moto)
    try:
        started = time.perf_counter()
        upload(endpoint, corpus, files)
        print(f"uploaded {len(files)} objects ({compressed / 1e6:.1f} MB) to moto in "
              f"{time.perf_counter() - started:.1f}s")
        env = environment(endpoint)
        s3_url = f"s3://{BUCKET}/"
        samples = {"s3": [], "local": []}
        alerts = {}
        for name, target in (("s3", s3_url), ("local", str(corpus))):  # warm-up
            _, alerts[name] = run_scan(args.bin, target, env)
        if alerts["s3"] != alerts["local"]:
            sys.exit(f"scan s3:// and the local scan disagree: {alerts['s3']} vs {alerts['local']}")
        for _ in range(args.runs):
            for name, target in (("s3", s3_url), ("local", str(corpus))):
                samples[name].append(run_scan(args.bin, target, env)[0])
    finally:
        proc.kill()
        proc.wait()

    print(f"same {len(alerts['s3'])} alerts from both; default --jobs (32 for S3, all cores "
          f"for local files); medians of {args.runs}")
    print(f"{'':30}{'objects/s':>12}{'MB/s compressed':>18}{'MB/s decoded':>15}{'seconds':>10}")
    for name, label in (("s3", "scan s3:// (moto on loopback)"), ("local", "scan of the same files")):
        wall = statistics.median(samples[name])
        print(f"{label:30}{len(files) / wall:>12,.0f}{compressed / 1e6 / wall:>18.2f}"
              f"{args.decoded_bytes / 1e6 / wall:>15.1f}{wall:>10.2f}")


if __name__ == "__main__":
    main()
