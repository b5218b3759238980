"""Forked child processes that talk to the test through pipes, so that the
test waits for events (a line from a child) rather than sleeping."""

from __future__ import annotations

import os
import select
import signal
import time
import traceback
from typing import Callable

# Generous: a shared 2-core CI machine can stall for a while.
DEADLINE = 20.0


class Child:
    """A forked process running ``body(send)``; ``send(text)`` writes a
    line the test reads with ``expect``. The child ends with os._exit:
    status 0 if ``body`` returned, 70 if it raised (traceback on stderr)."""

    def __init__(self, body: Callable[[Callable[[str], None]], None]):
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child
            os.close(r)
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)

                def send(text: str) -> None:
                    os.write(w, (text + "\n").encode())

                body(send)
            except BaseException:
                traceback.print_exc()
                code = 70
            finally:
                os._exit(code)
        os.close(w)
        self.fd = r
        self.buf = b""
        self.status: int | None = None

    def expect(self, prefix: str = "", timeout: float = DEADLINE) -> str:
        """The child's next line, which must start with ``prefix``."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"child {self.pid}: no line within {timeout} s (expected {prefix!r})")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    raise AssertionError(f"child {self.pid} ended without the line {prefix!r}; status {self.wait()}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode()
        assert text.startswith(prefix), f"child {self.pid} said {text!r}, expected {prefix!r}"
        return text

    def silent_for(self, seconds: float) -> bool:
        """Whether the child says nothing for ``seconds`` (for checks that
        something does not happen)."""
        if b"\n" in self.buf:
            return False
        ready, _, _ = select.select([self.fd], [], [], seconds)
        return not ready

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        """The child's exit status (negative: killed by that signal)."""
        if self.status is not None:
            return self.status
        end = time.monotonic() + timeout
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                os.close(self.fd)
                return self.status
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                raise AssertionError(f"child {self.pid} did not end within {timeout} s")
            time.sleep(0.01)

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


def until(what: Callable[[], object], message: str, timeout: float = DEADLINE) -> object:
    """Polls ``what`` (a kernel-side fact, such as the status' list of
    waiters, that no event announces) until it is true."""
    end = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {message}")
        time.sleep(0.005)


def block_forever() -> None:
    """Sleeps until killed, without a timer."""
    r, _w = os.pipe()
    os.read(r, 1)


def waiters(election) -> list:
    """The pids waiting in line for the election's resource, as the kernel
    shows them."""
    return election.status().get("waiters") or []
