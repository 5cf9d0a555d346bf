from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from towerwatch.contract import TS_MAX, TS_MIN, Telemetry, TopicKind, decode, encode
from towerwatch.contract.fields import Quality

identifiers = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)
boot_ids = st.from_regex(r"[A-Za-z0-9-]{8,64}", fullmatch=True)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
qualities: st.SearchStrategy[Quality] = st.sampled_from(["good", "stale", "bad"])


@st.composite
def telemetry(draw: st.DrawFn) -> Telemetry:
    points = draw(st.lists(identifiers, max_size=12, unique=True))
    values: dict[str, bool | int | float | str | None] = {}
    quality: dict[str, Quality] = {}
    for point in points:
        if draw(st.booleans()):
            values[point] = draw(scalars)
            if draw(st.booleans()):
                quality[point] = draw(qualities)
        else:
            values[point] = None
            quality[point] = draw(st.sampled_from(["stale", "bad"]))
    return Telemetry(
        seq=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        boot_id=draw(boot_ids),
        ts=draw(st.integers(min_value=TS_MIN, max_value=TS_MAX)),
        values=values,
        quality=quality,
    )


@given(telemetry())
def test_telemetry_round_trips(message: Telemetry) -> None:
    raw = encode(message)
    decoded = decode(Telemetry, raw)
    assert decoded == message
    assert decode(TopicKind.TELEMETRY, raw) == message
    for point, value in message.values.items():
        assert type(decoded.values[point]) is type(value)
