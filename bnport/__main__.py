"""``python -m bnport``."""

from bnport.cli.main import run

run()
