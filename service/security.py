"""API keys with roles (stored as SHA-256 hashes), rate limits, and who may bind where.

A key has the ``query`` role (ask: chat, retrieve, feedback, models, serving, template reads) or
the ``admin`` role (everything: documents, template writes, evaluation, promotion, metrics).
Keys come from settings (``service.api_keys`` for query, ``service.admin_keys`` for admin) and a
keys file of ``SHA256HEX [query|admin]`` lines (a bare digest is a query key: the least a line
grants), so the file never holds a usable key. With no keys configured the API is open, which
``ragtune serve`` allows on a loopback address only unless ``service.allow_open`` says otherwise.

Clients are told apart by the TCP peer's address; forwarded headers are believed only from
``service.trusted_proxies`` (see ``proxy_options``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, Request
from pydantic import SecretStr

from service.errors import ApiError
from service.ratelimit import RateLimiter
from service.settings import ServiceSettings

Role = Literal["query", "admin"]
ROLES: tuple[Role, ...] = ("query", "admin")  # each grants what the ones before it do


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_keys(
    query: Iterable[SecretStr], admin: Iterable[SecretStr], keys_file: Path | None
) -> dict[str, Role]:
    """Each accepted key's SHA-256 hex digest and its role (a key given twice keeps the higher)."""
    found: list[tuple[str, Role]] = [(hash_key(k.get_secret_value()), "query") for k in query]
    found += [(hash_key(k.get_secret_value()), "admin") for k in admin]
    if keys_file is not None:
        found += _read_keys_file(keys_file)
    keys: dict[str, Role] = {}
    for digest, role in found:
        if digest != hash_key(""):
            keys[digest] = max(keys.get(digest, role), role, key=ROLES.index)
    return keys


def _read_keys_file(keys_file: Path) -> list[tuple[str, Role]]:
    out: list[tuple[str, Role]] = []
    for number, line in enumerate(keys_file.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        digest, role = fields[0].lower(), fields[1] if len(fields) > 1 else "query"
        # Name the line, never its content: a bad line is often a plaintext key.
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(
                f"{keys_file.name}: line {number} is not a SHA-256 hex digest (store "
                "sha256(key), never the key itself)"
            )
        if len(fields) > 2 or role not in ROLES:
            raise ValueError(
                f"{keys_file.name}: line {number}: after the digest comes one role, "
                "'query' or 'admin' (none: query)"
            )
        out.append((digest, role))  # type: ignore[arg-type]  # checked against ROLES above
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to, it is not known to be loopback


def bind_refusal(host: str, svc: ServiceSettings) -> str | None:
    """Why ``ragtune serve`` must not bind ``host`` (None: it may): an open API off loopback."""
    if is_loopback(host) or svc.allow_open:
        return None
    if load_keys(svc.api_keys, svc.admin_keys, svc.keys_file):
        return None
    return (
        f"refusing to serve {host} with no API keys: anyone who reaches it could read, upload "
        "and delete documents. Set service.admin_keys / service.api_keys (or a keys_file), bind "
        "127.0.0.1, or pass --allow-open (service.allow_open) to serve it open on purpose."
    )


def proxy_options(svc: ServiceSettings) -> dict[str, Any]:
    """uvicorn's forwarded-header options: believed from ``trusted_proxies`` only.

    uvicorn's own default believes X-Forwarded-For from 127.0.0.1, so any local caller (or a
    proxy that passes the header through) could pick its client address and its rate limit.
    """
    if not svc.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(svc.trusted_proxies)}


@dataclass(frozen=True)
class Caller:
    """Who made a request: a key's digest prefix (or the address, when the API is open)."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class Guard:
    """Authenticates each request once, throttles failed keys and rate-limits, then checks roles.

    Failed authentications (a wrong key; a missing one is no guess) are counted per client
    address: past ``auth_failures_per_minute`` the address gets 429 for every request, a right
    key included, until its budget refills, so keys cannot be guessed at speed.
    """

    def __init__(self, svc: ServiceSettings) -> None:
        self.keys = load_keys(svc.api_keys, svc.admin_keys, svc.keys_file)
        per_minute, failures = svc.rate_limit_per_minute, svc.auth_failures_per_minute
        clients = svc.rate_limit_clients
        self.limiter = RateLimiter(per_minute, clients) if per_minute > 0 else None
        self.failures = RateLimiter(failures, clients) if failures > 0 and self.keys else None

    def check(self, request: Request, role: Role) -> Caller:
        caller: Caller | None = getattr(request.state, "ragtune_caller", None)
        if caller is None:  # the first of a route's guards: admit once, count once
            caller = request.state.ragtune_caller = self._admit(request)
        if not caller.may(role):
            # No path in the message: error messages are redacted of anything path-like.
            raise ApiError(
                403,
                f"permission denied: this needs an API key with the {role} role; this key has "
                f"the {caller.role} role",
                code="insufficient_role",
            )
        return caller

    def _admit(self, request: Request) -> Caller:
        address = request.client.host if request.client else "unknown"
        if not self.keys:
            caller = Caller(address, "admin")  # open: the laptop default, loopback only
        else:
            if self.failures is not None:
                _refuse_for(
                    self.failures.wait(address), "too many failed API keys from this address"
                )
            caller = self._authenticate(request, address)
        if self.limiter is not None:
            _refuse_for(self.limiter.take(caller.name), "rate limit exceeded; retry later")
        return caller

    def _authenticate(self, request: Request, address: str) -> Caller:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401, "missing API key: send 'Authorization: Bearer KEY'", code="invalid_api_key"
            )
        presented = hash_key(key.strip())
        for known, role in self.keys.items():
            if hmac.compare_digest(presented, known):
                return Caller(known[:12], role)
        if self.failures is not None:
            self.failures.take(address)
        raise ApiError(401, "invalid API key", code="invalid_api_key")


def _refuse_for(wait: float, message: str) -> None:
    if wait > 0:
        raise ApiError(
            429,
            message,
            code="rate_limit_exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def require(role: Role) -> Callable[[Request], Caller]:
    """A route dependency: the caller, who must hold ``role`` (the app's ``Guard`` decides)."""

    def dependency(request: Request) -> Caller:
        guard: Guard = request.app.state.guard
        return guard.check(request, role)

    return dependency


QUERY = Depends(require("query"))
ADMIN = Depends(require("admin"))
