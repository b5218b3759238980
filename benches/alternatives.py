#!/usr/bin/env python3
"""Measure the tools a user would pick instead of elect, side by side in one run.

    python3 benches/alternatives.py OUTDIR [--elect target/release/elect] [--quick]

Writes OUTDIR/alternatives.json and, for the plot, every hand-off sample as
little-endian u64 nanoseconds in OUTDIR/samples/<label>.u64 (the format of
benches/multiproc.rs with ELECT_BENCH_SAMPLES). Prints one line per figure.

What is measured, and why this way:

* Library hand-off (portalocker.BoundedSemaphore, py-filelock FileLock, raw
  fcntl.flock as the anchor): two worker processes take turns. The holder
  waits until the other process has entered acquire(), lets it settle 5 ms,
  then holds a further random time in [0, poll interval) so that the release
  falls at a random phase of a polling waiter's schedule (a fixed hold would
  always hit the same phase and report one number instead of a
  distribution). It stamps time.monotonic_ns() (CLOCK_MONOTONIC, shared by
  all processes) into a shared file and releases; the waiter stamps right
  after acquire() returns. Hand-off = waiter's stamp - holder's stamp, as in
  multiproc.rs. The releaser does not try again until the other owns, so
  nobody barges and every round is one hand-off to a waiting process.

* CLI hand-off (`flock FILE CMD`, `elect run NAME -- CMD`, `sem --fg -j1 --id X
  CMD`): the command does the stamping, because the lock lives in the tool.
  Holder: `TOOL sh holder.sh READY FIFO` marks READY once it owns, blocks on a
  FIFO, then `exec date +%s%N` prints its last time and exits, which ends the
  tool and frees the lock. Waiter: `TOOL date +%s%N`. Hand-off = waiter's date
  - holder's date: holder command exits -> tool notices and releases -> waiter
  tool wakes -> forks and execs date -> date reads the clock. `date` is the
  same cheap static stamp for all three tools (python3 -c would add ~15 ms of
  start-up and drown the differences). `date +%s%N` reads CLOCK_REALTIME, not
  CLOCK_MONOTONIC: no CLI prints the monotonic clock; over a few ms NTP slew
  (at most 500 ppm) changes a sample by under 1 us. The part that is date's
  own (exit, fork+exec, start-up) is measured alone as `sh -c 'date; date'`
  and reported as "stamp overhead" so readers can subtract it. The waiter is
  released only after it has settled into its wait (CPU use below 10 % over
  10 ms, so start-up is over), plus a random 20-70 ms, the same for all
  tools (sem's back-off grows the longer it waits, so the wait must be the
  same for everyone). Rounds of the three tools are interleaved so that noise
  from other work on the machine falls on all of them alike.

* Per-call cost of the CLIs: hyperfine (-N, no shell) on `true`, `flock FILE
  true`, `elect run -d DIR NAME -- true` and `sem --fg --id X -j1 true`.
  `--fg` makes sem wait for the command like the other two do. In 5
  rounds, each of every command, so that drift falls on all alike.

* Idle cost: 20 waiters for 10 s while the lock is held, for portalocker,
  elect run and flock(1) (the kernel-wait anchor). CPU from utime+stime of
  /proc/PID/task/*/stat (clock ticks) and, more precisely, from
  /proc/PID/task/*/schedstat (ns); wake-ups from voluntary
  context switches of all threads.
"""

import argparse
import json
import math
import mmap
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ME = os.path.abspath(__file__)


# ------------------------------------------------------------------ helpers


def pct(sorted_ns, p):
    """Percentile in µs with the rounding of multiproc.rs (nearest rank)."""
    i = int(math.floor((len(sorted_ns) - 1) * p + 0.5))
    return sorted_ns[i] / 1000.0


def dist(samples):
    s = sorted(samples)
    return {
        "n": len(s),
        "p50_us": pct(s, 0.5),
        "p90_us": pct(s, 0.9),
        "p99_us": pct(s, 0.99),
        "mean_us": sum(s) / len(s) / 1000.0,
    }


def line(label, d):
    return (
        f"{label:<44} n={d['n']:>6}  p50={d['p50_us']:>9.1f} µs  "
        f"p90={d['p90_us']:>9.1f} µs  p99={d['p99_us']:>9.1f} µs"
    )


def save_samples(outdir, label, samples):
    name = "".join(c if c.isalnum() else "_" for c in label)
    os.makedirs(os.path.join(outdir, "samples"), exist_ok=True)
    with open(os.path.join(outdir, "samples", name + ".u64"), "wb") as f:
        f.write(b"".join(struct.pack("<Q", max(0, v)) for v in samples))


