"""``make bench-stream``: options that cannot fit are usage errors, a failed or too slow job is one error line,
its figures say what they time (the start-up mark, a p99 that is the maximum), and the live producer stops
soon after it is told to at any rate. No service is needed."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench import cli, stream, stream_events, stream_latency

pytestmark = pytest.mark.usefixtures("services_at_closed_port", "sigterm_kept")


@pytest.mark.parametrize(("size", "slide"), [("1m", "7s"), ("1m", "2m"), ("1h", "1s")])
def test_a_live_window_no_definition_may_have_is_named(size: str, slide: str) -> None:
    problem = stream.window_problem(size, slide)
    assert problem is not None and problem.startswith("argument --live-size/--live-slide: ")


def test_the_default_live_window_fits() -> None:
    assert stream.window_problem("1m", "2s") is None


def test_the_start_up_mark_says_it_times_the_client_preparing_the_stores() -> None:
    run = stream.ThroughputRun(launched_s=10.0, prepared_s=12.5)
    assert stream.prepared_text(run) == "launch -> stores prepared (the job's client) 2.5s"
    unseen = stream.prepared_text(stream.ThroughputRun(launched_s=10.0))
    assert "not seen" in unseen
    assert "operators" not in stream.__doc__ + stream.prepared_text(run)  # not the Python operators' start


class _Never:
    """A job process that never ends."""

    pid = 1
    returncode = None

    def poll(self) -> None:
        return None


def test_a_job_too_slow_is_one_error_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    @contextmanager
    def feature_job(*a: Any) -> Iterator[_Never]:
        yield _Never()

    log = tmp_path / "job.log"
    log.write_text("line one\nline two\n")
    monkeypatch.setattr(stream, "feature_job", feature_job)
    monkeypatch.setattr(stream, "offline_table_exists", lambda settings: False)
    poller = argparse.Namespace(read=lambda: None)
    args = argparse.Namespace(timeout=0.05, runtime=None, poll_ms=1)

    def main() -> int:
        stream.measure_job(None, args, poller, log)  # type: ignore[arg-type]
        return 0

    assert cli.run_main(main) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == f"error: the job did not finish within 0.05s (--timeout) (its log: {log})"
    assert "line two" in err  # the log's tail, before the error line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--live-slide", "7s"], "--live-slide"),
        (["--live-slide", "2m"], "--live-slide"),
        (["--hours", "1e9"], "--hours"),
        (["--hours", "161"], "--hours"),
        (["--timeout", "0.5"], "--timeout"),
    ],
)
def test_options_that_do_not_fit_are_a_usage_error(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "require_stack", lambda *a, **k: pytest.fail("past the options"))
    with pytest.raises(SystemExit) as exit_:
        stream.main(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and named in last


def test_a_p99_of_fewer_than_100_closes_is_labeled_the_maximum() -> None:
    fifty = [float(ms) for ms in range(1, 51)]
    text = stream_latency.latency_stats(fifty)
    assert "p99=max 0.050s" in text and "p50 0.025s" in text and "(n=50)" in text
    assert "p99 0.198s" in stream_latency.latency_stats([float(ms) for ms in range(1, 201)])


class _Producer:
    def produce(self, *a: Any, **k: Any) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def test_the_live_producer_stops_soon_after_its_stop_file_at_a_low_rate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(stream_events, "producer", lambda bootstrap, linger_ms: _Producer())
    stop = tmp_path / "stop"
    spec = {
        "bootstrap": "-",
        "topic": "t",
        "rate": 200,
        "seconds": 6,
        "users": 10,
        "seed": 1,
        "header_hex": "00000000" + "01",
        "id_prefix": "l_",
        "stop_file": str(stop),
    }
    timer = threading.Timer(1.5, stop.touch)  # 300 events sent by then
    started = time.monotonic()
    timer.start()
    try:
        report = stream_events.live(spec)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 3.0  # not the 6 s bound
    assert report["seconds"] < 2.5
