"""Type stubs of the Rust extension module elect._elect (the package
``elect`` re-exports what users need)."""

import os
import pathlib
from typing import Any, Callable, Optional, Union, final

MAX_TICKETS: int

@final
class Ticket:
    """An obtained ticket: this process holds one slot until ``release()``,
    the end of its ``with`` block, or its garbage collection."""

    @property
    def name(self) -> str: ...
    @property
    def slot(self) -> int:
        """The slot held, 0-based."""
    @property
    def token(self) -> int:
        """The fencing token: larger than every earlier acquisition's."""
    @property
    def path(self) -> pathlib.Path:
        """The slot file."""
    @property
    def is_held(self) -> bool:
        """False after release, or once the slot file was removed."""
    def release(self) -> None:
        """Releases the slot (a fork child that inherited the ticket only
        closes its own descriptors: the parent keeps the slot)."""
    def __enter__(self) -> "Ticket": ...
    def __exit__(self, *args: object) -> bool: ...

@final
class CampaignTicket:
    """The ticket handed to a campaign's ``on_obtain``; the campaign owns
    the slot, ``release()`` ends ownership."""

    @property
    def name(self) -> str: ...
    @property
    def slot(self) -> int: ...
    @property
    def token(self) -> int: ...
    @property
    def is_held(self) -> bool: ...
    def release(self) -> None: ...

@final
class Campaign:
    """A campaign running on a thread of its own."""

    def resign(self) -> None:
        """Stops competing; returns once the cleanup (if owning) has run."""
    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits until the campaign ends by itself; whether it did."""
    @property
    def is_finished(self) -> bool: ...

@final
class Wait:
    def fileno(self) -> int: ...
    def result(self) -> Ticket: ...
    def cancel(self) -> None: ...

class Election:
    def __new__(
        cls,
        name: str,
        tickets: Optional[int] = None,
        dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        label: Optional[str] = None,
    ) -> "Election": ...
    @property
    def name(self) -> str: ...
    @property
    def tickets(self) -> int: ...
    @property
    def dir(self) -> pathlib.Path: ...
    def try_obtain(self) -> Optional[Ticket]:
        """A free ticket if nobody waits before us, else None; never waits."""
    def obtain(self, timeout: Optional[float] = None) -> Ticket:
        """Waits in line up to ``timeout`` seconds (None: as long as it
        takes); raises ``elect.Timeout`` (a TimeoutError) if none came.
        Ctrl-C ends the wait with KeyboardInterrupt."""
    def _start_wait(self, timeout: Optional[float] = None) -> Wait: ...
    def _campaign(
        self,
        on_obtain: Callable[[CampaignTicket], Any],
        cleanup: Callable[[str], Any],
        requeue: bool = False,
        check_every: float = 0.25,
    ) -> Campaign: ...
    def _status_json(self) -> str: ...

def _status_json(
    dir: Optional[Union[str, "os.PathLike[str]"]] = None, name: Optional[str] = None
) -> str: ...
