"""Admission control: a token bucket per API key, and a bounded generation queue.

Both answer at once (no request waits on a lock it cannot get): a client over its
rate gets 429 with ``Retry-After``; a question arriving when every generation slot is
busy and the waiting line is full gets 503. Retrieval never takes a generation slot,
so it stays fast while answers are being generated.
"""

from __future__ import annotations

import math
import threading
import time


class TokenBuckets:
    """``rate`` requests per second per key, bursts up to ``burst``; ``rate <= 0``: unlimited."""

    def __init__(self, rate: float, burst: int | None = None, max_keys: int = 10_000):
        self.rate = float(rate)
        self.burst = float(burst if burst else max(1.0, math.ceil(self.rate)))
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()
        self._max_keys = max_keys

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self._max_keys:  # anonymous clients by address: forget the oldest
                oldest = min(self._buckets, key=lambda k: self._buckets[k][1])
                self._buckets.pop(oldest, None)
            return (1.0 - tokens) / self.rate


class GenerationGate:
    """At most ``slots`` generations at once and ``queue`` more waiting; beyond: refuse."""

    def __init__(self, slots: int, queue: int):
        self.slots, self.queue = max(1, int(slots)), max(0, int(queue))
        self._admitted = 0
        self._running = 0
        self._lock = threading.Lock()
        self._semaphore = threading.Semaphore(self.slots)

    def admit(self) -> bool:
        with self._lock:
            if self._admitted >= self.slots + self.queue:
                return False
            self._admitted += 1
            return True

    def acquire(self, timeout: float) -> bool:
        """Wait for a slot (after :meth:`admit`); False after ``timeout`` (the caller must :meth:`leave`)."""
        if not self._semaphore.acquire(timeout=timeout):
            return False
        with self._lock:
            self._running += 1
        return True

    def release(self) -> None:
        with self._lock:
            self._running -= 1
        self._semaphore.release()

    def leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running


__all__ = ["TokenBuckets", "GenerationGate"]
