#!/usr/bin/env bash
# Create or update the development virtualenv at <repo>/.venv from
# requirements-dev.txt. Idempotent: prints nothing when already up to date.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/requirements-dev.txt"
python="${PYTHON:-python3}"

sha="$(sha256sum "$req" | cut -c1-16)"
stamp="$venv/.stamp-$sha"

if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "venv: creating $venv" >&2
    "$python" -m venv "$venv"
fi

echo "venv: installing $(basename "$req")" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"

rm -f "$venv"/.stamp-*
touch "$stamp"
