"""Token buckets: how fast one report may grow, and how fast reports may be opened.

The collector never looks at who sends (it does not read addresses), so its rates are per
report — a report id is what a submitter holds — and, for opening reports, over everyone.
Buckets use the monotonic clock (bk-003 §4.0: timers must not jump with the wall clock).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class Bucket:
    """*rate* events per second on average, *burst* at once."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> float:
        """Take one token: ``0.0`` when there was one, else the seconds until there will be."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class Buckets:
    """One :class:`Bucket` per key, the *max_keys* most recently used kept (bounded memory).

    A key evicted comes back with a full bucket: the bound on memory is worth more than the
    rate of a report that went quiet while *max_keys* others were busy.
    """

    def __init__(
        self, rate: float, burst: int, *, max_keys: int = 65_536, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """:meth:`Bucket.take` on *key*'s bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self.rate, self.burst, clock=self._clock)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take()
