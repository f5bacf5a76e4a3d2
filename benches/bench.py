#!/usr/bin/env python3
"""Measures `trailwatch scan` against decompression alone and a Python baseline.

Decode-only columns, all in-process (`examples/decode_only.rs`), same files, same run:
zlib-rs through flate2's `MultiGzDecoder` (the reference), our gzip framing over
zlib-rs streamed, libdeflate decoding each whole file into one reused buffer, and
what the scan itself decodes with (libdeflate for small objects, streaming above
the cut-off). The scan/decode time ratios are per-pair medians against the first
and against libdeflate.

The floor: the scan's decoder plus the rules' needle search (`decode_only --search`)
is what any exact scan must spend at least, since it has to decode every byte and
look for the needles. What is left of a target after the floor is the time the
rest of the scan (the structure of the JSON, the candidates, the CLI) may take; the
bench prints it as the speed that part would need, next to the speed it has.

Called by `benches/run.sh` (which generates the corpus and builds the binaries):

    bench.py --bin target/release/trailwatch --decode target/release/examples/decode_only \
             --large DIR --small DIR --huge DIR --tiny FILE [--runs N] [--cpu C]

Every command runs pinned to one core (`taskset -c C`) and warm (each command runs
once first, so the page cache serves the files). `trailwatch scan` and the
decode-only run alternate, so that a noisy neighbour hurts both alike; their time
ratio is the median of the per-pair ratios, on wall time and on CPU time (user +
system of the process, which time spent waiting for the core does not inflate).
Throughput is decompressed bytes over the median wall time. Peak RSS comes from
`/usr/bin/time -f %M`, which reports the process itself (a process forked from this
Python would inherit its high-water mark).
"""
import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def files_of(directory):
    return sorted(str(p) for p in Path(directory).rglob("*.json.gz"))


