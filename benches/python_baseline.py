#!/usr/bin/env python3
"""The rule in plain Python, as a baseline for `trailwatch scan`.

For each file in turn (streaming per file, as a Lambda would handle one object):
gunzip it, `json.loads` the whole document, and test every record of `Records`
against the rule (eventSource == rds.amazonaws.com, eventName == StartExportTask,
errorCode absent or null). Prints the counts and MB/s of decompressed JSON.

Usage: python_baseline.py FILE...
"""
import gzip
import json
import sys
import time


def matches(record):
    return (
        isinstance(record, dict)
        and record.get("eventSource") == "rds.amazonaws.com"
        and record.get("eventName") == "StartExportTask"
        and record.get("errorCode") is None
    )


def main(paths):
    started = time.perf_counter()
    decoded = records = hits = 0
    for path in paths:
        with open(path, "rb") as f:
            raw = f.read()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        decoded += len(data)
        doc = json.loads(data)
        batch = doc.get("Records") if isinstance(doc, dict) else None
        if isinstance(batch, list):
            records += len(batch)
            hits += sum(1 for record in batch if matches(record))
    elapsed = time.perf_counter() - started
    print(
        f"files={len(paths)} bytes={decoded} records={records} matches={hits} "
        f"elapsed={elapsed:.3f}s throughput={decoded / 1e6 / elapsed:.1f}MB/s"
    )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
