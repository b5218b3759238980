#!/usr/bin/env bash
# Reproduce every figure of BENCHMARKS.md and rewrite it, with the plot
# benches/handoff.svg (issues 5 and 18).
#
#   bash benches/reproduce.sh
#
# Run by hand on a Debian machine with Rust; it is NOT part of CI: it takes
# 15 to 30 minutes on 2 CPUs (builds included: the release build, a static
# one, the etcd bench's and the two bindings) and its numbers depend on what else the machine
# does. For fair figures run it on a quiet machine; say otherwise in
# ELECT_BENCH_NOTE, which BENCHMARKS.md prints in bold under "Machine".
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: target/); the binaries
#                     measured are taken from there
#   ELECT_BENCH_RUN   directory for the raw outputs (default: a new temp dir);
#                     kept, so the report can be re-made from it with
#                     `python3 benches/report.py "$ELECT_BENCH_RUN"`
#   ELECT_BENCH_NOTE  a sentence about the conditions of this run
#   ELECT_BENCH_SKIP_INSTALL=1  skip apt-get / pip (tools already there)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=${CARGO_TARGET_DIR:-target}
RUN=${ELECT_BENCH_RUN:-$(mktemp -d /tmp/elect-bench.XXXXXX)}
mkdir -p "$RUN"
echo "raw outputs go to $RUN"

# ---- what the comparison needs: hyperfine, GNU parallel (sem), util-linux
# (flock(1)) from Debian; portalocker and filelock from PyPI into a venv of
# our own, since Debian's Python refuses system-wide pip installs (PEP 668).
if [ "${ELECT_BENCH_SKIP_INSTALL:-}" != 1 ]; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update
    $SUDO apt-get install -y hyperfine parallel util-linux python3 python3-venv \
        etcd-server protobuf-compiler
fi
VENV=$TARGET/bench-venv
[ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
if [ "${ELECT_BENCH_SKIP_INSTALL:-}" != 1 ]; then
    "$VENV/bin/python3" -m pip install --quiet --upgrade portalocker filelock
fi
PY="$VENV/bin/python3"

# ---- build everything first, so no compiler runs while we measure.
cargo build --release --features cli
cargo bench --no-run --features cli --bench multiproc --bench obtain
# The etcd bench in a target directory of its own: built into target/, it
# would replace $TARGET/release/elect with a build that has the etcd feature
# (tokio and tonic linked in, twice the size, slower to start), and the CLI
# rows below would measure that instead of the default build.
ETCD_TARGET=$TARGET/etcd-bench
CARGO_TARGET_DIR=$ETCD_TARGET cargo bench --no-run --features cli,etcd --bench etcd
# The Node.js and Python bindings (issue 20), built (and tested) as CI does:
# npm ci builds bindings/node/elect.node, and bindings/python/ci.sh the venv
# with the wheel, portalocker and filelock.
bash bindings/node/ci.sh > "$RUN/node-ci.txt" 2>&1
bash bindings/python/ci.sh > "$RUN/python-ci.txt" 2>&1
# The same elect linked statically, measured beside the usual build in the
# CLI sections: a call of `elect run` is mostly process start-up, and this
# shows how much of it is dynamic loading. --target keeps RUSTFLAGS away
# from build scripts and proc macros, which cannot be linked statically.
HOST=$(rustc -vV | sed -n 's/^host: //p')
STATIC=()
if RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --features cli --bin elect --target "$HOST"; then
    STATIC=(--elect-static "$TARGET/$HOST/release/elect")
else
    echo "no statically linked build on this machine; its rows are left out" >&2
fi

machine() {  # $1: key for the load average
    "$PY" - "$RUN/machine.json" "$1" <<'EOF'
import json, os, subprocess, sys, datetime
path, key = sys.argv[1], sys.argv[2]
m = json.load(open(path)) if os.path.exists(path) else {}
if key == "load_before":
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    v = lambda *c: subprocess.run(c, capture_output=True, text=True).stdout.splitlines()[0].strip()
    m.update(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        kernel=v("uname", "-r"), nproc=v("nproc"), cpu=cpu,
        tools=", ".join([v("rustc", "--version"), v("hyperfine", "--version"),
                         "GNU parallel " + v("parallel", "--version").split()[-1],
                         v("flock", "--version"), "Python " + sys.version.split()[0],
                         "portalocker " + __import__("portalocker").__version__,
                         "filelock " + __import__("filelock").__version__]),
        note=os.environ.get("ELECT_BENCH_NOTE", ""),
        commit=v("git", "describe", "--always", "--dirty"),
    )
m[key] = " ".join(open("/proc/loadavg").read().split()[:3])
json.dump(m, open(path, "w"), indent=1)
EOF
}
machine load_before

# ---- the in-repo benchmarks (full mode), keeping every hand-off sample.
rm -rf "$RUN/samples"
# stderr is kept too: a worker process that panics does not stop the harness,
# and report.py must say so next to the figure it spoils.
ELECT_BENCH_SAMPLES="$RUN/samples" cargo bench --features cli --bench multiproc \
    2> >(tee "$RUN/multiproc.err" >&2) | tee "$RUN/multiproc.txt"
cargo bench --features cli --bench obtain 2> >(tee "$RUN/obtain.err" >&2) | tee "$RUN/obtain.txt"

# ---- the alternatives, side by side with their own anchors.
"$PY" benches/alternatives.py "$RUN" --elect "$TARGET/release/elect" "${STATIC[@]}" | tee "$RUN/alternatives.txt"

# ---- elections on etcd (issue 6): starts its own etcd servers and measures
# the local store again beside them, so its section stands on its own.
ELECT_BENCH_OUT="$RUN/etcd.md" CARGO_TARGET_DIR=$ETCD_TARGET cargo bench --features cli,etcd --bench etcd -- quick \
    2> >(tee "$RUN/etcd.err" >&2) | tee "$RUN/etcd.txt"

# ---- the bindings against the lock-file packages their users pick today.
(cd bindings/node && npm run --silent bench) 2>&1 | tee "$RUN/node.txt"
bindings/python/.venv/bin/python bindings/python/bench/handoff.py 2>&1 | tee "$RUN/python.txt"

machine load_after
"$PY" benches/report.py "$RUN" --out BENCHMARKS.md --svg benches/handoff.svg
{
    echo
    echo "## Node.js and Python bindings (issue 20)"
    echo
    echo "Hand-off (the holder releases → a waiting process holds) and fail-over"
    echo "(the holder is SIGKILLed → a waiting process holds), medians across"
    echo "real processes, each binding side by side with the lock-file packages"
    echo "its users pick today, in one run: \`npm run bench\` in bindings/node"
    echo "(against proper-lockfile, which polls; set to its fastest: every 10 ms,"
    echo "stale after 2 s) and \`python bench/handoff.py\` in bindings/python"
    echo "(against portalocker and filelock, which poll every 0.25 s and 50 ms)."
    echo "A binding's hand-off adds to the library's the delivery of the result"
    echo "to the language's thread or event loop."
    echo
    echo '```'
    cat "$RUN/node.txt"
    echo '```'
    echo
    echo '```'
    cat "$RUN/python.txt"
    echo '```'
    echo
    cat "$RUN/etcd.md"
} >> BENCHMARKS.md
echo "wrote BENCHMARKS.md and benches/handoff.svg (raw outputs in $RUN)"
