from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from registry.core.durations import Duration, format_duration, parse_duration, to_millis

UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("0ms", timedelta(0)),
        ("1095d", timedelta(days=1095)),
        ("90s", timedelta(seconds=90)),
        ("0005m", timedelta(minutes=5)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_passes_timedelta_through() -> None:
    value = timedelta(minutes=3, milliseconds=7)  # whole milliseconds: a fraction of one is refused
    assert parse_duration(value) is value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(minutes=5), "5m"),
        (timedelta(minutes=60), "1h"),
        (timedelta(hours=24), "1d"),
        (timedelta(hours=25), "25h"),
        (timedelta(seconds=90), "90s"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(milliseconds=1), "1ms"),
        (timedelta(0), "0ms"),
        (timedelta(days=1095), "1095d"),
        (timedelta(minutes=61), "61m"),
    ],
)
def test_format_is_shortest_exact_spelling(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


@pytest.mark.parametrize("text", ["500ms", "30s", "5m", "1h", "7d", "0ms", "25h", "1500ms", "61m"])
def test_canonical_text_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "5",
        "m",
        "5x",
        "-5m",
        "+5m",
        "1.5h",
        "5 mm",
        "5M",
        "5min",
        "5m5s",
        "h1",
        "5 minutes",
        "ms",
        "\u0665m",
        "\uff15m",
        " 5m",
        "5m ",
        "5 m",
        "5m\n",
        "5m\u00a0",
    ],  # non-ASCII digits (Arabic-Indic, fullwidth)
)
def test_rejects_bad_text_naming_it(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [None, 5, 5.0, ["5m"]])
def test_rejects_non_text_naming_it(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)


def test_to_millis() -> None:
    assert to_millis(timedelta(hours=2)) == 7_200_000
    assert to_millis(timedelta(milliseconds=1)) == 1
    assert to_millis(timedelta(0)) == 0


def test_duration_field_parses_and_serialises_as_text() -> None:
    class Model(BaseModel):
        d: Duration

    m = Model(d="90m")  # type: ignore[arg-type]
    assert m.d == timedelta(minutes=90)
    assert m.model_dump(mode="json") == {"d": "90m"}
    assert Model.model_validate(m.model_dump(mode="json")) == m


# Whole milliseconds up to ~31,700 years, well inside float-exact range (2**53 ms).
whole_ms = st.integers(min_value=0, max_value=10**15)


@given(whole_ms)
def test_round_trip_property(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    text = format_duration(value)
    assert parse_duration(text) == value
    # Shortest spelling: no larger unit divides the value exactly.
    number, unit = int(text.rstrip("mshd")), text.lstrip("0123456789")
    assert number * UNIT_MS[unit] == ms
    larger = [u for u, u_ms in UNIT_MS.items() if u_ms > UNIT_MS[unit]]
    assert all(ms == 0 or ms % UNIT_MS[u] for u in larger)


@given(st.integers(min_value=0, max_value=10**8), st.sampled_from(sorted(UNIT_MS)))
def test_parse_then_format_is_canonical(number: int, unit: str) -> None:
    parsed = parse_duration(f"{number}{unit}")
    assert parsed == timedelta(milliseconds=number * UNIT_MS[unit])
    assert parse_duration(format_duration(parsed)) == parsed


def test_rejects_out_of_range_number_with_value_error() -> None:
    with pytest.raises(ValueError, match="99999999999999d"):
        parse_duration("99999999999999d")


def test_format_exact_above_float_precision() -> None:
    value = parse_duration("9007199254740993ms")  # 2**53 + 1 ms, about 285,000 years
    assert to_millis(value) == 9_007_199_254_740_993
    assert format_duration(value) == "9007199254740993ms"


@pytest.mark.parametrize(
    ("text", "finer"),
    [
        ("2026-12-05T14:00:00.0000009Z", True),
        ("2026-12-05T14:00:00,1234561+01:00", True),
        ("2026-12-05T14:00:00.1234560000Z", False),  # zeros past the 6th digit change nothing
        ("2026-12-05T14:00:00.123456Z", False),
        ("2026-12-05T14:00:00Z", False),
    ],
)
def test_a_fraction_past_microseconds_is_seen(text: str, finer: bool) -> None:
    from registry.core.durations import finer_than_microseconds, parse_instant

    assert finer_than_microseconds(text) is finer
    if finer:
        with pytest.raises(ValueError, match="a fraction of a microsecond"):
            parse_instant(text)
    else:
        assert parse_instant(text).microsecond == int((text.split(".")[1][:6] if "." in text else "0").ljust(6, "0"))


@pytest.mark.parametrize(
    ("text", "offset_s"),
    [
        ("2026-12-05T14:00:00+00:00:00.5", None),  # Python 3.11 read it as +00:00: half a second lost
        ("2026-12-05T14:00:00-01:00:30,25", None),
        ("2026-12-05T14:00:00+01:00:30.000", 3630),  # a zero fraction changes nothing
        ("2026-12-05T14:00:00+01:00:30", 3630),
        ("2026-12-05T14:00:00.5+01:00", 3600),  # the seconds' fraction is not the offset's
    ],
)
def test_an_offset_with_a_fraction_of_a_second_is_refused_by_the_command_lines(text: str, offset_s: int | None) -> None:
    """The command lines' times (``--since``, ``--until``, ``--as-of``, ...) as the quality API's: an offset is
    read to the second, and one with a fraction that is not zero is refused rather than read at another offset."""
    from registry.core.durations import parse_instant

    if offset_s is None:
        with pytest.raises(ValueError, match="offset to the second"):
            parse_instant(text)
    else:
        offset = parse_instant(text).utcoffset()
        assert offset is not None and offset.total_seconds() == offset_s


@pytest.mark.parametrize(
    "text", ["1796032800000Z", "1796032800000.5", "1796032800000,5", "20240501T000000Z", "2024-5-01T00:00Z"]
)
def test_a_time_is_epoch_milliseconds_or_an_iso_time_with_its_date_written_out(text: str) -> None:
    """Python reads ISO's basic form too: epoch milliseconds with a zone or a fraction after them were taken as the
    year 1796 (``17960328``...), a time 230 years from the one meant, by every command's --since, --until, --as-of."""
    from registry.audit import stored_instant
    from registry.core.durations import parse_instant

    with pytest.raises(ValueError, match="neither an ISO-8601 time nor epoch milliseconds"):
        parse_instant(text)
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        stored_instant(text)
