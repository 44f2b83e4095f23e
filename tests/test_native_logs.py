"""The command line keeps TensorFlow's native log lines (written to fd 2, past any log level) off stderr, and
passes everything else on at once, progress lines rewritten in place included."""

from __future__ import annotations

import subprocess
import sys

from bnport.cli.native_logs import NATIVE

WRITER = r"""
import os, sys, time
from bnport.cli import native_logs

with native_logs.filtered():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"I0000 00:00:1796237151.773298    4792 devices.cc:67] Number of eligible GPUs: 0\n")
    os.write(2, b"\r  porting [###...] 3/25")     # a progress line without a newline
    time.sleep(0.5)
    print("PARTIAL SEEN" if b"porting" in open(sys.argv[1], "rb").read() else "PARTIAL HELD", flush=True)
    os.write(2, b"E0000 00:00:1796237151.9 4792 cuda_platform.cc:52] failed call to cuInit\n")
    print("bnport: error: the user's message", file=sys.stderr)
    os.write(2, b"I0000 is not a log line: no time stamp\nthe last line without a newline")
"""


def test_native_lines_are_dropped_and_the_rest_passes(tmp_path):
    err = tmp_path / "err"
    with err.open("wb") as sink:
        done = subprocess.run([sys.executable, "-c", WRITER, str(err)], stderr=sink, stdout=subprocess.PIPE,
                              text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == "PARTIAL SEEN"  # not held back until a newline comes
    assert err.read_bytes() == (b"\r  porting [###...] 3/25bnport: error: the user's message\n"
                                b"I0000 is not a log line: no time stamp\nthe last line without a newline")


def test_the_pattern_matches_the_lines_tensorflow_writes():
    seen = [b"I0000 00:00:1796231224.456858    2952 port.cc:153] oneDNN custom operations are on.",
            b"E0000 00:00:1796231238.760579    3042 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
            b"W0000 00:00:1796237151.773298    4792 cpu_feature_guard.cc:227] This TensorFlow binary is optimized"]
    assert all(NATIVE.match(line) for line in seen)
    assert not NATIVE.match(b"bnport: error: I0000 00:00:1.0 1 x.cc:1] quoted inside a message")
