"""asyncio waits and campaigns."""

import asyncio
import os
import queue
import shutil
import threading

import pytest

import elect
from _proc import DEADLINE, until, waiters


def test_obtain_async(rundir):
    e = elect.Election("aio", dir=rundir)

    async def main():
        held = await e.obtain_async(timeout=5)
        assert held.is_held
        waiting = asyncio.create_task(e.obtain_async(timeout=DEADLINE))
        while os.getpid() not in waiters(e):  # the task stands in line
            await asyncio.sleep(0.005)
        assert not waiting.done()
        held.release()
        got = await asyncio.wait_for(waiting, DEADLINE)
        assert got.is_held and got.token > held.token
        got.release()

    asyncio.run(main())


def test_obtain_async_timeout(rundir):
    e = elect.Election("aio", dir=rundir)
    held = e.obtain()

    async def main():
        with pytest.raises(TimeoutError, match="within 0.1 s"):
            await e.obtain_async(timeout=0.1)

    asyncio.run(main())
    held.release()


def test_cancelling_the_task_ends_the_wait_and_holds_nothing(rundir):
    e = elect.Election("aio", dir=rundir)
    held = e.obtain()
    pid = os.getpid()

    async def main():
        task = asyncio.create_task(e.obtain_async())
        while pid not in waiters(e):  # the kernel's list of waiters
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Cancelled means gone from the line at once, not later.
        assert pid not in waiters(e)

    asyncio.run(asyncio.wait_for(main(), DEADLINE))
    held.release()
    t = e.try_obtain()
    assert t is not None, "the cancelled wait holds nothing"
    t.release()


def test_wait_for_timeout_cancels(rundir):
    e = elect.Election("aio", dir=rundir)
    held = e.obtain()

    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(e.obtain_async(), 0.1)

    asyncio.run(main())
    assert waiters(e) == []
    held.release()


def test_campaign_resign_runs_cleanup(rundir):
    e = elect.Election("camp", dir=rundir)
    tickets: "queue.Queue[elect.CampaignTicket]" = queue.Queue()
    endings: "queue.Queue[elect.Ending]" = queue.Queue()
    c = e.campaign(tickets.put, endings.put)
    t = tickets.get(timeout=DEADLINE)
    assert t.is_held and t.slot == 0
    assert e.try_obtain() is None
    assert not c.is_finished
    c.resign()
    assert endings.get_nowait() is elect.Ending.RESIGNED
    assert not t.is_held
    assert c.is_finished
    assert e.try_obtain() is not None


def test_campaign_keeps_the_slot_until_its_cleanup_returns(rundir):
    e = elect.Election("camp", dir=rundir)
    tickets: "queue.Queue[elect.CampaignTicket]" = queue.Queue()
    started, finish = threading.Event(), threading.Event()

    def cleanup(ending: elect.Ending) -> None:
        started.set()
        finish.wait(DEADLINE)

    c = e.campaign(tickets.put, cleanup)
    tickets.get(timeout=DEADLINE)
    resigner = threading.Thread(target=c.resign)
    resigner.start()
    assert started.wait(DEADLINE)
    # The cleanup runs: the old owner may still be stopping its work, so
    # nobody else may own yet.
    assert e.try_obtain() is None
    finish.set()
    resigner.join(DEADLINE)
    assert not resigner.is_alive()
    t = e.try_obtain()
    assert t is not None
    t.release()


def test_campaign_release_ends_it(rundir):
    e = elect.Election("camp", dir=rundir)
    endings: "queue.Queue[elect.Ending]" = queue.Queue()
    c = e.campaign(lambda t: t.release(), endings.put)
    assert c.join(timeout=DEADLINE)
    assert endings.get_nowait() == "released"


def test_campaign_waits_for_its_turn(rundir):
    e = elect.Election("camp", dir=rundir)
    held = e.obtain()
    tickets: "queue.Queue[elect.CampaignTicket]" = queue.Queue()
    endings: "queue.Queue[elect.Ending]" = queue.Queue()
    c = e.campaign(tickets.put, endings.put)
    until(lambda: waiters(e), "the campaign stands in line")
    assert tickets.empty()
    held.release()
    t = tickets.get(timeout=DEADLINE)
    assert t.token > held.token
    c.resign()
    assert endings.get_nowait() == elect.Ending.RESIGNED


