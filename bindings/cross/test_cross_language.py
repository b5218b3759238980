"""One resource, every language: Node, Python and `elect run` share one
resource and one run directory; at most N hold it at once; `elect status`
shows all of them.

Run from the repository root with the Python binding's venv (after
`bash bindings/node/ci.sh`, `bash bindings/python/ci.sh` and
`cargo build --features cli`):

    bindings/python/.venv/bin/python -m pytest bindings/cross

Needs `node` on PATH, the built Node package (bindings/node/elect.node), the
`elect` wheel in the running interpreter and the elect binary: $ELECT_BIN,
else target/debug/elect under the repository root.

Every process is real and every kill a real signal. The test waits for
events (lines the participants print) where there are events, and polls
`elect status --json` up to a deadline where the state has none (a process
that has started waiting in line).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NODE_PACKAGE = ROOT / "bindings" / "node"
DEADLINE = 20.0  # seconds: the longest any awaited event or state may take

# Test 2: the tickets every participant asks for, and the most holders at
# once that the test accepts.
TICKETS = 2
LIMIT = TICKETS  # at most N hold at once
ROUNDS = 40


def elect_bin() -> str:
    path = Path(os.environ.get("ELECT_BIN", ROOT / "target" / "debug" / "elect"))
    if not path.is_absolute():
        path = ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the elect binary {path} is missing: build it with `cargo build --features cli` "
            "in the repository root, or set ELECT_BIN to an elect binary",
            pytrace=False,
        )
    return str(path)


def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 18 or later", pytrace=False)
    if not (NODE_PACKAGE / "elect.node").is_file():
        pytest.fail(
            f"{NODE_PACKAGE / 'elect.node'} is not built: run `bash bindings/node/ci.sh` "
            "(or `npm ci` in bindings/node)",
            pytrace=False,
        )
    return node


def python_bin() -> str:
    try:
        import elect  # noqa: F401
    except ImportError:
        pytest.fail(
            f"{sys.executable} has no `elect` module: run `bash bindings/python/ci.sh` and run "
            "pytest with bindings/python/.venv/bin/python",
            pytrace=False,
        )
    return sys.executable


class Participant:
    """A child process whose stdout lines are read by a thread into a queue."""

    def __init__(self, argv: list[str], stdin: bool = True, **kwargs: Any) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def line(self, what: str) -> str:
        """The next line of stdout, within the deadline."""
        try:
            line = self.lines.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(f"{self.argv[:3]} (pid {self.pid}) printed no line within {DEADLINE} s; waiting for {what}") from None
        if line is None:
            self.proc.wait(timeout=DEADLINE)
            raise AssertionError(
                f"{self.argv[:3]} (pid {self.pid}) ended (status {self.proc.returncode}) before {what}; "
                f"stderr: {''.join(self.stderr)}"
            )
        return line

    def held(self) -> tuple[int, int]:
        """Waits for `HELD <slot> <token>`; returns (slot, token)."""
        line = self.line("HELD")
        parts = line.split()
        assert parts[0] == "HELD" and len(parts) == 3, f"expected 'HELD <slot> <token>', got {line!r}"
        return int(parts[1]), int(parts[2])

    def printed_nothing(self) -> bool:
        return self.lines.empty()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=DEADLINE * 6)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv[:3]} (pid {self.pid}) did not end") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(autouse=True)
def tools() -> None:
    """Each test first checks that node, the Node package, the Python module
    and the elect binary are there, and fails saying what to run if not."""
    elect_bin()
    node_bin()
    python_bin()


@pytest.fixture
def run_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="elect-cross-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs() -> Iterator[list[Participant]]:
    """Every participant a test starts; any still running at its end is killed."""
    started: list[Participant] = []
    yield started
    for p in started:
        p.kill()


def status(d: str, name: str) -> Optional[dict[str, Any]]:
    """`elect status --dir D NAME --json`: the resource, or None if never used."""
    out = subprocess.run(
        [elect_bin(), "status", "--dir", d, name, "--json"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert out.returncode == 0, f"elect status failed ({out.returncode}): {out.stderr}"
    doc = json.loads(out.stdout)
    found = [r for r in doc["resources"] if r["name"] == name]
    return found[0] if found else None


def wait_status(d: str, name: str, cond: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Polls `elect status` until `cond` holds of the resource, up to the deadline."""
    end = time.monotonic() + DEADLINE
    last = None
    while time.monotonic() < end:
        last = status(d, name)
        if last is not None and cond(last):
            return last
        time.sleep(0.01)
    raise AssertionError(f"within {DEADLINE} s, `elect status` never showed {what}; last: {json.dumps(last)}")


