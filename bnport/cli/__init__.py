"""bnport's command line. ``bnport.cli:run`` is the console script; parsing imports no framework."""

from bnport.cli.main import main, run

__all__ = ["main", "run"]
