"""Per-user command rate limit: a sliding window, shared by every replica when REDIS_URL is set.

Without Redis each process counts for itself (two replicas let a person send twice the limit).
With Redis one atomic script keeps the window per user for the whole deployment, and a Redis
that does not answer within 200 ms falls back to this process's own count: the limit is a
guard against runaway scripts, never a reason to refuse a command at 3 a.m.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Any

log = logging.getLogger(__name__)

# KEYS[1] = the user's window; ARGV = window seconds, limit, a unique member. Redis' own clock,
# so replicas with skewed clocks agree. Returns "0" when counted, else the seconds to wait.
_WINDOW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(window - (now - tonumber(oldest[2])))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float = 60.0, *, redis_url: str = "", namespace: str = ""):
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._redis: Any = None
        self._script: Any = None
        self._prefix = f"taisun:{hashlib.sha256(namespace.encode()).hexdigest()[:12]}:ratelimit:"
        self._warned_at = 0.0
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
            self._script = self._redis.register_script(_WINDOW_SCRIPT)

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def allow(self, key: str) -> float:
        """0 when allowed (and counted); otherwise the seconds until the next command is allowed."""
        if self._script is not None:
            try:
                wait = float(
                    self._script(keys=[self._prefix + key], args=[self.window, self.limit, uuid.uuid4().hex])
                )
                return max(wait, 0.0)
            except Exception as e:  # Redis down or slow: count here instead, and say so now and then
                self._warn(e)
        return self._allow_here(key)

    def _allow_here(self, key: str) -> float:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] >= self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return self.window - (now - hits[0])
            hits.append(now)
            return 0.0

    def _warn(self, e: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning(
                "rate limit: Redis did not answer; counting in this process only",
                extra={"error": repr(e)[:200]},
            )
