import pytest

from _proc import Child


@pytest.fixture
def rundir(tmp_path):
    """A private run directory (the default one is shared with other users
    of elect on the machine)."""
    d = tmp_path / "run"
    return d


@pytest.fixture
def children():
    """Forked children, killed and reaped after the test."""
    made: list[Child] = []

    def fork(body):
        c = Child(body)
        made.append(c)
        return c

    yield fork
    for c in made:
        c.close()
