"""A Python participant of the cross-language test (test_cross_language.py).

Run with the interpreter that has the `elect` wheel installed
(bindings/python/.venv/bin/python).

    participant.py hold DIR NAME TICKETS LABEL
        waits for a ticket, prints "HELD <slot> <token>", releases on a line
        on stdin (or at its end), prints "RELEASED" and exits 0.
    participant.py loop DIR NAME TICKETS LABEL ROUNDS LIMIT
        ROUNDS times: obtain; create DIR/markers/python-<pid>-<round> with
        O_EXCL; if more than LIMIT markers exist, append a line to
        DIR/violations; hold about 2 ms; remove the marker; append the token
        to DIR/tokens/python-<pid>; release. Prints "DONE" and exits 0.
"""

import os
import sys
import time

import elect


def say(line: str) -> None:
    print(line, flush=True)


def hold(election: elect.Election) -> None:
    with election.obtain() as ticket:
        say(f"HELD {ticket.slot} {ticket.token}")
        sys.stdin.readline()
    say("RELEASED")


def loop(election: elect.Election, dir: str, rounds: int, limit: int) -> None:
    markers = os.path.join(dir, "markers")
    me = f"python-{os.getpid()}"
    tokens = os.path.join(dir, "tokens", me)
    for round in range(rounds):
        with election.obtain() as ticket:
            marker = os.path.join(markers, f"{me}-{round}")
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            present = os.listdir(markers)
            if len(present) > limit:
                with open(os.path.join(dir, "violations"), "a") as f:
                    f.write(f"{me} round {round}: {len(present)} holders: {' '.join(present)}\n")
            time.sleep(0.002)
            os.unlink(marker)
            with open(tokens, "a") as f:
                f.write(f"{ticket.token}\n")
    say("DONE")


def main() -> None:
    mode, dir, name, tickets, label, *rest = sys.argv[1:]
    election = elect.Election(name, tickets=int(tickets), dir=dir, label=label)
    if mode == "hold":
        hold(election)
    elif mode == "loop":
        loop(election, dir, int(rest[0]), int(rest[1]))
    else:
        sys.exit(f"participant.py: unknown mode {mode}; give hold or loop")


if __name__ == "__main__":
    main()
