"""Hypothesis strategies for telemetry payloads, shared by the fast-path tests of the
edge (writing) and of ingest (reading)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

identifiers = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)
boot_ids = st.from_regex(r"[A-Za-z0-9-]{8,64}", fullmatch=True)
qualities = st.sampled_from(["good", "stale", "bad"])


@st.composite
def points(draw: st.DrawFn, values: st.SearchStrategy[Any]
           ) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` and ``quality`` of a valid message: values drawn from ``values``, some
    with a quality, some null (stale or bad), and a few qualities of points without one."""
    drawn: dict[str, Any] = {}
    quality: dict[str, str] = {}
    for point in draw(st.lists(identifiers, max_size=10, unique=True)):
        if draw(st.integers(0, 4)):
            drawn[point] = draw(values)
            if draw(st.booleans()):
                quality[point] = draw(qualities)
        else:
            drawn[point] = None
            quality[point] = draw(st.sampled_from(["stale", "bad"]))
    for point in draw(st.lists(identifiers, max_size=2)):
        quality.setdefault(point, draw(qualities))
    return drawn, quality
