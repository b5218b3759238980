"""elect: election on one host.

Several processes compete for a named resource; at most N of them (its
*tickets*) own it at once. Each ticket is a flock(2) on a slot file in a run
directory, so the kernel frees a slot the instant its holder dies, however
it dies, and the first waiter takes over in about a millisecond.

    import elect

    with elect.Election("reports", tickets=1).obtain(timeout=30) as ticket:
        print("slot", ticket.slot, "token", ticket.token)

This package is a thin binding of the Rust library ``elect``; every rule
(the line in arrival order, fencing tokens, the agreement on N, fork safety)
is the library's.
"""

from __future__ import annotations

import asyncio
import atexit
import enum
import json
import os
import weakref
from typing import Any, Callable, Optional, Union

from . import _elect
from ._elect import Campaign, CampaignTicket, MAX_TICKETS, Ticket
from ._errors import Error, InvalidArgument, TicketMismatch, Timeout, UnsafeDirectory

__all__ = [
    "Election",
    "Ticket",
    "CampaignTicket",
    "Campaign",
    "Ending",
    "status",
    "Error",
    "InvalidArgument",
    "TicketMismatch",
    "UnsafeDirectory",
    "Timeout",
    "MAX_TICKETS",
]


class Ending(str, enum.Enum):
    """Why a campaign's ownership ended; handed to its cleanup."""

    RELEASED = "released"
    """The owned code called ``ticket.release()`` (or ``on_obtain`` raised)."""
    LOST = "lost"
    """The slot file or its directory was removed or replaced: another
    process may own the resource now. Stop acting as owner."""
    RESIGNED = "resigned"
    """``campaign.resign()`` was called."""


class Election(_elect.Election):
    """A named resource of which at most ``tickets`` holders, in any
    processes of this host, hold a ticket at once.

    ``Election(name, tickets=1, dir=None, label=None)``: ``name`` matches
    ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``; ``dir`` is the run directory
    (default ``$ELECT_DIR``, else ``$XDG_RUNTIME_DIR/elect``, else
    ``/tmp/elect-<uid>``); ``label`` is how ``status`` describes this holder
    (default the command line). Bad values raise ``InvalidArgument`` (a
    ``ValueError``). Cheap: nothing is opened until a ticket is asked for.

    Safe to make in a pre-fork master and use in its forked workers.
    """

    async def obtain_async(self, timeout: Optional[float] = None) -> Ticket:
        """``obtain`` for asyncio: waits on a thread of its own (asleep in
        poll(2)), without blocking the event loop. Raises ``Timeout`` when
        no ticket came within ``timeout`` seconds. Cancelling the task ends
        the wait at once and leaves nothing held: the waiter leaves the
        line, and a ticket that came meanwhile is released."""
        loop = asyncio.get_running_loop()
        wait = self._start_wait(timeout)
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        fd = wait.fileno()
        loop.add_reader(fd, ready)
        try:
            await fut
        except BaseException:
            loop.remove_reader(fd)
            wait.cancel()
            raise
        loop.remove_reader(fd)
        return wait.result()

    def campaign(
        self,
        on_obtain: Callable[[CampaignTicket], Any],
        cleanup: Optional[Callable[[Ending], Any]] = None,
        *,
        requeue: bool = False,
        check_every: float = 0.25,
    ) -> Campaign:
        """Competes in the background, on a thread of the campaign's own.

        When the campaign wins, ``on_obtain(ticket)`` runs on that thread: it
        should start the owned work (a thread, a scheduler) and return.
        Ownership lasts until ``ticket.release()``, until the ticket is lost
        (checked every ``check_every`` seconds), or until ``resign()``; then
        ``cleanup(ending)`` runs with an ``Ending`` and should stop that
        work; after ``resign()`` the slot is freed once it returns, so the
        next owner starts after it (a ticket released by the owned code, or
        lost, is free before). If ``on_obtain`` raises, its traceback is printed and the
        ticket released. With ``requeue=True`` the campaign competes again
        after a release or a loss.

        The thread does not survive fork: start campaigns in the workers,
        after fork, not in a pre-fork master.
        """

        def end(ending: str) -> None:
            if cleanup is not None:
                cleanup(Ending(ending))

        campaign = self._campaign(on_obtain, end, requeue, check_every)
        _track(campaign)
        return campaign

    def status(self) -> dict[str, Any]:
        """This resource as the contract's status JSON shows it:
        ``{"name", "tickets", "slots": [{"slot", "held", "pid", "since",
        "label", "token", ...}], "waiters": [pid, ...]}``. ``held`` is the
        kernel's truth now; asking never takes a ticket."""
        doc: dict[str, Any] = json.loads(self._status_json())
        return doc


# Campaigns still running when the interpreter exits are resigned while
# Python can still run their cleanup, not during its finalization. The exit
# hook is registered with the first campaign, not at import: a program that
# only imports elect, or only obtains, gets no hook it did not ask for.
_campaigns: "weakref.WeakSet[Campaign]" = weakref.WeakSet()
_hooked = False


def _track(campaign: Campaign) -> None:
    global _hooked
    if not _hooked:
        atexit.register(_resign_all)
        _hooked = True
    _campaigns.add(campaign)


def _resign_all() -> None:
    for campaign in list(_campaigns):
        try:
            campaign.resign()
        except Exception:  # started before a fork, or from its own thread
            pass


PathLike = Union[str, "os.PathLike[str]"]


def status(dir: Optional[PathLike] = None, name: Optional[str] = None) -> dict[str, Any]:
    """The status of a run directory as the contract's JSON:
    ``{"dir": ..., "resources": [...]}``; one resource if ``name`` is given
    (an empty list for a name never used)."""
    doc: dict[str, Any] = json.loads(_elect._status_json(dir, name))
    return doc
