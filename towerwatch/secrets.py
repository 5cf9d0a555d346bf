"""Reading secrets (passwords, tokens, keys) from a file or an environment variable.

Settings name where a secret lives (``*_file`` / ``*_env``), never the secret itself.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["read_secret"]


def read_secret(file: Path | None, env: str | None, what: str) -> str | None:
    """A secret from its file or environment variable (None when neither is set)."""
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return value
    return None
