"""The bench commands at their entry: bad options are one usage error (exit 2), a stack that is down is one
``error:`` line, what a bench made is removed when it fails midway or is interrupted, and sizes are printed as
rows and values apart. No service is needed: every address points at a closed port."""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bench import archive, cli, online_layout, pit_join, serving_catalog, serving_load, serving_seed, stream

BENCHES: dict[str, ModuleType] = {
    "serving_load": serving_load,
    "online_layout": online_layout,
    "stream": stream,
    "archive": archive,
    "pit_join": pit_join,
}


@pytest.fixture(autouse=True)
def stack_down(
    services_at_closed_port: None, sigterm_kept: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every service at a closed port, and temporary folders made under ``tmp_path/tmp``."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


BAD_OPTIONS = [
    ("serving_load", ["--entities", "-5"], "--entities"),
    ("serving_load", ["--entities", "50"], "--entities"),  # a (b) request reads 100 distinct entities
    ("serving_load", ["--entities", "x"], "--entities"),
    ("serving_load", ["--duration", "0"], "--duration"),
    ("serving_load", ["--duration", "nan"], "--duration"),
    ("serving_load", ["--warmup", "-1"], "--warmup"),
    ("serving_load", ["--prime", "-1"], "--prime"),
    ("serving_load", ["--workers", "0"], "--workers"),
    ("serving_load", ["--rounds", "0"], "--rounds"),
    ("serving_load", ["--workers", "65"], "--workers"),  # past the API's own bound: the server then failed to start
    ("serving_load", ["--cache-ttl-ms", "3600001"], "--cache-ttl-ms"),
    ("serving_load", ["--cache-ttl-ms", "0"], "--cache-ttl-ms"),
    ("serving_load", ["--zipf", "-1"], "--zipf"),
    ("serving_load", ["--log-sample", "1.5"], "--log-sample"),
    ("serving_load", ["--catalog-sizes", "5"], "--catalog-sizes"),  # fewer than the 10 features read
    ("serving_load", ["--catalog-sizes", "10,abc"], "--catalog-sizes"),
    ("serving_load", ["--catalog-sizes", "10,,100"], "--catalog-sizes"),
    ("serving_load", ["--catalog-rate", "0"], "--catalog-rate"),
    ("serving_load", ["--overload", "-1"], "--overload"),
    ("serving_load", ["--bogus"], "unrecognized arguments"),
    ("online_layout", ["--entities", "0"], "--entities"),
    ("online_layout", ["--reads", "-1"], "--reads"),
    ("online_layout", ["--reads", "1.5"], "--reads"),
    ("stream", ["--events", "0"], "--events"),
    ("stream", ["--users", "-1"], "--users"),
    ("stream", ["--hours", "0"], "--hours"),
    ("stream", ["--partitions", "0"], "--partitions"),
    ("stream", ["--parallelism", "0"], "--parallelism"),
    ("stream", ["--live-rates", ""], "--live-rates"),
    ("stream", ["--live-rates", "2000,x"], "--live-rates"),
    ("stream", ["--live-rates", "0"], "--live-rates"),
    ("stream", ["--live-users", "0"], "--live-users"),
    ("stream", ["--live-size", "0s"], "--live-size"),
    ("stream", ["--live-slide", "soon"], "--live-slide"),
    ("stream", ["--live-closes", "0"], "--live-closes"),
    ("stream", ["--live-warmup", "-1s"], "--live-warmup"),
    ("stream", ["--poll-ms", "0"], "--poll-ms"),
    ("stream", ["--timeout", "0"], "--timeout"),
    ("stream", ["--flink-conf", "no-equals-sign"], "--flink-conf"),
    ("archive", ["--events", "0"], "--events"),
    ("archive", ["--archived", "1.5"], "--archived"),
    ("archive", ["--archived", "-0.1"], "--archived"),
    ("archive", ["--users", "0"], "--users"),
    ("pit_join", ["--scale", "0"], "--scale"),
    ("pit_join", ["--scale", "0.01"], "--scale"),
    ("pit_join", ["--scale", "-1"], "--scale"),
    ("pit_join", ["--chunk-rows", "0"], "--chunk-rows"),
    ("pit_join", ["--labels", "0", "--rows", "100"], "--labels"),
    ("pit_join", ["--labels", "10"], "--labels"),  # without --rows
    ("pit_join", ["--labels", "10", "--rows", "150"], "--rows"),  # 100 rows per entity
    ("pit_join", ["--labels", "10", "--rows", "100", "--scale", "10"], "--scale"),  # one case size: --scale was dropped
    ("stream", ["--only", "latency", "--live-size", "1m", "--live-slide", "7s"], "--live-slide"),  # not a multiple
    ("stream", ["--only", "throughput", "--events", "10", "--hours", "1e9"], "--hours"),  # past any TTL, year 1
    ("stream", ["--timeout", "0.5"], "--timeout"),  # no job starts that soon
]


@pytest.mark.parametrize(("bench", "argv", "named"), BAD_OPTIONS)
def test_a_bad_option_is_one_usage_error(
    bench: str, argv: list[str], named: str, capsys: pytest.CaptureFixture[str], stack_down: Path
) -> None:
    with pytest.raises(SystemExit) as exit_:
        BENCHES[bench].main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and named in last
    assert not any(stack_down.iterdir())  # nothing made


def test_an_empty_catalog_list_skips_the_catalog_runs() -> None:
    assert cli.whole_list(serving_catalog.CATALOG_READ, empty=True)("") == []
    assert cli.whole_list(10, empty=True)("10,1000, 10000") == [10, 1000, 10000]


def test_the_churned_catalog_gains_a_definition_after_another_while_measured(tmp_path: Path) -> None:
    from registry.definition_store import DefinitionStore

    db = serving_catalog.catalog_db(tmp_path, serving_catalog.CATALOG_READ)
    with serving_catalog.churning(db, 0.05) as count:
        time.sleep(1.0)
    registered = count[0]
    time.sleep(0.2)  # stopped: nothing more registered
    names = [d.name for d in DefinitionStore(db).catalog()]
    assert registered >= 2 and len(names) == serving_catalog.CATALOG_READ + registered
    assert sorted(n for n in names if n.startswith("bench_churn_"))[-1] == f"bench_churn_{registered - 1:06d}"


@pytest.mark.parametrize(
    ("bench", "argv"),
    [
        ("serving_load", ["--catalog-sizes", ""]),
        ("online_layout", []),
        ("stream", ["--only", "throughput"]),
        ("archive", []),
    ],
)
def test_a_stack_that_is_down_is_one_line_at_once(
    bench: str, argv: list[str], capsys: pytest.CaptureFixture[str], stack_down: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        BENCHES[bench].main(argv)
    assert time.monotonic() - started < 10
    message = str(exit_.value.code)
    assert message.startswith("error: the bench needs the running stack (make up): ")
    assert "\n" not in message
    assert "Traceback" not in capsys.readouterr().err
    assert not any(stack_down.iterdir())  # no folder made


def _stack_up(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
    monkeypatch.setattr(module, "require_stack", lambda *a, **k: None)


def test_serving_load_removes_its_folder_and_keyspace_when_seeding_fails(
    monkeypatch: pytest.MonkeyPatch, stack_down: Path
) -> None:
    _stack_up(monkeypatch, serving_load)
    dropped: list[str] = []

    def seed(settings: Any, entities: int) -> Any:
        assert settings.definitions_db.parent.exists()
        raise RuntimeError("Cassandra went away mid-seed")

    monkeypatch.setattr(serving_load, "seed", seed)
    monkeypatch.setattr(serving_load, "drop_keyspace", lambda s: dropped.append(s.cassandra_keyspace))
    with pytest.raises(RuntimeError, match="mid-seed"):
        serving_load.main(["--catalog-sizes", "", "--log-sample", "0"])
    assert len(dropped) == 1 and dropped[0].startswith("bench_")
    assert not any(stack_down.iterdir())


def test_serving_load_removes_its_folder_when_the_keyspace_cannot_be_dropped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stack_down: Path
) -> None:
    _stack_up(monkeypatch, serving_load)

    def seed(settings: Any, entities: int) -> Any:
        raise KeyboardInterrupt

    def drop(settings: Any) -> None:
        raise RuntimeError("Cassandra unavailable")

    monkeypatch.setattr(serving_load, "seed", seed)
    monkeypatch.setattr(serving_load, "drop_keyspace", drop)
    with pytest.raises(KeyboardInterrupt):  # the error that ended the run, not the cleanup's
        serving_load.main(["--catalog-sizes", "", "--log-sample", "0"])
    assert not any(stack_down.iterdir())
    assert "could not drop keyspace bench_" in capsys.readouterr().err


def test_serving_load_prints_rows_and_values_apart(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack_up(monkeypatch, serving_load)
    monkeypatch.setattr(serving_load, "seed", lambda s, n: ([f"u{e}" for e in range(n)], ["f"] * 100))
    monkeypatch.setattr(serving_load, "drop_keyspace", lambda s: None)

    def stop() -> None:
        raise RuntimeError("stop here")

    monkeypatch.setattr(serving_load, "cassandra_pid", stop)
    with pytest.raises(RuntimeError, match="stop here"):
        serving_load.main(["--entities", "250", "--catalog-sizes", "", "--log-sample", "0"])
    out = capsys.readouterr().out
    assert "seeded 250 rows (one per entity) holding 25,000 values" in out


def test_serving_load_definitions_fit_the_event_schema() -> None:
    """Its 100 definitions register (``check_event_schema``): a field the event lacks made every run fail."""
    from registry.core.definitions import check_event_schema

    definitions = serving_seed._definitions()
    assert len(definitions) == serving_seed.N_FEATURES
    for d in definitions:
        check_event_schema(d)


def test_archive_removes_its_folder_topics_and_subject_when_it_fails_midway(
    monkeypatch: pytest.MonkeyPatch, stack_down: Path
) -> None:
    _stack_up(monkeypatch, archive)
    removed: list[str] = []

    def fail(*a: Any, **k: Any) -> Any:
        raise RuntimeError("registry went away")

    def delete_topics(settings: Any, topics: list[str]) -> None:
        removed.extend(topics)
        raise RuntimeError("Kafka went away too")  # the folder and the subject are still removed

    monkeypatch.setattr(archive, "register_definitions", fail)
    monkeypatch.setattr(archive, "delete_topics", delete_topics)
    monkeypatch.setattr(archive, "delete_subject", lambda s, subject: removed.append(subject))
    with pytest.raises(RuntimeError, match="registry went away"):
        archive.main(["--events", "10"])
    assert len(removed) == 3 and removed[2].endswith("_archive-value")
    assert not any(stack_down.iterdir())


def test_online_layout_drops_its_keyspace_when_its_tables_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import stream_support
    from registry.core.errors import StoreUnavailableError
    from sinks import factory

    _stack_up(monkeypatch, online_layout)
    dropped: list[str] = []

    def connect(settings: Any, **_: Any) -> Any:
        raise StoreUnavailableError("schema agreement timed out")

    monkeypatch.setattr(factory, "connect_cassandra", connect)
    monkeypatch.setattr(stream_support, "drop_keyspace", lambda s: dropped.append(s.cassandra_keyspace))
    with pytest.raises(StoreUnavailableError):
        online_layout.main(["--entities", "1", "--reads", "1"])
    assert len(dropped) == 1 and dropped[0].startswith("bench_layout_")


@pytest.mark.parametrize("main", [lambda: 0, lambda: 3])
def test_run_main_passes_the_status_on(main: Callable[[], int]) -> None:
    assert cli.run_main(main) == main()


def test_ctrl_c_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert cli.run_main(interrupted) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_positive_refuses_what_is_not_a_number_above_zero() -> None:
    import argparse

    for raw in ["0", "-1", "nan", "inf", "", " 1", "1_0", "x", "\u0661", "\uff11"]:
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number above 0"):
            cli.positive(raw)
    assert cli.positive("0.5") == 0.5
    assert cli.positive("1e3") == 1000.0


def test_a_service_failing_under_a_bench_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A Cassandra node that accepts connections and never answers passes the start's TCP check; its failure
    while the bench seeds was two chained tracebacks."""
    from registry.core.errors import StoreUnavailableError

    def failing() -> int:
        raise StoreUnavailableError("Cassandra at 127.0.0.1:47001 unavailable: OperationTimedOut")

    assert cli.run_main(failing) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "47001" in err and "Traceback" not in err


def test_a_sigterm_unwinds_through_the_bench_cleanup_and_exits_143() -> None:
    """``bench/pit_join.py`` stopped by SIGTERM left its child process running and its temporary folder behind: the
    default handler ended the bench without its cleanup. ``run_main`` unwinds it (SystemExit(143)) as Ctrl-C does."""
    from tests.unit.test_ctrl_c_whole_run import cleaning_up, signalled_after_ready

    done = signalled_after_ready(cleaning_up("run_main", "bench.cli"), signal.SIGTERM)
    assert (done.returncode, done.stdout) == (143, "cleaned up\n")