def test_campaign_resigned_while_waiting_runs_no_callback(rundir):
    e = elect.Election("camp", dir=rundir)
    held = e.obtain()
    calls = []
    c = e.campaign(calls.append, calls.append)
    until(lambda: waiters(e), "the campaign stands in line")
    c.resign()
    assert calls == [] and waiters(e) == []
    held.release()


def test_campaign_lost(rundir):
    e = elect.Election("camp", dir=rundir)
    endings: "queue.Queue[elect.Ending]" = queue.Queue()
    got: "queue.Queue[elect.CampaignTicket]" = queue.Queue()
    c = e.campaign(got.put, endings.put, check_every=0.01)
    got.get(timeout=DEADLINE)
    shutil.rmtree(rundir / "camp")
    assert endings.get(timeout=DEADLINE) is elect.Ending.LOST
    assert c.join(timeout=DEADLINE)


def test_campaign_requeue(rundir):
    e = elect.Election("camp", dir=rundir)
    got: "queue.Queue[elect.CampaignTicket]" = queue.Queue()
    endings: "queue.Queue[elect.Ending]" = queue.Queue()
    c = e.campaign(got.put, endings.put, requeue=True)
    first = got.get(timeout=DEADLINE)
    first.release()
    assert endings.get(timeout=DEADLINE) == "released"
    second = got.get(timeout=DEADLINE)
    assert second.token > first.token
    c.resign()
    assert endings.get_nowait() == "resigned"


def test_on_obtain_that_raises_releases(rundir, capfd):
    e = elect.Election("camp", dir=rundir)
    endings: "queue.Queue[elect.Ending]" = queue.Queue()

    def boom(ticket):
        raise RuntimeError("owned code failed")

    c = e.campaign(boom, endings.put)
    assert endings.get(timeout=DEADLINE) == "released"
    assert c.join(timeout=DEADLINE)
    assert "owned code failed" in capfd.readouterr().err
    assert e.try_obtain() is not None


def test_resign_from_own_callback_is_refused(rundir):
    e = elect.Election("camp", dir=rundir)
    errors: "queue.Queue[BaseException]" = queue.Queue()
    box = []
    started = queue.Queue()

    def on_obtain(ticket):
        started.get(timeout=DEADLINE)
        try:
            box[0].resign()
        except RuntimeError as err:
            errors.put(err)

    box.append(e.campaign(on_obtain))
    started.put(True)
    assert "cannot wait for itself" in str(errors.get(timeout=DEADLINE))
    box[0].resign()


def test_campaign_does_not_survive_fork(rundir, children):
    e = elect.Election("camp", dir=rundir)
    got: "queue.Queue[elect.CampaignTicket]" = queue.Queue()
    c = e.campaign(got.put)
    got.get(timeout=DEADLINE)

    def child(send):
        try:
            c.resign()
        except RuntimeError as err:
            send(f"refused: {err}")

    assert "did not survive fork" in children(child).expect("refused")
    c.resign()


def test_cancel_after_the_ticket_came_releases_it(rundir):
    """The wait's thread has the ticket, but the task is cancelled before
    the event loop hands it over: nothing stays held."""
    e = elect.Election("aio", dir=rundir)

    async def main():
        task = asyncio.create_task(e.obtain_async())
        await asyncio.sleep(0)  # the task starts its wait
        # Block the loop until the ticket was taken on the wait's thread.
        until(lambda: e.status()["slots"] and e.status()["slots"][0]["held"], "the wait took the ticket")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Released by the cancel itself, not by the wait's object being
        # collected later (it is still referenced here).
        t = e.try_obtain()
        assert t is not None, "the cancel left the ticket held"
        t.release()

    asyncio.run(asyncio.wait_for(main(), DEADLINE))
    t = e.try_obtain()
    assert t is not None, "the ticket of a cancelled wait stayed held"
