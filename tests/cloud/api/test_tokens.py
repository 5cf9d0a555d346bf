"""Token signing and the failed-login limiter, without HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from cloud.api import auth
from cloud.api.auth import (
    ExpiredToken,
    InvalidToken,
    LoginLimiter,
    TokenSigner,
)
from cloud.api.errors import ApiConfigError

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_token_round_trips_until_it_expires() -> None:
    signer = TokenSigner(SECRET)
    token, claims = signer.issue(7, "ver", now_ms=1000, ttl_ms=500)
    assert (claims.user_id, claims.version, claims.issued_ms, claims.expires_ms) == (
        7, "ver", 1000, 1500)
    assert signer.verify(token, now_ms=1499) == claims
    with pytest.raises(ExpiredToken):
        signer.verify(token, now_ms=1500)


def test_another_secret_does_not_verify() -> None:
    token, _ = TokenSigner(SECRET).issue(7, "ver", now_ms=0, ttl_ms=10)
    with pytest.raises(InvalidToken, match="signature"):
        TokenSigner(SECRET[::-1]).verify(token, now_ms=0)


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 31])
def test_short_secrets_are_refused(secret: bytes) -> None:
    with pytest.raises(ApiConfigError):
        TokenSigner(secret)


def test_the_user_version_follows_the_password_hash() -> None:
    signer = TokenSigner(SECRET)
    version = signer.user_version(1, "$argon2id$a")
    assert version == signer.user_version(1, "$argon2id$a")
    assert version != signer.user_version(1, "$argon2id$b")
    assert version != signer.user_version(2, "$argon2id$a")
    assert version != TokenSigner(SECRET[::-1]).user_version(1, "$argon2id$a")
    assert "argon2" not in version


@pytest.mark.parametrize("payload", [
    b"[]", b'{"uid": "7", "ver": "v", "iat": 0, "exp": 9}', b'{"uid": 7, "iat": 0, "exp": 9}',
    b'{"uid": true, "ver": "v", "iat": 0, "exp": 9}', b"not json", b"\xff",
])
def test_well_signed_but_malformed_payloads_are_invalid(payload: bytes) -> None:
    signer = TokenSigner(SECRET)
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    key = hmac.new(SECRET, auth._SIGNING_LABEL, hashlib.sha256).digest()
    sig = hmac.new(key, f"v1.{body}".encode(), hashlib.sha256).digest()
    token = f"v1.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken):
        signer.verify(token, now_ms=0)


def test_the_limiter_slides_its_window() -> None:
    limiter = LoginLimiter(2, 10.0)
    key = ("alice", "10.0.0.1")
    assert limiter.attempt(key, 0.0) is None
    assert limiter.attempt(key, 4.0) is None
    assert limiter.attempt(key, 5.0) == pytest.approx(5.0)  # until the first leaves
    assert limiter.failures(key, 5.0) == 2  # refused attempts do not count
    assert limiter.attempt(key, 10.0) is None  # the first has left; this one counts
    assert limiter.attempt(key, 11.0) == pytest.approx(3.0)
    limiter.succeeded(key)
    assert limiter.failures(key, 11.0) == 0
    assert limiter.attempt(("alice", "10.0.0.2"), 11.0) is None


def test_the_limiter_stays_bounded() -> None:
    limiter = LoginLimiter(1, 10.0, max_keys=3)
    for i in range(3):
        limiter.attempt((f"u{i}", "a"), 0.0)
    limiter.attempt(("u3", "a"), 1.0)  # full: the longest idle key goes
    assert limiter.failures(("u0", "a"), 1.0) == 0
    assert limiter.failures(("u3", "a"), 1.0) == 1
    limiter.attempt(("u4", "a"), 20.0)  # expired keys are dropped first
    assert [limiter.failures((f"u{i}", "a"), 20.0) for i in range(5)] == [0, 0, 0, 0, 1]
