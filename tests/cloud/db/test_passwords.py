"""Argon2id hashing: hash, verify, re-hash when the parameters change."""

from __future__ import annotations

from cloud.security.passwords import DEFAULT_HASHER, PasswordHasher


def test_hash_and_verify(hasher: PasswordHasher) -> None:
    first = hasher.hash("correct horse battery")
    second = hasher.hash("correct horse battery")
    assert first.startswith("$argon2id$") and first != second  # salted
    assert hasher.verify(first, "correct horse battery")
    assert hasher.verify(second, "correct horse battery")
    assert not hasher.verify(first, "correct horse battery!")
    assert not hasher.verify(first, "")
    assert not hasher.verify("not-a-hash", "correct horse battery")
    assert not hasher.verify_dummy("anything")


def test_needs_rehash_when_parameters_change(hasher: PasswordHasher) -> None:
    cheap = hasher.hash("pw-1234567890")
    assert not hasher.needs_rehash(cheap)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    assert stronger.needs_rehash(cheap)
    assert stronger.verify(cheap, "pw-1234567890")  # old hashes still verify
    assert not stronger.needs_rehash(stronger.hash("pw-1234567890"))
    assert hasher.needs_rehash("garbage")


def test_default_hasher_uses_production_parameters() -> None:
    assert DEFAULT_HASHER.needs_rehash(
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x")
    )
