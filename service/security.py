"""API keys (stored as SHA-256 hashes) and a per-key request rate limit.

Keys come from settings (``RAGTUNE_SERVICE__API_KEYS``) and/or a keys file of hex SHA-256 hashes,
one per line, so the file never holds a usable key. With no keys configured the API is open (a
laptop default); with keys, every ``/v1`` request needs ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from fastapi import Request

from service.errors import ApiError


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_key_hashes(keys: Iterable[str], keys_file: Path | None) -> list[str]:
    hashes = [hash_key(k) for k in keys if k]
    if keys_file is not None:
        for number, line in enumerate(keys_file.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if line:
                if len(line) != 64 or any(c not in "0123456789abcdef" for c in line.lower()):
                    # Name the line, never its content: a bad line is often a plaintext key.
                    raise ValueError(
                        f"{keys_file.name}: line {number} is not a SHA-256 hex digest (store "
                        "sha256(key), never the key itself)"
                    )
                hashes.append(line.lower())
    return hashes


class RateLimiter:
    """Token bucket per key: ``per_minute`` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed; otherwise seconds until the next request would be."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class Guard:
    """The dependency every ``/v1`` route runs: authenticate, then rate-limit by key."""

    def __init__(self, key_hashes: list[str], per_minute: int) -> None:
        self.key_hashes = key_hashes
        self.limiter = RateLimiter(per_minute) if per_minute > 0 else None

    def __call__(self, request: Request) -> str:
        who = self._authenticate(request)
        if self.limiter is not None:
            wait = self.limiter.take(who)
            if wait > 0:
                raise ApiError(
                    429,
                    "rate limit exceeded; retry later",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return who

    def _authenticate(self, request: Request) -> str:
        if not self.key_hashes:
            return request.client.host if request.client else "anonymous"
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401, "missing API key: send 'Authorization: Bearer KEY'", code="invalid_api_key"
            )
        presented = hash_key(key.strip())
        for known in self.key_hashes:
            if hmac.compare_digest(presented, known):
                return known[:12]
        raise ApiError(401, "invalid API key", code="invalid_api_key")
