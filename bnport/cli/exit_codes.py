"""bnport's exit codes: what CI jobs and scripts branch on (standard library only)."""

EXIT_OK = 0  #: every check passed
EXIT_DRIFT = 1  #: the models drift: a comparison failed or was not made
EXIT_USAGE = 2  #: bad input or usage (one line on stderr, no traceback)
EXIT_INTERRUPTED = 130  #: interrupted (Ctrl-C)
