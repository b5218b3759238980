"""The exceptions elect raises. Each message is the library's: it names the
bad value or path and says what to do about it."""

from __future__ import annotations

__all__ = ["Error", "InvalidArgument", "TicketMismatch", "UnsafeDirectory", "Timeout"]


class Error(Exception):
    """Any failure that elect reports (an I/O error on the run directory,
    a damaged token file, ...)."""


class InvalidArgument(Error, ValueError):
    """A bad resource name, number of tickets or timeout. Nothing on disk
    was touched."""


class TicketMismatch(Error):
    """Live participants of the resource use another number of tickets."""


class UnsafeDirectory(Error, PermissionError):
    """The run directory, or a file in it, is not safe to use (owned by
    another user, writable by others, a symbolic link, ...)."""


class Timeout(Error, TimeoutError):
    """No ticket came within the timeout given to ``obtain``."""
