"""Shared helpers of the benchmark scripts."""
import os
import subprocess
import sys
import time


def timed(cmd, **kw):
    """(wall seconds, peak RSS bytes) of one child process run to completion; exits on failure."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed (%d): %s" % (os.waitstatus_to_exitcode(status), " ".join(cmd)))
    return time.monotonic() - t0, ru.ru_maxrss * 1024
