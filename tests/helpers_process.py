"""Waiting on a subprocess the test will interrupt (kill -9, Ctrl-C) at a chosen point.

    from helpers_process import wait_until  # tests/ is on sys.path under pytest
    wait_until(lambda: marker.exists(), proc, log, "a checkpoint was written")
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str,
               timeout: float = 180.0) -> None:
    """Poll ``condition`` until it holds; fail with the process' log if it ends first, or
    if ``what`` has not happened within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}:\n"
                        f"{log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"not in {timeout:g} s: {what}")
        time.sleep(0.02)
