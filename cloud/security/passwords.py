"""Password hashing with Argon2id (argon2-cffi), the only place that imports argon2.

Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``) that carry their own
parameters, so raising the cost later only needs :meth:`PasswordHasher.needs_rehash`
after a successful login and a new hash of the password the user just typed.

The defaults are argon2-cffi's (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4), about
50 ms per hash; tests build a cheap hasher (``PasswordHasher(time_cost=1, memory_cost=1024,
parallelism=1)``). Hashing is CPU-bound and blocking: async callers run it in a thread.
"""

from __future__ import annotations

from typing import Final

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["DEFAULT_HASHER", "PasswordHasher"]


class PasswordHasher:
    """Hash, verify and re-hash passwords with Argon2id."""

    def __init__(
        self, *, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4
    ) -> None:
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """A salted Argon2id hash of ``password`` (a different string every call)."""
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; ``False`` for a malformed hash too."""
        try:
            return self._argon2.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> bool:
        """Spend the time of a :meth:`verify` and return ``False``.

        Call it when the user does not exist, so a login for an unknown name takes as long
        as one with a wrong password.
        """
        if self._dummy_hash is None:
            self._dummy_hash = self.hash("towerwatch-no-such-user")
        self.verify(self._dummy_hash, password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than this hasher's."""
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


DEFAULT_HASHER: Final = PasswordHasher()
"""A hasher with the production parameters (building it does not hash anything)."""
