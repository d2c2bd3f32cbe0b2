"""``make bench-serving``'s options and what it writes: --only limits every part it names, combinations that would
run nothing are usage errors, the overload profile runs, the serving log goes to a topic of the bench's own (deleted
at the end), catalog sizes are compared with the smallest, and a Cassandra not found is said so. No service is
needed: the server, the load generator and the stores are stand-ins."""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench import serving_catalog, serving_load, serving_overload, serving_server

pytestmark = pytest.mark.usefixtures("services_at_closed_port", "sigterm_kept")


def _args(*argv: str) -> argparse.Namespace:
    """The options as ``serving_load.main`` parses them (its parser, stopped before it runs anything)."""
    seen: dict[str, argparse.Namespace] = {}

    def stop(args: argparse.Namespace) -> str | None:
        seen["args"] = args
        raise LookupError

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(serving_load, "option_problem", stop)
        with pytest.raises(LookupError):
            serving_load.main(list(argv))
    return seen["args"]


def _result(p50_ms: float = 1.0, rate: float = 100.0) -> dict[str, Any]:
    return {
        "target_rate": rate,
        "ok_rate": rate,
        "ok": 10,
        "samples": 10,
        "samples_ms": [p50_ms] * 10,
        "answered": 10,
        "errors": {},
        "bad": 0,
        "checked": 10,
        "bad_example": "",
        "mean_response_bytes": 100.0,
        "generator_cpu_us_per_request": 5.0,
        "p50_ms": p50_ms,
        "p99_ms": p50_ms,
        "p999_ms": p50_ms,
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], [(0, False, False), (1000, False, False)]),
        (["--only", "off"], [(0, False, False)]),
        (["--only", "on"], [(1000, False, False)]),
        (["--only", "catalog"], []),
        (["--auth", "both"], [(0, False, False), (0, True, False)]),
        (["--auth", "on", "--request-feature", "both"], [(0, True, False), (0, True, True)]),
        (["--request-feature", "on", "--only", "on"], [(1000, False, True)]),
    ],
)
def test_the_servers_run_are_those_the_options_ask(argv: list[str], expected: list[serving_load.Run]) -> None:
    assert serving_load.run_sets(_args(*argv)) == expected


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--auth", "both", "--request-feature", "both"], "--request-feature both"),
        (["--only", "on", "--auth", "both"], "--auth both"),
        (["--only", "on", "--request-feature", "both"], "--request-feature both"),
        (["--only", "catalog", "--auth", "on"], "--auth on"),
        (["--only", "catalog", "--catalog-sizes", ""], "--catalog-sizes"),
        (["--profile-scenario", "b"], "--profile-scenario"),
        (["--profile", "--profile-scenario", "overload", "--only", "on"], "--profile-scenario overload"),
        (["--profile", "--profile-scenario", "overload", "--only", "catalog"], "--profile-scenario overload"),
        (["--profile", "--profile-scenario", "overload", "--overload", "0"], "--overload 0"),
    ],
)
def test_options_that_would_be_ignored_together_are_one_usage_error(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving_load, "require_stack", lambda *a, **k: pytest.fail("past the options"))
    with pytest.raises(SystemExit) as exit_:
        serving_load.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("python -m bench.serving_load: error: ")
    assert named in err.strip().splitlines()[-1]


