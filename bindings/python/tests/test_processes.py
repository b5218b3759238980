"""Real processes: fail-over on SIGKILL, N=2, Ctrl-C while waiting, fork."""

import gc
import os
import signal
import time

import elect
from _proc import block_forever, until, waiters


def test_sigkill_of_holder_hands_over_to_waiter(rundir, children):
    e = elect.Election("failover", dir=rundir)

    def holder(send):
        t = e.obtain(timeout=20)
        send(f"holding {t.token}")
        block_forever()

    def waiter(send):
        send("waiting")
        t = e.obtain(timeout=20)
        send(f"got {time.monotonic_ns()} {t.token}")
        block_forever()

    a = children(holder)
    first = int(a.expect("holding").split()[1])
    b = children(waiter)
    b.expect("waiting")
    until(lambda: b.pid in waiters(e), "the waiter stands in line")
    assert b.silent_for(0.2), "the waiter must not get a held ticket"
    killed = time.monotonic_ns()
    a.kill()
    _, at, token = b.expect("got").split()
    took_ms = (int(at) - killed) / 1e6
    assert int(token) > first
    # Milliseconds normally; generous for a loaded CI machine.
    assert took_ms < 1000, f"take-over took {took_ms:.1f} ms"
    assert a.wait() == -signal.SIGKILL


def test_never_more_than_two_holders(rundir, children):
    import multiprocessing

    e = elect.Election("pair", tickets=2, dir=rundir)
    # Shared memory, inherited through fork: holders now, and the most seen.
    holding = multiprocessing.Value("i", 0)
    most = multiprocessing.Value("i", 0)
    rounds = 15

    def worker(send):
        for _ in range(rounds):
            with e.obtain(timeout=30):
                with holding.get_lock():
                    holding.value += 1
                    most.value = max(most.value, holding.value)
                time.sleep(0.002)
                with holding.get_lock():
                    holding.value -= 1
        send("done")

    workers = [children(worker) for _ in range(5)]
    for w in workers:
        w.expect("done", timeout=60)
        assert w.wait() == 0
    assert most.value <= 2, f"{most.value} holders at once with 2 tickets"
    assert most.value == 2, "both tickets were never held at once"
    assert holding.value == 0


def test_ctrl_c_ends_a_wait_and_leaves_the_line(rundir, children):
    e = elect.Election("intr", dir=rundir)
    held = e.obtain()

    def interrupted(send):
        send("waiting")
        start = time.monotonic()
        try:
            e.obtain()
        except KeyboardInterrupt:
            send(f"interrupted {time.monotonic() - start:.3f}")
            block_forever()  # alive, but no longer in line
        send("got")

    a = children(interrupted)
    a.expect("waiting")
    until(lambda: a.pid in waiters(e), "the child waits in line")
    sent = time.monotonic()
    a.kill(signal.SIGINT)
    a.expect("interrupted")
    assert time.monotonic() - sent < 2, "KeyboardInterrupt did not end the wait promptly"
    until(lambda: a.pid not in waiters(e), "the interrupted child left the line")

    def second(send):
        send("waiting")
        with e.obtain(timeout=20) as t:
            send(f"got {t.slot}")

    b = children(second)
    b.expect("waiting")
    until(lambda: b.pid in waiters(e), "the second child waits in line")
    assert waiters(e) == [b.pid], "the second child is first in line"
    held.release()
    assert b.expect("got") == "got 0"
    assert b.wait() == 0
    assert a.silent_for(0.05), "the interrupted child got nothing"


def test_ctrl_c_in_this_process(rundir):
    """KeyboardInterrupt on the main thread of the test process itself."""
    import threading

    e = elect.Election("self", dir=rundir)
    held = e.obtain()
    pid = os.getpid()

    def interrupt():
        until(lambda: pid in waiters(e), "this process waits in line")
        os.kill(pid, signal.SIGINT)

    threading.Thread(target=interrupt).start()
    start = time.monotonic()
    try:
        e.obtain(timeout=20)
        raise AssertionError("the wait was not interrupted")
    except KeyboardInterrupt:
        pass
    assert time.monotonic() - start < 10
    assert pid not in waiters(e)
    held.release()
    assert e.try_obtain() is not None, "the interrupted wait holds nothing"


def test_inherited_ticket_dropped_in_child_keeps_parents(rundir, children):
    e = elect.Election("inherit", dir=rundir)
    t = e.obtain()

    def child(send):
        assert t.is_held
        t.release()  # the child's copy: closes only the child's descriptors
        gc.collect()
        send("released")

    c = children(child)
    c.expect("released")
    assert c.wait() == 0
    assert t.is_held
    assert e.status()["slots"][0]["held"]

    def other(send):
        send("free" if e.try_obtain() is not None else "held")

    assert children(other).expect() == "held", "the parent's ticket was released by its child"
    t.release()
    assert children(other).expect() == "free"


def test_election_made_before_fork_is_used_in_children(rundir, children):
    """A pre-fork master makes the Election (and even obtains and releases
    once); each worker then competes with it."""
    e = elect.Election("prefork", dir=rundir)
    e.obtain().release()

    def worker(send):
        with e.obtain(timeout=20) as t:
            send(f"got {t.token}")
            block_forever()

    a = children(worker)
    first = int(a.expect("got").split()[1])
    b = children(worker)
    until(lambda: b.pid in waiters(e), "the second worker stands in line")
    assert b.silent_for(0.1)
    a.kill()
    assert int(b.expect("got").split()[1]) > first
