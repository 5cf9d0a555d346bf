"""Tables of security patrols (migration ``0004``)."""

from __future__ import annotations
