"""Tables of the alarm lifecycle (migration ``0002``)."""

from __future__ import annotations
