"""``python -m jobs.produce`` at exactly its documented limits (README: ``--events`` 0 to 10,000,000, ``--users``
1 to 1,000,000, ``--span-minutes`` 1 to 5,256,000, ASCII digits with an optional sign, both bounds included):
taken, and the span asked ends a minute before now and never reaches before 1970. The events are not built
here (10,000,000 of them take minutes), nor sent."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import events, produce


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def generate(seed: int, **kwargs: Any) -> list[dict[str, Any]]:
        got.update(seed=seed, **kwargs)
        return []

    class _Producer:
        def send(self, topic: str, sent: list[dict[str, Any]]) -> int:
            got["topic"] = topic
            return len(sent)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(events, "synthetic_transactions", generate)
    monkeypatch.setattr(
        produce,
        "settings_for_command",
        lambda: type("S", (), {"kafka_bootstrap": "b", "schema_registry_url": "u", "token": None})(),
    )
    monkeypatch.setattr(produce, "ensure_topics", lambda *a, **k: None)
    monkeypatch.setattr(produce, "require_registry", lambda *a, **k: None)
    monkeypatch.setattr(produce, "make_producer", lambda settings: _Producer())
    monkeypatch.setattr(produce.time, "time_ns", lambda: 1_800_000_000_000 * 1_000_000)
    return got


@pytest.mark.parametrize(
    ("argv", "events_", "users", "span_min"),
    [
        (["--events", "0", "--users", "1", "--span-minutes", "1"], 0, 1, 1),
        (["--events", "10000000", "--users", "1000000", "--span-minutes", "5256000"], 10_000_000, 1_000_000, 5_256_000),
        (["--events", "+7", "--users", "+0002", "--span-minutes", "+90"], 7, 2, 90),
    ],
)
def test_the_limits_are_taken(asked: dict[str, Any], argv: list[str], events_: int, users: int, span_min: int) -> None:
    assert produce.main(argv) == 0
    now_ms = 1_800_000_000_000
    assert asked["events"] == events_ and asked["users"] == users and asked["topic"] == "card_transactions"
    assert asked["span_ms"] == span_min * 60_000
    assert asked["start_ms"] + asked["span_ms"] == now_ms - 60_000  # ends a minute before now
    assert asked["start_ms"] > 0  # ten years back from any time after 1980 is after 1970


@pytest.mark.parametrize(
    ("option", "raw"),
    [
        ("--events", "10000001"),
        ("--events", "1_000"),
        ("--events", "7.0"),
        ("--users", "1000001"),
        ("--users", "-1"),
        ("--span-minutes", "5256001"),
        ("--span-minutes", "\u0665"),
    ],
)
def test_one_past_a_limit_is_a_usage_error(
    asked: dict[str, Any], option: str, raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        produce.main([option, raw])
    assert caught.value.code == 2
    assert f"argument {option}: must be a whole number from" in capsys.readouterr().err
    assert asked == {}
