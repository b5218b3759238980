"""A gunicorn-style pre-fork server whose scheduler runs in one worker only.

The master makes the Election and forks 4 workers (multiprocessing's "fork"
start method, as gunicorn, uwsgi and celery fork theirs). Every worker starts
a campaign; the one that wins runs the scheduler, which prints a line every
second with its pid. The demo then SIGKILLs that worker: the kernel frees its
slot at once and a waiting worker takes over; the measured take-over is
printed. It exits after a few seconds.

    python examples/prefork.py [--dir DIR] [--seconds N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time

import elect


def scheduler(stop: threading.Event, token: int) -> None:
    tick = 0
    while not stop.is_set():
        print(f"  [worker {os.getpid()}] scheduler tick {tick} (token {token})", flush=True)
        tick += 1
        stop.wait(1.0)


def worker(election: elect.Election, events: "mp.Queue", stop_pipe) -> None:
    running: dict[str, threading.Event] = {}

    def on_obtain(ticket: elect.CampaignTicket) -> None:
        # Report first, so the master's measure is the take-over itself.
        events.put(("leader", os.getpid(), time.monotonic_ns()))
        stop = running["stop"] = threading.Event()
        threading.Thread(target=scheduler, args=(stop, ticket.token), daemon=True).start()

    def cleanup(ending: elect.Ending) -> None:
        running.pop("stop").set()
        print(f"  [worker {os.getpid()}] scheduler stopped: {ending.value}", flush=True)

    # Campaigns start in the worker, after fork: a campaign's thread does
    # not survive fork.
    campaign = election.campaign(on_obtain, cleanup)
    stop_pipe.recv()  # the master says stop
    campaign.resign()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="run directory (default: a new temporary one)")
    parser.add_argument("--seconds", type=float, default=2.5, help="how long each scheduler runs before the next step")
    args = parser.parse_args()
    rundir = args.dir or tempfile.mkdtemp(prefix="elect-prefork-")

    ctx = mp.get_context("fork")
    # Made in the master, before fork: an Election holds nothing open and
    # keeps no thread, so each worker competes with it as a process of its own.
    election = elect.Election("scheduler", dir=rundir, label="prefork demo")
    events = ctx.Queue()
    # One pipe per worker to say stop (not an mp.Event, whose set() waits
    # for every sleeper to wake, forever for one killed with SIGKILL).
    pipes = [ctx.Pipe(duplex=False) for _ in range(4)]
    workers = [ctx.Process(target=worker, args=(election, events, r)) for r, _ in pipes]
    for w in workers:
        w.start()
    print(f"master {os.getpid()}: workers {[w.pid for w in workers]}, run directory {rundir}", flush=True)

    ok, successor = False, None
    try:
        _, leader, _ = events.get(timeout=20)
        print(f"master: worker {leader} runs the scheduler", flush=True)
        time.sleep(args.seconds)
        killed_at = time.monotonic_ns()
        os.kill(leader, signal.SIGKILL)
        print(f"master: SIGKILL to worker {leader}", flush=True)
        try:
            _, successor, at = events.get(timeout=20)
        except queue.Empty:
            print("master: no worker took over within 20 s", file=sys.stderr)
            return 1
        print(f"master: worker {successor} took over {(at - killed_at) / 1e6:.3f} ms after the SIGKILL", flush=True)
        time.sleep(args.seconds)
        held = [s for s in election.status()["slots"] if s["held"]]
        print(f"master: status says slot {held[0]['slot']} is held by pid {held[0]['pid']}", flush=True)
        ok = successor != leader and held[0]["pid"] == successor
    finally:
        # The waiters first, so that nobody takes over at shutdown.
        for w, (_, stop) in sorted(zip(workers, pipes), key=lambda wp: wp[0].pid == successor):
            if w.is_alive():
                stop.send(None)
        for w in workers:
            w.join(timeout=20)
            if w.is_alive():
                w.kill()
    if not args.dir:
        shutil.rmtree(rundir, ignore_errors=True)
    print("master: done", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
