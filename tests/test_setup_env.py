"""scripts/setup-env says what it does while it installs (it used to run silent for minutes), on stderr only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"

pytestmark = pytest.mark.skipif(Path(sys.prefix).resolve() != VENV.resolve(),
                                reason="re-runs the install of the pinned .venv, which this interpreter is not")


@pytest.fixture
def stale_stamp():
    """The install stamp made stale, so setup-env installs again (everything is there: pip only checks), and put
    back afterwards."""
    stamp = VENV / ".bnport-stamp"
    kept = stamp.read_text()
    stamp.write_text("stale\n")
    yield
    assert stamp.read_text() == kept, "setup-env wrote a different stamp for the same pyproject and constraints"


def test_the_install_is_announced_on_stderr_and_the_venv_alone_on_stdout(stale_stamp):
    done = subprocess.run(["bash", str(ROOT / "scripts" / "setup-env"), "test"], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, BNPORT_VENV=str(VENV)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(VENV)  # the other scripts read it with tail -n 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("setup-env: installing the pinned stack (.[test]) into")
    assert lines[-1].startswith("setup-env: installed in ") and len(lines) == 2  # no pip chatter in a log


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux `script` (a pseudo-terminal) is not installed")
def test_on_a_terminal_one_line_follows_pip(stale_stamp):
    command = f"BNPORT_VENV={VENV} bash {ROOT / 'scripts' / 'setup-env'} test"
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout
    assert b"\r\x1b[K  Successfully installed bnport" in done.stdout  # rewritten in place, one line
    assert b"setup-env: installed in " in done.stdout
