"""Bearer tokens, the API secret and the failed-login limiter (no HTTP here).

Tokens
------
``v1.<payload>.<signature>``, both parts unpadded base64url. The payload is compact JSON
``{"uid": 7, "ver": "…", "iat": ms, "exp": ms}``; the signature is HMAC-SHA256 over
``v1.<payload>`` with a key derived from the API secret. A token is refused (401) when it
is malformed, its signature does not match (tampered, or signed with another secret),
it has expired, its user is gone or inactive, or its ``ver`` no longer matches the user.

``ver`` is the user's *token version*: an HMAC of the user id and password hash, so
changing a password ends every token issued before. (The users table has no version
counter yet; with one, "log out everywhere" and role changes could end tokens too.)
Roles are not in the token: they are read from the database on every request, so a
revoked role takes effect at once.

The secret
----------
From ``api.secret_file`` or the environment variable ``api.secret_env`` (default
``TW_API_SECRET``); at least :data:`MIN_SECRET_BYTES` bytes. When neither yields one (the
default variable is simply not set), a random secret is made at startup and a warning
says that tokens will not survive a restart and are not accepted by other replicas.
A file or variable that was configured explicitly but is missing is an error.

Failed logins
-------------
:class:`LoginLimiter` keeps a sliding window of failures per ``(username, client address)``
in memory: after ``login_attempts`` failures within ``login_window`` further attempts are
refused (429, ``Retry-After``) until the oldest failure leaves the window. It is per
process: with several API replicas each keeps its own count (so an attacker behind a
load balancer gets up to ``replicas × login_attempts`` tries per window).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

from cloud.api.errors import ApiConfigError
from cloud.settings import ApiSettings

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "ExpiredToken",
    "InvalidToken",
    "LoginLimiter",
    "TokenClaims",
    "TokenError",
    "TokenSigner",
    "load_secret",
]

log = logging.getLogger(__name__)

TOKEN_VERSION: Final = "v1"
MAX_TOKEN_LENGTH: Final = 2048
MIN_SECRET_BYTES: Final = 32
_SIGNING_LABEL: Final = b"towerwatch api token signature v1"
_VERSION_LABEL: Final = b"towerwatch api token user version v1"


# -- the secret -----------------------------------------------------------------------
def load_secret(api: ApiSettings) -> tuple[bytes, bool]:
    """The API secret and whether it is persistent (``False``: generated at random)."""
    if api.secret_file is not None:
        try:
            text = api.secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApiConfigError(f"api.secret_file {api.secret_file}: {exc.strerror}") from exc
        return _checked(text, f"api.secret_file {api.secret_file}"), True
    if api.secret_env is not None:
        value = os.environ.get(api.secret_env)
        if value is not None:
            return _checked(value.strip(), f"${api.secret_env}"), True
        if "secret_env" in api.model_fields_set:
            raise ApiConfigError(
                f"api.secret_env names ${api.secret_env}, but it is not set in the environment"
            )
    where = f"${api.secret_env}" if api.secret_env else "api.secret_file / api.secret_env"
    log.warning(
        "no API secret configured (%s): generated a random one; tokens will not survive a "
        "restart and other API replicas will not accept them",
        where,
    )
    return secrets.token_bytes(32), False


def _checked(secret: str, where: str) -> bytes:
    raw = secret.encode("utf-8")
    if len(raw) < MIN_SECRET_BYTES:
        raise ApiConfigError(
            f"{where}: the API secret must be at least {MIN_SECRET_BYTES} bytes "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return raw


# -- tokens ---------------------------------------------------------------------------
class TokenError(Exception):
    """A bearer token is not acceptable; ``code`` is the API error code."""

    code = "invalid_token"


class InvalidToken(TokenError):
    """Malformed, tampered with, or signed with another secret."""


class ExpiredToken(TokenError):
    """Well-signed but past its expiry."""

    code = "token_expired"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    version: str
    issued_ms: int
    expires_ms: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or any(c not in _B64_CHARS for c in text):
        raise InvalidToken("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("not base64url") from exc


_B64_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _int_claim(payload: dict[str, object], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int:
        raise InvalidToken(f"claim {name!r} is not an integer")
    return value


class TokenSigner:
    """Issues and checks ``v1`` bearer tokens with keys derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ApiConfigError(f"the API secret must be at least {MIN_SECRET_BYTES} bytes")
        self._sign_key = hmac.new(secret, _SIGNING_LABEL, hashlib.sha256).digest()
        self._version_key = hmac.new(secret, _VERSION_LABEL, hashlib.sha256).digest()

    def user_version(self, user_id: int, password_hash: str) -> str:
        """The token version of a user: changes whenever the password hash changes."""
        message = f"{user_id}\0{password_hash}".encode()
        return _b64encode(hmac.new(self._version_key, message, hashlib.sha256).digest()[:12])

    def _signature(self, signed: str) -> bytes:
        return hmac.new(self._sign_key, signed.encode("ascii"), hashlib.sha256).digest()

    def issue(
        self, user_id: int, version: str, *, now_ms: int, ttl_ms: int
    ) -> tuple[str, TokenClaims]:
        """A token for ``user_id`` valid for ``ttl_ms`` from ``now_ms``."""
        if ttl_ms <= 0:
            raise ValueError(f"token ttl must be positive, got {ttl_ms} ms")
        claims = TokenClaims(user_id, version, now_ms, now_ms + ttl_ms)
        payload = {"uid": user_id, "ver": version, "iat": now_ms, "exp": claims.expires_ms}
        body = _b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        signed = f"{TOKEN_VERSION}.{body}"
        return f"{signed}.{_b64encode(self._signature(signed))}", claims

    def verify(self, token: str, *, now_ms: int) -> TokenClaims:
        """The claims of a valid token; raises :class:`InvalidToken` / :class:`ExpiredToken`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise InvalidToken("not a v1 token")
        signed = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._signature(signed), _b64decode(parts[2])):
            raise InvalidToken("bad signature")
        try:
            payload = json.loads(_b64decode(parts[1]))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidToken("payload is not JSON") from exc
        if not isinstance(payload, dict):
            raise InvalidToken("payload is not an object")
        version = payload.get("ver")
        if not isinstance(version, str):
            raise InvalidToken("claim 'ver' is not a string")
        claims = TokenClaims(
            _int_claim(payload, "uid"), version,
            _int_claim(payload, "iat"), _int_claim(payload, "exp"),
        )
        if now_ms >= claims.expires_ms:
            raise ExpiredToken("token expired")
        return claims


# -- failed logins --------------------------------------------------------------------
LimiterKey = tuple[str, str]
"""``(normalised username, client address)``."""


class LoginLimiter:
    """Sliding-window count of failed logins per key (thread-safe, in memory, bounded).

    :meth:`attempt` is check-and-record in one step: it counts the attempt as a failure
    before the password is checked, so concurrent guesses cannot overrun the limit;
    :meth:`succeeded` then forgets the key's failures.
    """

    def __init__(self, attempts: int, window_s: float, *, max_keys: int = 10_000) -> None:
        if attempts < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("attempts, window and max_keys must be positive")
        self.attempts = attempts
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[LimiterKey, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def attempt(self, key: LimiterKey, now: float) -> float | None:
        """``None`` if the attempt may go ahead (now counted as a failure), else the
        seconds until it may."""
        with self._lock:
            failures = self._failures.get(key)
            if failures is not None:
                self._prune(failures, now)
                if len(failures) >= self.attempts:
                    return max(failures[0] + self.window_s - now, 0.001)
            else:
                self._make_room(now)
                failures = self._failures[key] = deque()
            failures.append(now)
            self._failures.move_to_end(key)
            return None

    def succeeded(self, key: LimiterKey) -> None:
        """The attempt was a success: forget this key's failures."""
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: LimiterKey, now: float) -> int:
        """Failures of ``key`` within the window (for tests and metrics)."""
        with self._lock:
            failures = self._failures.get(key)
            if failures is None:
                return 0
            self._prune(failures, now)
            return len(failures)

    def _prune(self, failures: deque[float], now: float) -> None:
        horizon = now - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()

    def _make_room(self, now: float) -> None:
        if len(self._failures) < self.max_keys:
            return
        for key in list(self._failures):
            self._prune(self._failures[key], now)
            if not self._failures[key]:
                del self._failures[key]
        while len(self._failures) >= self.max_keys:
            self._failures.popitem(last=False)  # the key idle the longest