def start_node(procs: list[Participant], *args: Any) -> Participant:
    p = Participant([node_bin(), str(HERE / "participant.js"), *map(str, args)])
    procs.append(p)
    return p


def start_python(procs: list[Participant], *args: Any) -> Participant:
    p = Participant([python_bin(), str(HERE / "participant.py"), *map(str, args)])
    procs.append(p)
    return p


def test_hand_over_across_languages_in_arrival_order(run_dir: str, procs: list[Participant]) -> None:
    name = "relay"
    node = start_node(procs, "hold", run_dir, name, 1, "node")
    _, node_token = node.held()

    python = start_python(procs, "hold", run_dir, name, 1, "python")
    wait_status(run_dir, name, lambda r: r.get("waiters") == [python.pid], f"python (pid {python.pid}) waiting")

    shell = Participant(
        [elect_bin(), "run", "--dir", run_dir, "-t", "1", "--label", "shell", name, "--",
         "sh", "-c", 'echo HELD "$ELECT_SLOT" "$ELECT_TOKEN"; read -r x || true'],
    )  # fmt: skip
    procs.append(shell)
    st = wait_status(
        run_dir, name, lambda r: r.get("waiters") == [python.pid, shell.pid], f"elect run (pid {shell.pid}) waiting after python"
    )
    assert st["tickets"] == 1
    [slot] = st["slots"]
    assert slot["held"] is True
    assert (slot["slot"], slot["pid"], slot["label"], slot["token"]) == (0, node.pid, "node", node_token)
    assert st["waiters"] == [python.pid, shell.pid]

    # The holder dies: the first in line, Python, takes over; elect still waits.
    os.kill(node.pid, signal.SIGKILL)
    python_slot, python_token = python.held()
    assert node.proc.wait(timeout=DEADLINE) == -signal.SIGKILL
    assert python_slot == 0
    assert python_token > node_token
    assert shell.printed_nothing(), "elect run's command ran while Python held the only ticket"
    st = status(run_dir, name)
    assert st is not None
    assert (st["slots"][0]["pid"], st["slots"][0]["label"], st["slots"][0]["token"]) == (python.pid, "python", python_token)
    assert st["waiters"] == [shell.pid]
    assert shell.printed_nothing(), "elect run's command ran while Python held the only ticket"

    # Python releases: elect's command runs, with the next token.
    python.send("release\n")
    shell_slot, shell_token = shell.held()
    assert python.line("RELEASED") == "RELEASED"
    assert python.wait() == 0
    assert shell_slot == 0
    assert shell_token > python_token
    st = status(run_dir, name)
    assert st is not None
    slot = st["slots"][0]
    assert slot["held"] is True
    assert (slot["pid"], slot["label"], slot["token"]) == (shell.pid, "shell", shell_token)
    command_pid = slot.get("command_pid")
    assert isinstance(command_pid, int) and command_pid != shell.pid, f"no command_pid of elect's command: {slot}"
    ppid = int(Path(f"/proc/{command_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid == shell.pid, f"command_pid {command_pid} is not elect's child (its parent is {ppid})"
    assert st.get("waiters") == []

    shell.close_stdin()
    assert shell.wait() == 0, f"elect run: {''.join(shell.stderr)}"
    assert node_token < python_token < shell_token
    st = wait_status(run_dir, name, lambda r: not r["slots"][0]["held"], "the slot free after elect run exited")


SHELL_LOOP = r"""
bin=$1 dir=$2 name=$3 tickets=$4 rounds=$5 limit=$6 inner=$7
me=shell-$$
r=0
while [ "$r" -lt "$rounds" ]; do
    "$bin" run --quiet --dir "$dir" -t "$tickets" --label "$me" "$name" -- \
        sh -c "$inner" inner "$dir" "$me" "$r" "$limit" || exit $?
    r=$((r + 1))
done
echo DONE
"""

# The command elect runs in each round of a shell loop: $1 dir, $2 who,
# $3 round, $4 limit.
SHELL_ROUND = r"""
set -C
m="$1/markers/$2-$3"
: > "$m" || exit 90
n=$(ls "$1/markers" | wc -l)
if [ "$n" -gt "$4" ]; then
    echo "$2 round $3: $n holders: $(ls "$1/markers" | tr '\n' ' ')" >> "$1/violations"
fi
sleep 0.002
rm "$m"
echo "$ELECT_TOKEN" >> "$1/tokens/$2"
"""


def test_at_most_n_hold_at_once_across_languages(run_dir: str, procs: list[Participant]) -> None:
    name = "pool"
    os.mkdir(os.path.join(run_dir, "markers"))
    os.mkdir(os.path.join(run_dir, "tokens"))
    loop_args = (run_dir, name, TICKETS)
    started = [
        start_node(procs, "loop", *loop_args, "node", ROUNDS, LIMIT),
        start_node(procs, "loop", *loop_args, "node", ROUNDS, LIMIT),
        start_python(procs, "loop", *loop_args, "python", ROUNDS, LIMIT),
        start_python(procs, "loop", *loop_args, "python", ROUNDS, LIMIT),
    ]
    for _ in range(2):
        p = Participant(
            ["sh", "-c", SHELL_LOOP, "loop", elect_bin(), run_dir, name, str(TICKETS), str(ROUNDS), str(LIMIT), SHELL_ROUND],
            stdin=False,
        )
        procs.append(p)
        started.append(p)

    for p in started:
        assert p.wait() == 0, f"{p.argv[:3]} (pid {p.pid}) failed: {''.join(p.stderr)}"
        assert p.line("DONE") == "DONE"

    violations = Path(run_dir, "violations")
    assert not violations.exists(), f"more than {LIMIT} held at once:\n{violations.read_text()}"
    assert os.listdir(os.path.join(run_dir, "markers")) == []

    files = sorted(Path(run_dir, "tokens").iterdir())
    who = [f.name.split("-")[0] for f in files]
    assert sorted(who) == ["node", "node", "python", "python", "shell", "shell"], who
    all_tokens: list[int] = []
    for f in files:
        tokens = [int(t) for t in f.read_text().split()]
        assert len(tokens) == ROUNDS, f"{f.name} finished {len(tokens)} of {ROUNDS} rounds"
        assert tokens == sorted(set(tokens)), f"{f.name}: its tokens do not strictly increase: {tokens}"
        all_tokens += tokens
    assert len(set(all_tokens)) == len(all_tokens) == 6 * ROUNDS, "a token was handed out twice"

    st = status(run_dir, name)
    assert st is not None and st["tickets"] == TICKETS
    assert not any(s["held"] for s in st["slots"])


def test_disagreeing_tickets_refused_across_languages(run_dir: str, procs: list[Participant]) -> None:
    name = "agree"
    python = start_python(procs, "hold", run_dir, name, 2, "python")
    python.held()

    node = start_node(procs, "try", run_dir, name, 3, "node")
    result = json.loads(node.line("the result of tryObtain"))
    assert node.wait() == 0
    assert result["ok"] is False, f"Node obtained a ticket with tickets=3 while Python holds with 2: {result}"
    assert result["code"] == "ELECT_TICKET_MISMATCH", result
    assert "in use with 2 ticket(s), but 3 were asked for" in result["message"], result["message"]

    cli = subprocess.run(
        [elect_bin(), "run", "--dir", run_dir, "-t", "3", "-n", name, "--", "true"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert cli.returncode == 125, f"elect run -t 3 exited {cli.returncode}: {cli.stderr}"
    assert cli.stderr.startswith("elect:") and "in use with 2 ticket(s), but 3 were asked for" in cli.stderr, cli.stderr

    st = status(run_dir, name)
    assert st is not None and st["tickets"] == 2
    held = [s for s in st["slots"] if s["held"]]
    assert [s["pid"] for s in held] == [python.pid]

    python.send("release\n")
    assert python.line("RELEASED") == "RELEASED"
    assert python.wait() == 0