class _Stand:
    """Stand-ins of the services: the servers started (with their serving-log topic), topics made and deleted, and
    whether (c) and the overload ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.servers: list[dict[str, Any]] = []
        self.topics_made: list[str] = []
        self.topics_dropped: list[str] = []
        self.catalog: list[list[int]] = []
        self.overloads: list[float] = []
        import sinks.topics

        monkeypatch.setattr(serving_load, "require_stack", lambda *a, **k: None)
        monkeypatch.setattr(
            serving_load, "seed", lambda s, n: ([f"u{e}" for e in range(n)], [f"f{i}" for i in range(100)])
        )
        monkeypatch.setattr(serving_load, "drop_keyspace", lambda s: None)
        monkeypatch.setattr(serving_load, "cassandra_pid", lambda: None)
        monkeypatch.setattr(serving_load, "cpu_seconds", lambda pid: None)
        monkeypatch.setattr(serving_load, "cache_hit_rate", lambda port: "-")
        monkeypatch.setattr(serving_load, "server", self.server)
        monkeypatch.setattr(serving_load, "load", lambda port, reqs, **k: _result())
        monkeypatch.setattr(serving_load, "drop_topic", lambda bootstrap, topic: self.topics_dropped.append(topic))
        monkeypatch.setattr(sinks.topics, "ensure_topics", lambda bootstrap, topics: self.topics_made.extend(topics))
        monkeypatch.setattr(serving_catalog, "catalog_runs", self.catalog_runs)
        monkeypatch.setattr(serving_overload, "overload_run", self.overload_run)
        monkeypatch.setenv("FS_SERVING_LOG_TOPIC", "fs_serving_log_of_production")

    @contextmanager
    def server(self, settings: Any, **kwargs: Any) -> Iterator[int]:
        self.servers.append(kwargs)
        yield 1

    def catalog_runs(
        self, settings: Any, tmp: Path, ids: Any, names: Any, sizes: list[int], *a: Any, **k: Any
    ) -> list[str]:
        self.catalog.append(sizes)
        return []

    def overload_run(self, port: int, requests: Any, rate: float, args: Any, pid: Any = None) -> bool:
        self.overloads.append(rate)
        return True


FAST = ["--duration", "0.01", "--warmup", "0", "--prime", "0", "--rounds", "1"]


def test_the_serving_log_goes_to_a_topic_of_the_bench_s_own_deleted_at_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand = _Stand(monkeypatch)
    assert serving_load.main([*FAST, "--catalog-sizes", "10", "--profile"]) == 0
    out = capsys.readouterr().out
    [topic] = stand.topics_made
    assert topic.startswith("bench_") and topic.endswith("_serving_log")
    assert stand.topics_dropped == [topic]
    assert {s["log_topic"] for s in stand.servers} == {topic}  # every server, the profiled one too
    assert f"to the bench's topic {topic}" in out
    assert "fs_serving_log" not in out


def test_the_server_logs_to_the_topic_it_is_given_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FS_SERVING_LOG_TOPIC", "fs_serving_log")
    settings = argparse.Namespace(
        cassandra_hosts=["127.0.0.1"], cassandra_port=9042, cassandra_keyspace="bench_x", definitions_db=Path("d.db")
    )
    env = serving_server._env(settings, 0, "bench_x_serving_log")
    assert env["FS_SERVING_LOG_TOPIC"] == "bench_x_serving_log"


def test_without_a_serving_log_no_topic_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    stand = _Stand(monkeypatch)
    assert serving_load.main([*FAST, "--catalog-sizes", "", "--log-sample", "0"]) == 0
    assert stand.topics_made == stand.topics_dropped == []


@pytest.mark.parametrize(
    ("only", "servers", "catalog"), [("on", [1000], False), ("off", [0], False), (None, [0, 1000], True)]
)
def test_only_on_or_off_runs_no_catalog_runs(
    monkeypatch: pytest.MonkeyPatch, only: str | None, servers: list[int], catalog: bool
) -> None:
    stand = _Stand(monkeypatch)
    assert serving_load.main([*FAST, "--catalog-sizes", "10,100", *(["--only", only] if only else [])]) == 0
    assert [s["cache_ttl_ms"] for s in stand.servers] == servers
    assert bool(stand.catalog) == catalog


def test_the_overload_profile_runs_when_the_catalog_runs_are_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand = _Stand(monkeypatch)
    argv = [*FAST, "--only", "off", "--catalog-sizes", "", "--profile", "--profile-scenario", "overload"]
    assert serving_load.main(argv) == 0
    assert len(stand.overloads) == 2  # the cache-off overload row, then the profiled one
    assert "profile of one server process at (b) overloaded" in capsys.readouterr().out


def test_an_overload_profile_without_a_saturated_rate_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand = _Stand(monkeypatch)
    monkeypatch.setattr(serving_load, "load", lambda port, reqs, **k: {**_result(), "ok_rate": 0.0})
    argv = [*FAST, "--only", "off", "--catalog-sizes", "", "--profile", "--profile-scenario", "overload"]
    assert serving_load.main(argv) == 0
    assert stand.overloads == []
    assert "no profile: (b) at saturation had no successes" in capsys.readouterr().out


def test_catalog_sizes_are_compared_with_the_smallest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    size_of_port: dict[int, int] = {}

    class Settings:
        def __init__(self, db: Path | None = None) -> None:
            self.definitions_db = db

        def model_copy(self, update: dict[str, Any]) -> Settings:
            return Settings(update["definitions_db"])

    @contextmanager
    def server(sized: Settings, *, port: int, **kwargs: Any) -> Iterator[int]:
        assert sized.definitions_db is not None
        size_of_port[port] = int(sized.definitions_db.stem)
        yield 1

    monkeypatch.setattr(serving_catalog, "catalog_db", lambda folder, size: folder / f"{size}.db")
    monkeypatch.setattr(serving_catalog, "server", server)
    monkeypatch.setattr(serving_catalog, "cpu_seconds", lambda pid: None)
    monkeypatch.setattr(serving_catalog, "load", lambda port, reqs, **k: _result(size_of_port[port] / 10, 300))
    args = argparse.Namespace(workers=1, rounds=1, catalog_rate=300.0, duration=1.0, warmup=0.0, catalog_churn=0.0)
    ids, names = [f"u{i}" for i in range(100)], [f"f{i}" for i in range(100)]
    invalid = serving_catalog.catalog_runs(
        Settings(), tmp_path, ids, names, [1000, 10], args, random.Random(1), None, log_topic="t"
    )
    assert invalid == []
    out = capsys.readouterr().out
    assert out.index("10 definitions") < out.index("1,000 definitions")  # the smallest first
    assert "vs 10 definitions: p50 +9900 %, p99 +9900 %" in out


def test_a_cassandra_not_found_is_said_not_measured() -> None:
    assert "could not be measured" in serving_server.settle_text(None, 0.0, 0.0)
    assert "settled" not in serving_server.settle_text(None, 0.0, 0.0)
    assert "settled after the seeding in 3s (it used 0.10 cores" in serving_server.settle_text(1, 3.0, 0.1)
