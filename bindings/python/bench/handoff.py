"""Hand-off and fail-over between two processes: elect vs portalocker vs filelock.

  hand-off:  the holder releases -> the waiting process has the lock
  fail-over: the holder is killed with SIGKILL -> the waiting process has it

Each round forks a holder and a waiter (a process of their own each, as
pre-fork workers are), lets the waiter start its blocking acquire, then
releases or kills the holder and measures, on the monotonic clock that all
processes share, until the waiter's acquire returns. Every library is used
as its documentation shows, with its default poll interval (portalocker
retries every 0.25 s, filelock every 0.05 s; elect sleeps in poll(2) on
inotify and takes the slot when the kernel frees it).

    python bench/handoff.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time

import elect

DEADLINE = 30.0


def acquirer(kind: str, where: str):
    """A function that blocks until the lock is held and returns a function
    that releases it, for each library, made in the process that uses it."""
    if kind == "elect":
        election = elect.Election("bench", dir=where)

        def acquire():
            return election.obtain(timeout=DEADLINE).release

    elif kind == "portalocker":
        import portalocker

        def acquire():
            lock = portalocker.Lock(os.path.join(where, "bench.lock"), timeout=DEADLINE)
            lock.acquire()
            return lock.release

    elif kind == "filelock":
        import filelock

        def acquire():
            lock = filelock.FileLock(os.path.join(where, "bench.lock"))
            lock.acquire(timeout=DEADLINE)
            return lock.release

    else:
        raise ValueError(kind)
    return acquire


def fork(body) -> tuple[int, int, int]:
    """Forks ``body(report, commands)``; returns (pid, its reports' read end,
    its commands' write end)."""
    rep_r, rep_w = os.pipe()
    cmd_r, cmd_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rep_r)
            os.close(cmd_w)
            body(lambda s: os.write(rep_w, (s + "\n").encode()), cmd_r)
        except BaseException as err:  # noqa: BLE001
            print(f"bench child: {err!r}", file=sys.stderr)
            code = 1
        os._exit(code)
    os.close(rep_w)
    os.close(cmd_r)
    return pid, rep_r, cmd_w


def read_line(fd: int) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError("a bench process ended early")
        buf += chunk
    return buf.decode().strip()


def one_round(kind: str, where: str, kill: bool, pause: random.Random) -> float:
    """Milliseconds from release (or SIGKILL) to the waiter's acquisition."""
    acquire = acquirer(kind, where)

    def holder(report, commands):
        release = acquire()
        report("held")
        os.read(commands, 1)
        t0 = time.monotonic_ns()
        release()
        report(str(t0))

    def waiter(report, commands):
        report("waiting")
        release = acquire()
        t1 = time.monotonic_ns()
        report(str(t1))
        release()

    h, h_rep, h_cmd = fork(holder)
    assert read_line(h_rep) == "held"
    w, w_rep, w_cmd = fork(waiter)
    assert read_line(w_rep) == "waiting"
    # Let the waiter reach its blocking acquire, and release at a random
    # phase of the pollers' period (0.25 s for portalocker), from the same
    # seeded sequence of pauses for every library.
    time.sleep(pause.uniform(0.02, 0.27))
    if kill:
        t0 = time.monotonic_ns()
        os.kill(h, signal.SIGKILL)
    else:
        os.write(h_cmd, b"!")
        t0 = int(read_line(h_rep))
    t1 = int(read_line(w_rep))
    for pid in (h, w):
        os.waitpid(pid, 0)
    for fd in (h_rep, h_cmd, w_rep, w_cmd):
        os.close(fd)
    return (t1 - t0) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds per library and case (default 30)")
    args = parser.parse_args()
    kinds = ["elect", "portalocker", "filelock"]
    cases = [("hand-off", False), ("fail-over", True)]
    started = time.monotonic()
    medians: dict[tuple[str, str], float] = {}
    print(f"{args.rounds} rounds each; milliseconds from release / SIGKILL to the waiter holding the lock")
    print(f"{'case':<10} {'library':<12} {'median':>9} {'p90':>9} {'max':>9} {'x elect':>8}")
    with tempfile.TemporaryDirectory(prefix="elect-bench-") as where:
        for case, kill in cases:
            for kind in kinds:
                pause = random.Random(20)
                samples = sorted(one_round(kind, where, kill, pause) for _ in range(args.rounds))
                med = statistics.median(samples)
                medians[(case, kind)] = med
                p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
                ratio = med / medians[(case, "elect")]
                print(f"{case:<10} {kind:<12} {med:9.3f} {p90:9.3f} {samples[-1]:9.3f} {ratio:7.0f}x", flush=True)
    for case, _ in cases:
        e = medians[(case, "elect")]
        others = ", ".join(f"{k} {medians[(case, k)] / e:.0f}x slower" for k in kinds[1:])
        print(f"{case}: elect median {e:.3f} ms; {others}")
    print(f"took {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
