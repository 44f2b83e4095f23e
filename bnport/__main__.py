"""``python -m bnport``."""

from bnport.cli import run

run()
