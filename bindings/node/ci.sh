#!/usr/bin/env bash
# CI of the Node binding (elect-node): lints of its crate, install and build
# (npm ci runs the install script, which builds elect.node with cargo), the
# type check of index.d.ts, the tests, and the demo. Needs Rust, node and
# npm; installs the rest from the committed package-lock.json. Exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never

for tool in cargo node npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "ci.sh: $tool is needed" >&2; exit 1; }
done
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== node $(node --version), npm $(npm --version), $(cargo --version)"
echo "== cargo fmt --check, cargo clippy (the binding's crate)"
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
echo "== npm ci (builds elect.node)"
npm ci --no-audit --no-fund
echo "== npm run typecheck (index.d.ts)"
npm run --silent typecheck
echo "== npm test"
timeout 300 npm test
echo "== npm run demo"
# In a run directory of its own, not the user's (where a live
# demo-student.echo may be).
demo_dir=$(mktemp -d)
ELECT_DIR=$demo_dir timeout 60 npm run --silent demo
rm -rf "$demo_dir"
echo "== elect-node: all passed"
