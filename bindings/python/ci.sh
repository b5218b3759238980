#!/usr/bin/env bash
# CI of the Python binding, on a fresh machine that has Rust and python3 with
# pip: makes a venv, installs the build and test tools from PyPI, builds the
# abi3 wheel, installs it, runs pytest and the pre-fork demo, and checks that
# the binding crate is formatted and clippy-clean. Exits non-zero on failure.
#
#   bash bindings/python/ci.sh            (from anywhere)
#   BENCH=1 bash bindings/python/ci.sh    (also runs the bench, ~40 s)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# The binding's own target directory (gitignored), so that it never waits on
# the root crate's cargo lock.
export CARGO_TARGET_DIR="$here/target"
python="${PYTHON:-python3}"
venv="$here/.venv"

step() { printf '\n== %s\n' "$*"; }

step "venv and tools"
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "maturin>=1.5,<2" pytest portalocker filelock mypy

step "cargo fmt and clippy (binding crate)"
cargo fmt --check
cargo clippy --release --quiet -- -D warnings

step "build and install the wheel"
rm -rf "$here/target/wheels"
"$venv/bin/maturin" build --release --quiet --out "$here/target/wheels"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$here"/target/wheels/elect-*.whl

step "mypy --strict of the installed package (its stubs included)"
(cd /tmp && "$venv/bin/python" -m mypy --strict --no-incremental -p elect)

step "pytest"
# Run from tests/ against the installed wheel, not the source tree.
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests

step "pre-fork demo"
timeout 120 "$venv/bin/python" examples/prefork.py --seconds 1.5

if [[ "${BENCH:-0}" == 1 ]]; then
    step "bench"
    "$venv/bin/python" bench/handoff.py
fi

step "python binding: all passed"
