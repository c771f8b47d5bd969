"""A rate-limited work queue in the manner of client-go's workqueue: each key at most once, due at a
time; failures back off exponentially from `base` to `cap` (5 ms doubling, like client-go's
DefaultControllerRateLimiter's per-item part). Used by the lab's KServe controller."""
from __future__ import annotations

import heapq
import threading
import time


class WorkQueue:
    def __init__(self, base: float = 0.005, cap: float = 30.0):
        self.base, self.cap = base, cap
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._cv = threading.Condition()
        self.closed = False

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def add(self, key: str, delay: float = 0.0) -> None:
        with self._cv:
            due = time.monotonic() + delay
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cv.notify()

    def add_rate_limited(self, key: str) -> float:
        with self._cv:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self.base * (2 ** n), self.cap)
        self.add(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cv:
            self._failures.pop(key, None)

    def get(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        with self._cv:
            while not self.closed:
                now = time.monotonic()
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded entry
                if self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    return key
                wait = end - now
                if self._heap:
                    wait = min(wait, self._heap[0][0] - now)
                if wait <= 0 and now >= end:
                    return None
                self._cv.wait(max(wait, 0.001))
            return None
