"""Per-client token buckets: what the local gateway puts in front of the unauthenticated /auth/* routes.

API Gateway throttles per stage and WAF rate-limits per IP in AWS; on one machine a bucket per client
IP does both jobs. A refused request is told how long to wait (Retry-After).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from reelay.api.routes import Throttle


@dataclass
class _Bucket:
    tokens: float
    at: float


class ClientBuckets:
    """One token bucket per client key, thread-safe; the least recently seen clients are forgotten past
    ``max_clients`` (a forgotten client starts again with a full bucket)."""

    def __init__(
        self, throttle: Throttle, *, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000
    ) -> None:
        if throttle.rate_per_second <= 0 or throttle.burst < 1:
            raise ValueError("a throttle needs a positive rate and a burst of at least 1")
        self.throttle = throttle
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> int:
        """Take a token for ``client``: 0 when allowed, else the whole seconds until one is available."""
        now = self._clock()
        rate, burst = self.throttle.rate_per_second, float(self.throttle.burst)
        with self._lock:
            bucket = self._buckets.pop(client, None) or _Bucket(tokens=burst, at=now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            self._buckets[client] = bucket
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0
            return max(1, math.ceil((1 - bucket.tokens) / rate))