def run_once(cmd):
    """Wall seconds, CPU seconds, stdout+stderr text."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed ({status}): {' '.join(cmd[:6])} ...\n{out.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, out.decode(errors="replace")


def measure(commands, runs):
    """Runs each named command `runs` times, interleaved; returns name -> samples."""
    samples = {name: [] for name in commands}
    for name, cmd in commands.items():  # warm-up: page cache, binary pages
        run_once(cmd)
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(run_once(cmd))
    return samples


def median_wall(samples):
    return statistics.median(s[0] for s in samples)


def median_cpu(samples):
    return statistics.median(s[1] for s in samples)


def peak_rss_mib(cmd, runs=2):
    with tempfile.NamedTemporaryFile("r") as out:
        peaks = []
        for _ in range(runs):
            subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", out.name] + cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            out.seek(0)
            peaks.append(int(out.read().split()[-1]) / 1024)
    return max(peaks)


def decoded_bytes(decode_bin, files):
    _, _, out = run_once([decode_bin] + files)
    return int(re.search(r"bytes=(\d+)", out).group(1))


def cpu_model():
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", text).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model = platform.processor() or "unknown"
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--decode", required=True)
    ap.add_argument("--large", required=True)
    ap.add_argument("--small", required=True)
    ap.add_argument("--huge", required=True)
    ap.add_argument("--tiny", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--python-runs", type=int, default=3)
    ap.add_argument("--cpu", default="0")
    args = ap.parse_args()

    pin = ["taskset", "-c", args.cpu]
    scan = pin + [args.bin, "scan", "--format", "json", "--jobs", "1", "--no-progress"]
    decode = pin + [args.decode]
    # name -> decode_only option; "decode" (the reference) is zlib-rs MultiGzDecoder.
    decoders = {"decode": "--zlib-rs", "stream": "--stream", "libdeflate-mem": "--libdeflate",
                "scan-decoder": None, "floor": "--search",
                # Integrity: the record scanner alone, and with SHA-256 of every decoded byte.
                "scanner": "--scan", "scanner-hashed": "--scan-hashed"}
    corpora = {
        "large": files_of(args.large),
        "small": files_of(args.small),
    }
    libdeflate = shutil.which("libdeflate-gunzip")

    print(f"machine: {cpu_model()}")
    print(f"single core (taskset -c {args.cpu}); scan and decode: medians of {args.runs} "
          f"alternating runs; gzip, libdeflate: {max(3, args.runs // 2)}; Python: {args.python_runs}")
    rows = {}
    huge = files_of(args.huge)
    for name, files in list(corpora.items()) + [("huge", huge)]:
        size = decoded_bytes(args.decode, files)
        runs = args.runs if name != "huge" else max(3, args.runs // 2)
        commands = {"scan": scan + files}
        for key, option in decoders.items():
            commands[key] = decode + ([option] if option else []) + files
        samples = measure(commands, runs)
        if name != "huge":
            others = {"gzip": pin + ["sh", "-c", 'gzip -dc "$@" >/dev/null', "gzip"] + files}
            if libdeflate:
                others["libdeflate"] = pin + ["sh", "-c", 'libdeflate-gunzip -c "$@" >/dev/null', "libdeflate"] + files
            samples.update(measure(others, max(3, args.runs // 2)))
            python = pin + [sys.executable, str(Path(__file__).with_name("python_baseline.py"))] + files
            samples.update(measure({"python": python}, args.python_runs))
        rows[name] = (len(files), size, samples)

    def mbps(size, samples):
        return size / 1e6 / median_wall(samples)

    def pair_ratio(samples, field, against="decode", of="scan"):
        return statistics.median(s[field] / d[field] for s, d in zip(samples[of], samples[against]))

    def cell(name, fn):
        size, samples = rows[name][1], rows[name][2]
        try:
            return fn(size, samples)
        except KeyError:
            return "-"

    print()
    print(f"{'':44}" + "".join(f"{f'{n} ({rows[n][0]} file' + ('s)' if rows[n][0] > 1 else ')'):>20}" for n in rows))

    def line(label, fn):
        print(f"{label:44}" + "".join(f"{cell(n, fn):>20}" for n in rows))

    line("decompressed MB", lambda size, s: f"{size / 1e6:.1f}")
    line("trailwatch scan MB/s", lambda size, s: f"{mbps(size, s['scan']):.0f}")
    line("decode only, zlib-rs MultiGzDecoder MB/s", lambda size, s: f"{mbps(size, s['decode']):.0f}")
    line("decode only, our framing/zlib-rs MB/s", lambda size, s: f"{mbps(size, s['stream']):.0f}")
    line("decode only, libdeflate whole MB/s", lambda size, s: f"{mbps(size, s['libdeflate-mem']):.0f}")
    line("decode only, scan's decoder MB/s", lambda size, s: f"{mbps(size, s['scan-decoder']):.0f}")
    line("scan/zlib-rs decode time, wall", lambda size, s: f"{pair_ratio(s, 0):.3f}")
    line("scan/zlib-rs decode time, CPU", lambda size, s: f"{pair_ratio(s, 1):.3f}")
    line("scan/libdeflate decode time, wall", lambda size, s: f"{pair_ratio(s, 0, 'libdeflate-mem'):.3f}")
    line("scan/libdeflate decode time, CPU", lambda size, s: f"{pair_ratio(s, 1, 'libdeflate-mem'):.3f}")
    line("floor (scan's decoder + needle search) MB/s", lambda size, s: f"{mbps(size, s['floor']):.0f}")
    line("floor/zlib-rs decode time, wall", lambda size, s: f"{pair_ratio(s, 0, of='floor'):.3f}")
    line("floor/libdeflate decode time, wall", lambda size, s: f"{pair_ratio(s, 0, 'libdeflate-mem', 'floor'):.3f}")

    # Integrity: what hashing every decoded byte (SHA-256, hardware) adds to the scan.
    line("record scanner MB/s", lambda size, s: f"{mbps(size, s['scanner']):.0f}")
    line("record scanner + SHA-256 (integrity) MB/s", lambda size, s: f"{mbps(size, s['scanner-hashed']):.0f}")
    line("  hashed/plain time, wall", lambda size, s: f"{pair_ratio(s, 0, 'scanner', 'scanner-hashed'):.3f}")

    def rest_speed(size, samples, budget):
        """GB/s the scan beyond the floor runs at (or would need, for a budget)."""
        left = budget - median_wall(samples["floor"])
        return f"{size / 1e9 / left:.0f}" if left > 0 else "none left"

    line("rest of the scan, GB/s: measured", lambda size, s: rest_speed(size, s, median_wall(s["scan"])))
    line("  needed for 1.0x zlib-rs", lambda size, s: rest_speed(size, s, median_wall(s["decode"])))
    line("  needed for 1.15x libdeflate", lambda size, s: rest_speed(size, s, 1.15 * median_wall(s["libdeflate-mem"])))
    line("gzip -dc MB/s", lambda size, s: f"{mbps(size, s['gzip']):.0f}")
    if libdeflate:
        line("libdeflate-gunzip MB/s", lambda size, s: f"{mbps(size, s['libdeflate']):.0f}")
        line("scan throughput / libdeflate-gunzip", lambda size, s: f"{mbps(size, s['scan']) / mbps(size, s['libdeflate']):.2f}")
    else:
        print("libdeflate-gunzip: not installed (apt-get install libdeflate-tools)")
    line("Python json.loads + rule MB/s", lambda size, s: f"{mbps(size, s['python']):.0f}")
    line("speed-up over Python", lambda size, s: f"{median_wall(s['python']) / median_wall(s['scan']):.0f}x")

    two_core_figures(args, corpora["large"], rows["large"][1])

    print()
    print(f"peak RSS, scan of the large file ({rows['large'][1] / 1e6:.0f} MB): "
          f"{peak_rss_mib(scan + corpora['large']):.1f} MiB")
    print(f"peak RSS, scan of the huge file ({rows['huge'][1] / 2**30:.2f} GiB decompressed): "
          f"{peak_rss_mib(scan + huge):.1f} MiB (decode only: {peak_rss_mib(decode + huge, runs=1):.1f} MiB)")
    startup = measure({"tiny": scan + [args.tiny]}, 30)["tiny"]
    print(f"start-up (scan of a one-record file to its alert, median of 30): "
          f"{median_wall(startup) * 1000:.1f} ms wall, {median_cpu(startup) * 1000:.1f} ms CPU")
    size = os.path.getsize(args.bin)
    print(f"release binary (stripped): {size / 2**20:.1f} MiB ({size} bytes)")


def two_core_figures(args, files, size):
    """The large file on two cores: the scan decodes a streamed object on a second
    thread when a core is free; shown beside the same scan with that thread off and
    the zlib-rs decode, wall and CPU, so both the gain and its cost are visible."""
    if len(os.sched_getaffinity(0)) < 2:
        print("\ntwo cores: not available to this process (affinity), skipped")
        return
    two = ["taskset", "-c", "0,1"]
    scan = [args.bin, "scan", "--format", "json", "--jobs", "1", "--no-progress"]
    samples = measure({
        "thread": two + scan + files,
        "no-thread": two + ["env", "TRAILWATCH_DECODE_THREAD=off"] + scan + files,
        "decode": two + [args.decode, "--zlib-rs"] + files,
    }, args.runs)
    print(f"\ntwo cores (taskset -c 0,1), large file, medians of {args.runs} alternating runs:")
    print(f"{'':44}{'wall s':>10}{'CPU s':>10}{'MB/s':>8}{'/decode wall':>14}{'/decode CPU':>13}")
    for name, label in (("thread", "scan, decoding thread on"),
                        ("no-thread", "scan, TRAILWATCH_DECODE_THREAD=off"),
                        ("decode", "decode only, zlib-rs MultiGzDecoder")):
        ratio = [statistics.median(s[f] / d[f] for s, d in zip(samples[name], samples["decode"]))
                 for f in (0, 1)]
        print(f"{label:44}{median_wall(samples[name]):>10.3f}{median_cpu(samples[name]):>10.3f}"
              f"{size / 1e6 / median_wall(samples[name]):>8.0f}{ratio[0]:>14.3f}{ratio[1]:>13.3f}")


if __name__ == "__main__":
    main()