def tasks_cost(pid):
    """(clock ticks utime+stime, ns on CPU, context switches) of all threads."""
    ticks = ns = switches = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return (0, 0, 0)
    for t in tids:
        base = f"/proc/{pid}/task/{t}"
        try:
            with open(base + "/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
            with open(base + "/schedstat") as f:
                ns += int(f.read().split()[0])
            with open(base + "/status") as f:
                for ln in f:
                    # Going back to sleep ends each wake-up; involuntary
                    # switches are preemptions of a thread already awake.
                    if ln.startswith("voluntary_ctxt_switches:"):
                        switches += int(ln.split(":")[1])
        except (OSError, ValueError, IndexError):
            pass
    return (ticks, ns, switches)


def wait_settled(pid, deadline_s=30.0):
    """Until the process has used under 1 ms of CPU in a 10 ms window: its
    start-up is over and it sits in its wait (blocked or slowly polling)."""
    end = time.monotonic() + deadline_s
    prev = tasks_cost(pid)[1]
    while time.monotonic() < end:
        time.sleep(0.010)
        cur = tasks_cost(pid)[1]
        if cur - prev < 1_000_000:
            return
        prev = cur
    raise RuntimeError(f"process {pid} never settled into its wait")


def wait_for(path, deadline_s=30.0):
    end = time.monotonic() + deadline_s
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {path}")
        time.sleep(0.0005)


def kill_group(p):
    """Kill a child started with start_new_session, and everything it
    started (flock(1)'s command keeps the lock if only flock dies)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


# ------------------------------------------------------------------ library hand-off

# Shared state of the two workers, in one mmap'd file:
#   0: release time (ns)   8: releaser (1 or 2)   16: owner   24: stop
#   32 + 8*i: worker i is in acquire()
OFF_REL, OFF_RELR, OFF_OWNER, OFF_STOP = 0, 8, 16, 24


def make_lock(tool, d):
    if tool == "fcntl":
        import fcntl

        fd = os.open(os.path.join(d, "raw.lock"), os.O_RDWR | os.O_CREAT, 0o600)

        class Raw:
            def acquire(self):
                fcntl.flock(fd, fcntl.LOCK_EX)

            def release(self):
                fcntl.flock(fd, fcntl.LOCK_UN)

        return Raw()
    if tool == "filelock":
        import filelock

        return filelock.FileLock(os.path.join(d, "f.lock"))  # default poll 0.05 s
    if tool == "portalocker":
        import portalocker

        # Default check_interval 0.25 s; the default 5 s timeout is lifted so
        # that a long wait (the idle figure) does not end in AlreadyLocked.
        return portalocker.BoundedSemaphore(1, name="bench", directory=d, timeout=3600)
    raise ValueError(tool)


def lib_worker(tool, d, i, quota, jitter):
    """One of the two alternating processes (see the module docstring)."""
    other = 3 - i
    f = open(os.path.join(d, "shared"), "r+b")
    mm = mmap.mmap(f.fileno(), 64)
    get = lambda off: struct.unpack_from("<Q", mm, off)[0]
    put = lambda off, v: struct.pack_into("<Q", mm, off, v)
    lock = make_lock(tool, d)
    samples = []
    while True:
        put(32 + 8 * i, 1)
        lock.acquire()
        got = time.monotonic_ns()
        put(32 + 8 * i, 0)
        rel, relr = get(OFF_REL), get(OFF_RELR)
        if get(OFF_STOP):
            lock.release()
            break
        if relr == other:
            samples.append(got - rel)
        put(OFF_OWNER, i)
        if len(samples) >= quota:
            put(OFF_STOP, 1)
            lock.release()
            break
        # Hold until the other is inside acquire() and settled, then a random
        # part of a poll interval.
        while not get(32 + 8 * other):
            time.sleep(0.0005)
        time.sleep(0.005 + random.uniform(0, jitter))
        struct.pack_into("<QQ", mm, OFF_REL, time.monotonic_ns(), i)
        lock.release()
        # No barging: try again only once the other owns.
        while get(OFF_OWNER) == i and not get(OFF_STOP):
            time.sleep(0.0005)
        if get(OFF_STOP):
            break
    with open(os.path.join(d, f"samples.{i}"), "wb") as out:
        out.write(b"".join(struct.pack("<Q", v) for v in samples))


def lib_handoff(base, tool, rounds, jitter):
    d = tempfile.mkdtemp(prefix=f"lib-{tool}-", dir=base)
    with open(os.path.join(d, "shared"), "wb") as f:
        f.write(b"\0" * 64)
    quota = (rounds + 1) // 2
    ws = [
        subprocess.Popen(
            [sys.executable, ME, "--lib-worker", tool, d, str(i), str(quota), str(jitter)],
            start_new_session=True,
        )
        for i in (1, 2)
    ]
    for w in ws:
        if w.wait(timeout=600) != 0:
            raise RuntimeError(f"{tool} worker failed")
    samples = []
    for i in (1, 2):
        with open(os.path.join(d, f"samples.{i}"), "rb") as f:
            b = f.read()
        samples += [v for (v,) in struct.iter_unpack("<Q", b)]
    return samples


# ------------------------------------------------------------------ CLI hand-off

HOLDER_SH = ': > "$1"\nread x < "$2"\nexec date +%s%N\n'


def cli_prefix(tool, d, elect):
    """The command line that runs CMD under each tool's lock."""
    if tool == "flock(1)":
        return ["flock", os.path.join(d, "flock.lock")]
    if tool in ("elect run", "elect run (static)"):
        return [elect, "run", "-q", "-d", os.path.join(d, "elect"), "bench", "--"]
    if tool == "sem":
        return ["sem", "--will-cite", "--fg", "-j1", "--id", "elect-bench-handoff"]
    raise ValueError(tool)


def cli_round(d, prefix, env):
    r = tempfile.mkdtemp(prefix="r-", dir=d)
    ready, fifo = os.path.join(r, "ready"), os.path.join(r, "fifo")
    os.mkfifo(fifo)
    with open(os.path.join(r, "rel"), "w") as rel_out, open(os.path.join(r, "got"), "w") as got_out:
        holder = subprocess.Popen(
            prefix + ["sh", os.path.join(d, "holder.sh"), ready, fifo],
            stdout=rel_out, env=env, start_new_session=True,
        )
        try:
            wait_for(ready)
            waiter = subprocess.Popen(
                prefix + ["date", "+%s%N"], stdout=got_out, env=env, start_new_session=True
            )
            try:
                wait_settled(waiter.pid)
                time.sleep(random.uniform(0.020, 0.070))
                with open(fifo, "w") as f:  # lets the holder's command finish
                    f.write("\n")
                holder.wait(timeout=60)
                waiter.wait(timeout=60)
            finally:
                kill_group(waiter)
        finally:
            kill_group(holder)
    with open(os.path.join(r, "rel")) as f:
        rel = int(f.read().split()[0])
    with open(os.path.join(r, "got")) as f:
        got = int(f.read().split()[0])
    shutil.rmtree(r)
    return got - rel


def stamp_overhead(rounds):
    """What date itself adds to a CLI hand-off: one date exits, its parent
    wakes, forks and execs the next date, which reads the clock."""
    v = []
    for _ in range(rounds):
        out = subprocess.run(
            ["sh", "-c", "date +%s%N; date +%s%N"], capture_output=True, text=True, check=True
        ).stdout.split()
        v.append(int(out[1]) - int(out[0]))
        time.sleep(0.005)
    return v


# ------------------------------------------------------------------ per call


PERCALL_ROUNDS = 5


def per_call(base, elect, runs, env, static=None):
    """hyperfine in PERCALL_ROUNDS rounds of runs/PERCALL_ROUNDS runs each,
    every command in every round, and each command's figures over all its
    runs: hyperfine runs one command's runs back to back, so on a shared
    machine a slow minute would otherwise fall on one command alone (a run
    of this script measured `true` 28% slower than the one before it)."""
    d = tempfile.mkdtemp(prefix="percall-", dir=base)
    out = os.path.join(d, "hyperfine.json")
    cmds = [
        "true",
        f"flock {d}/flock.lock true",
        f"{elect} run -d {d}/elect bench -- true",
    ]
    names = ["true", "flock(1)", "elect run"]
    if static:
        cmds.append(f"{static} run -d {d}/elect-static bench -- true")
        names.append("elect run (static)")
    cmds.append("sem --will-cite --fg --id elect-bench-percall -j1 true")
    names.append("sem")
    times = {n: [] for n in names}
    per_round = max(10, runs // PERCALL_ROUNDS)
    for _ in range(PERCALL_ROUNDS):
        subprocess.run(
            ["hyperfine", "-N", "--warmup", "5", "--runs", str(per_round), "--style", "basic",
             "--export-json", out] + cmds,
            check=True, env=env, stdout=subprocess.DEVNULL,
        )
        with open(out) as f:
            for n, x in zip(names, json.load(f)["results"]):
                times[n].extend(x["times"])
    r = {}
    for n, c in zip(names, cmds):
        if static:
            c = c.replace(static, "elect-static")
        t = times[n]
        r[n] = {
            "command": c.replace(d, "DIR").replace(elect, "elect"),
            "median_ms": statistics.median(t) * 1e3,
            "mean_ms": statistics.mean(t) * 1e3,
            "stddev_ms": statistics.stdev(t) * 1e3,
            "min_ms": min(t) * 1e3,
            "runs": len(t),
        }
    return r


# ------------------------------------------------------------------ idle


def idle(base, tool, elect, waiters, secs, env):
    d = tempfile.mkdtemp(prefix=f"idle-{tool}-", dir=base)
    ready = os.path.join(d, "ready")
    hold_sh = os.path.join(d, "hold.sh")
    with open(hold_sh, "w") as f:
        f.write(': > "$1"\nexec sleep 3600\n')
    if tool == "portalocker":
        holder_cmd = [sys.executable, ME, "--idle-holder", "portalocker", d, ready]
        waiter_cmd = [sys.executable, ME, "--idle-waiter", "portalocker", d]
    elif tool == "elect run":
        holder_cmd = [elect, "run", "-q", "-d", d + "/elect", "idle", "--", "sh", hold_sh, ready]
        waiter_cmd = [elect, "run", "-q", "-d", d + "/elect", "idle", "--", "true"]
    elif tool == "flock(1)":
        holder_cmd = ["flock", d + "/f.lock", "sh", hold_sh, ready]
        waiter_cmd = ["flock", d + "/f.lock", "true"]
    else:
        raise ValueError(tool)
    holder = subprocess.Popen(holder_cmd, env=env, start_new_session=True)
    ws = []
    try:
        wait_for(ready)
        ws = [subprocess.Popen(waiter_cmd, env=env, start_new_session=True) for _ in range(waiters)]
        for w in ws:
            wait_settled(w.pid)
        time.sleep(1.0)
        before = [tasks_cost(w.pid) for w in ws]
        time.sleep(secs)
        after = [tasks_cost(w.pid) for w in ws]
        alive = sum(w.poll() is None for w in ws)
    finally:
        for w in ws:
            kill_group(w)
        kill_group(holder)
    hz = os.sysconf("SC_CLK_TCK")
    wakes = [(a[2] - b[2]) / secs for a, b in zip(after, before)]
    return {
        "waiters": waiters,
        "seconds": secs,
        "still_waiting_at_end": alive,
        "cpu_ms_ticks": sum(a[0] - b[0] for a, b in zip(after, before)) * 1000.0 / hz,
        "cpu_ms_schedstat": sum(a[1] - b[1] for a, b in zip(after, before)) / 1e6,
        "wakeups_per_s_mean": sum(wakes) / len(wakes),
        "wakeups_per_s_max": max(wakes),
        "tick_ms": 1000.0 / hz,
    }


def idle_holder(tool, d, ready):
    lock = make_lock(tool, d)
    lock.acquire()
    open(ready, "w").close()
    time.sleep(3600)


def idle_waiter(tool, d):
    lock = make_lock(tool, d)
    lock.acquire()


# ------------------------------------------------------------------ main


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--lib-worker":
        tool, d, i, quota, jitter = sys.argv[2:7]
        return lib_worker(tool, d, int(i), int(quota), float(jitter))
    if len(sys.argv) > 1 and sys.argv[1] == "--idle-holder":
        return idle_holder(*sys.argv[2:5])
    if len(sys.argv) > 1 and sys.argv[1] == "--idle-waiter":
        return idle_waiter(*sys.argv[2:4])

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--elect", default=os.path.join(HERE, "..", "target", "release", "elect"))
    ap.add_argument(
        "--elect-static",
        help="also measure this build of elect (statically linked), in the CLI sections",
    )
    ap.add_argument("--quick", action="store_true", help="few samples, to try the script")
    ap.add_argument("--only", nargs="*", default=[], help="sections: lib cli percall idle")
    a = ap.parse_args()
    elect = os.path.abspath(a.elect)
    static = os.path.abspath(a.elect_static) if a.elect_static else None
    os.makedirs(a.outdir, exist_ok=True)
    want = lambda s: not a.only or s in a.only
    q = 0.2 if a.quick else 1.0
    base = tempfile.mkdtemp(prefix="elect-alt-")
    # sem keeps its semaphores under $PARALLEL_HOME: a private one leaves the
    # user's ~/.parallel alone and starts every run from a clean state.
    env = dict(os.environ, PARALLEL_HOME=os.path.join(base, "parallel"))
    os.makedirs(env["PARALLEL_HOME"])
    open(os.path.join(env["PARALLEL_HOME"], "will-cite"), "w").close()

    out = {"quick": a.quick}
    try:
        if want("lib"):
            print("## Library hand-off: holder releases → waiting process owns (2 processes taking turns)")
            out["handoff_lib"] = {}
            # (label, tool, rounds, hold jitter = the tool's poll interval)
            for label, tool, rounds, jitter in [
                ("python fcntl.flock (anchor)", "fcntl", 200, 0.010),
                ("py-filelock FileLock (poll 0.05 s)", "filelock", 100, 0.05),
                ("portalocker BoundedSemaphore (poll 0.25 s)", "portalocker", 60, 0.25),
            ]:
                s = lib_handoff(base, tool, max(10, int(rounds * q)), jitter)
                d = dist(s)
                out["handoff_lib"][label] = d
                save_samples(a.outdir, "alt " + tool, s)
                print(line(label, d), flush=True)

        if want("cli"):
            print("\n## CLI hand-off: holder's command exits → waiter's command runs (date +%s%N stamps)")
            # 200 rounds: a p50 from 50 moved by 0.1x between runs.
            rounds = max(8, int(200 * q))
            so = stamp_overhead(rounds * 2)
            out["stamp_overhead"] = dist(so)
            save_samples(a.outdir, "alt stamp overhead", so)
            print(line("stamp overhead alone: sh -c 'date; date'", out["stamp_overhead"]), flush=True)
            tools = ["flock(1)", "elect run", "sem"] + (["elect run (static)"] if static else [])
            dirs, prefixes, samples = {}, {}, {t: [] for t in tools}
            for t in tools:
                dirs[t] = tempfile.mkdtemp(prefix="cli-", dir=base)
                with open(os.path.join(dirs[t], "holder.sh"), "w") as f:
                    f.write(HOLDER_SH)
                prefixes[t] = cli_prefix(t, dirs[t], static if t == "elect run (static)" else elect)
            for _ in range(rounds):  # interleaved, so noise falls on all alike
                for t in tools:
                    samples[t].append(cli_round(dirs[t], prefixes[t], env))
            out["handoff_cli"] = {}
            for t in tools:
                d = dist(samples[t])
                out["handoff_cli"][t] = d
                save_samples(a.outdir, "alt cli " + t, samples[t])
                print(line(t, d), flush=True)
            r = out["handoff_cli"]["elect run"]["p50_us"] / out["handoff_cli"]["flock(1)"]["p50_us"]
            out["handoff_cli_ratio_elect_flock_p50"] = r
            print(f"ratio p50 elect run / flock(1): {r:.2f}x (target ≤ 1.2x)")

        if want("percall"):
            print("\n## Per call (hyperfine -N, median)")
            pc = per_call(base, elect, max(20, int(300 * q)), env, static)
            out["percall"] = pc
            for n, x in pc.items():
                print(f"{x['command']:<44} median {x['median_ms']:>8.2f} ms  mean {x['mean_ms']:>8.2f} ± {x['stddev_ms']:.2f} ms")
            r = pc["elect run"]["median_ms"] / pc["flock(1)"]["median_ms"]
            out["percall_ratio_elect_flock"] = r
            print(f"ratio median elect run / flock(1): {r:.2f}x (target ≤ 1.2x)")

        if want("idle"):
            secs = 10 if not a.quick else 3
            print(f"\n## Idle: 20 waiters for {secs} s while the lock is held")
            out["idle"] = {}
            for tool in ["portalocker", "elect run", "flock(1)"]:
                r = idle(base, tool, elect, 20, secs, env)
                out["idle"][tool] = r
                print(
                    f"{tool:<12} CPU of all 20: {r['cpu_ms_ticks']:>7.1f} ms (ticks), "
                    f"{r['cpu_ms_schedstat']:>8.2f} ms (schedstat); wake-ups/s each: "
                    f"mean {r['wakeups_per_s_mean']:.2f}, max {r['wakeups_per_s_max']:.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    with open(os.path.join(a.outdir, "alternatives.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
