import math
import time

import pytest

import elect


def test_obtain_release_and_tokens(rundir):
    e = elect.Election("reports", dir=rundir, label="test")
    with e.obtain(timeout=5) as t:
        assert (t.slot, t.name, t.is_held) == (0, "reports", True)
        assert t.path == rundir / "reports" / "slot.0"
        assert e.try_obtain() is None, "one ticket, already taken"
        st = e.status()
        assert st["tickets"] == 1
        assert st["slots"][0]["held"] is True
        assert st["slots"][0]["token"] == t.token
        assert st["slots"][0]["label"] == "test"
        first = t.token
    assert not t.is_held
    t.release()  # a second release does nothing
    t2 = e.try_obtain()
    assert t2 is not None and t2.token > first
    t2.release()
    assert e.status()["slots"][0] == {"slot": 0, "held": False}


def test_timeout_raises_timeouterror(rundir):
    e = elect.Election("x", dir=rundir)
    held = e.obtain()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="within 0.2 s"):
        e.obtain(timeout=0.2)
    took = time.monotonic() - start
    assert 0.2 <= took < 5, took
    with pytest.raises(elect.Timeout):
        e.obtain(timeout=0)
    # The with form raises before its body when no ticket comes.
    entered = False
    with pytest.raises(elect.Timeout):
        with e.obtain(timeout=0.05):
            entered = True
    assert not entered
    held.release()
    with e.obtain(timeout=0) as t:
        assert t.is_held


def test_tickets_two(rundir):
    e = elect.Election("pool", tickets=2, dir=rundir)
    a, b = e.obtain(timeout=5), e.obtain(timeout=5)
    assert {a.slot, b.slot} == {0, 1}
    assert e.try_obtain() is None
    assert e.tickets == 2
    b.release()
    c = e.try_obtain()
    assert c is not None and c.slot == b.slot


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="a b"), "invalid resource name \"a b\""),
        (dict(name=""), "it is empty"),
        (dict(name="../etc"), "invalid resource name"),
        (dict(name="x/y"), "invalid resource name"),
        (dict(name="x" * 129), "invalid resource name"),
        (dict(name="nul\0"), "invalid resource name"),
        (dict(name="x", tickets=0), "invalid number of tickets 0: it must be from 1 to 4096"),
        (dict(name="x", tickets=4097), "invalid number of tickets 4097"),
        (dict(name="x", tickets=-1), "invalid number of tickets -1"),
        (dict(name="x", tickets=2**70), "invalid number of tickets 1180591620717411303424"),
    ],
)
def test_bad_input_is_a_clear_exception(kwargs, words, rundir):
    with pytest.raises(elect.InvalidArgument) as info:
        elect.Election(dir=rundir, **kwargs)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, elect.Error)
    assert not rundir.exists(), "a refused election touches nothing on disk"


@pytest.mark.parametrize("tickets", ["2", 2.0, True, None.__class__])
def test_tickets_of_another_type(tickets):
    with pytest.raises(TypeError, match="tickets must be an int"):
        elect.Election("x", tickets=tickets)


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan])
def test_bad_timeout(timeout, rundir):
    e = elect.Election("x", dir=rundir)
    with pytest.raises(elect.InvalidArgument, match="invalid timeout"):
        e.obtain(timeout=timeout)


def test_infinite_timeout_waits(rundir):
    e = elect.Election("x", dir=rundir)
    with e.obtain(timeout=math.inf) as t:
        assert t.is_held


def test_ticket_mismatch(rundir):
    a = elect.Election("agree", tickets=2, dir=rundir).obtain()
    with pytest.raises(elect.TicketMismatch, match="in use with 2 ticket"):
        elect.Election("agree", tickets=3, dir=rundir).try_obtain()
    a.release()


def test_unsafe_directory(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(elect.UnsafeDirectory) as info:
        elect.Election("x", dir=d).try_obtain()
    assert str(d) in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_lost_ticket_is_not_held(rundir):
    import shutil

    e = elect.Election("x", dir=rundir)
    t = e.obtain()
    shutil.rmtree(rundir / "x")
    assert not t.is_held


def test_module_status(rundir):
    e = elect.Election("a", dir=rundir)
    assert elect.status(rundir, "never-used")["resources"] == []
    with e.obtain():
        st = elect.status(rundir)
        assert st["dir"] == str(rundir)
        assert [r["name"] for r in st["resources"]] == ["a"]
        assert st["resources"][0]["slots"][0]["held"]


def test_gil_is_released_while_waiting(rundir):
    import threading

    e = elect.Election("gil", dir=rundir)
    held = e.obtain()
    count = 0
    done = threading.Event()

    def spin():
        nonlocal count
        while not done.is_set():
            count += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        before = count
        with pytest.raises(elect.Timeout):
            e.obtain(timeout=0.3)
        ran = count - before
    finally:
        done.set()
        spinner.join()
    held.release()
    # Python code ran on the other thread all along (millions of rounds
    # where the GIL is free; none if the wait kept it).
    assert ran > 10_000, ran


def test_election_pickles_for_spawned_processes(rundir):
    import pickle

    e = elect.Election("pick", tickets=3, dir=rundir, label="lbl")
    f = pickle.loads(pickle.dumps(e))
    assert type(f) is elect.Election
    assert (f.name, f.tickets, f.dir) == ("pick", 3, rundir)
    with f.obtain(timeout=5):
        assert e.status()["slots"][0]["label"] == "lbl"


def _spawned_worker(election, result):
    t = election.try_obtain()
    result.put(None if t is None else t.slot)


def test_spawn_start_method(rundir):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    e = elect.Election("spawned", dir=rundir)
    result = ctx.Queue()
    held = e.obtain()
    p = ctx.Process(target=_spawned_worker, args=(e, result))
    p.start()
    assert result.get(timeout=60) is None, "the spawned process got a held ticket"
    p.join(60)
    held.release()
    p = ctx.Process(target=_spawned_worker, args=(e, result))
    p.start()
    assert result.get(timeout=60) == 0
    p.join(60)
    assert p.exitcode == 0


def test_exit_hook_comes_with_the_first_campaign(rundir):
    """Importing elect registers no atexit hook; a campaign does, and a
    campaign still owning at exit is resigned with its cleanup run."""
    import subprocess
    import sys

    script = f"""
import atexit, elect, threading
before = atexit._ncallbacks()
e = elect.Election("hook", dir={str(rundir)!r})
e.try_obtain().release()
assert atexit._ncallbacks() == before, "import or obtain registered a hook"
won = threading.Event()
c = e.campaign(lambda t: won.set(), lambda ending: print("cleanup", ending.value, flush=True))
assert won.wait(20), "the campaign never won"
assert atexit._ncallbacks() == before + 1, atexit._ncallbacks()
print("exiting", flush=True)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["exiting", "cleanup resigned"], out.stdout
