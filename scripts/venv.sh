#!/usr/bin/env bash
# Create or update the development virtualenv at <repo>/.venv with the Python tools
# of the given sets, each from requirements-<set>.txt:
#
#   test      moto_server, for the emulator tests (`make unit`, `cargo test`)
#   template  cfn-lint and sam, for `make template`
#   lambda    cargo-lambda and zig, for `make build` and `make emulate`
#   checkov   checkov, for `make template`, in a virtualenv of its own at
#             .venv/checkov (its pinned boto3, packaging and networkx would
#             downgrade what moto and sam use); run it as .venv/checkov/bin/checkov
#
# Without arguments every set is installed (requirements-dev.txt). Idempotent: a set
# whose requirements file is unchanged since it was installed is skipped silently,
# so the make targets can call it every time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"

if (($# == 0)); then
    set -- test template lambda checkov
fi

for set in "$@"; do
    req="$root/requirements-$set.txt"
    if [[ ! -f "$req" ]]; then
        echo "venv: unknown set '$set' (no $req)" >&2
        exit 2
    fi
    # The sets that share the main virtualenv, and the one that cannot.
    target="$venv"
    if [[ "$set" == checkov ]]; then
        target="$venv/checkov"
    fi
    sha="$(sha256sum "$req" | cut -c1-16)"
    stamp="$venv/.stamp-$set-$sha"
    if [[ -f "$stamp" && -x "$target/bin/python" ]]; then
        continue
    fi
    for dir in "$venv" "$target"; do
        if [[ ! -x "$dir/bin/python" ]]; then
            echo "venv: creating $dir" >&2
            "$python" -m venv "$dir"
            "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        fi
    done
    echo "venv: installing $(basename "$req") into $target" >&2
    "$target/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    rm -f "$venv/.stamp-$set-"*
    touch "$stamp"
done
