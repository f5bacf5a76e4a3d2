#!/usr/bin/env bash
# `make test-arm64`: the deployed artifact is arm64, so build the library for
# aarch64 and run the decoder's tests (the NEON mask kernel among them) under
# qemu-user, then a small benchmark: every decoder of `decode_only` and the record
# scanner over a generated corpus, under emulation, each required to report the
# same decoded bytes and candidates as the same run on this machine. Installs what
# it needs: the Rust target, Debian's cross linker and qemu-user. Timings under
# emulation say nothing about Graviton speed; they are printed to show the path ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
cargo test --lib --target "$target" decode

# The small benchmark (debug builds, as the tests are: correctness first).
cargo build --quiet --target "$target" --example decode_only --example gen_corpus
cargo build --quiet --example decode_only
emulated="qemu-aarch64 -L /usr/aarch64-linux-gnu ${CARGO_TARGET_DIR:-target}/$target/debug/examples"
native="${CARGO_TARGET_DIR:-target}/debug/examples"
corpus=.bench/arm64-corpus
if [ ! -f "$corpus/.done" ]; then
    rm -rf "$corpus"
    mkdir -p "$corpus"
    $emulated/gen_corpus --events 10000 --files 6 --seed 5 --export-rate 2e-3 --out "$corpus" >/dev/null
    touch "$corpus/.done"
fi
files=$(find "$corpus" -name '*.json.gz' | sort)
echo "arm64 under qemu-user (emulated: not Graviton speed), $(echo "$files" | wc -l) files:"
# Everything but the timing must agree: bytes decoded, candidates found.
strip() { sed -E 's/ elapsed=[^ ]+ throughput=[^ ]+//'; }
status=0
for mode in --zlib-rs --stream --libdeflate --scan; do
    # shellcheck disable=SC2086
    got=$($emulated/decode_only $mode $files)
    # shellcheck disable=SC2086
    want=$("$native/decode_only" $mode $files)
    if [ "$(echo "$got" | strip)" = "$(echo "$want" | strip)" ]; then
        printf '  %-13s %s\n' "$mode" "$got"
    else
        printf '  %-13s MISMATCH: arm64 %s, native %s\n' "$mode" "$got" "$want"
        status=1
    fi
done
exit $status
