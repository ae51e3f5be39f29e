"""Progress bars that suit where they are written.

On a terminal a bar redraws one line in place. Written to a file or a pipe (a CI log, ``rag
ingest … 2> ingest.log``), those redraws become a run of ``\\r`` frames and cursor-up codes
on one endless line. So off a terminal a bar writes a plain line at most every
:data:`LOG_INTERVAL` seconds, and its final state when it closes.
"""

from __future__ import annotations

import io
import re
import sys

LOG_INTERVAL = 10.0  # seconds between a bar's lines in a log
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A bar's clock and rate ("00:05<00:00", "26.61chunk/s", "1.47s/file"): a frame that differs
# from the last only in them (a bar's closing redraw) says nothing new.
_CLOCK = re.compile(r"(?<![\d.])(?:\d+:\d+(?::\d+)?|\d+(?:\.\d+)?\s*[A-Za-z]+/s|\d+(?:\.\d+)?s/[A-Za-z]+)")


class _Lines(io.TextIOBase):
    """A stream that turns a bar's redraws into whole lines: escape codes dropped, blank
    frames (a bar clearing itself) and repeats (but for the clock) skipped."""

    def __init__(self, stream):
        self._stream = stream
        self._last = ""

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for frame in re.split(r"[\r\n]", _ANSI.sub("", text)):
            frame = frame.strip()
            key = _CLOCK.sub("", frame)
            if frame and key != self._last:
                self._stream.write(frame + "\n")
                self._last = key
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def on_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or a fake stream
        return False


def progress_bar(iterable=None, *, stream=None, **options):
    """A ``tqdm`` bar on ``stream`` (stderr): drawn in place on a terminal, plain lines
    elsewhere. ``options`` are tqdm's (``total``, ``desc``, ``unit``, ``disable``, …)."""
    from tqdm.auto import tqdm

    stream = sys.stderr if stream is None else stream
    if on_terminal(stream):
        return tqdm(iterable, file=stream, **options)
    # Off a terminal: a line every LOG_INTERVAL seconds, and the last state kept at close.
    options.update(mininterval=LOG_INTERVAL, leave=True, dynamic_ncols=False, ascii=True, position=None)
    return tqdm(iterable, file=_Lines(stream), **options)


__all__ = ["progress_bar", "on_terminal", "LOG_INTERVAL"]
