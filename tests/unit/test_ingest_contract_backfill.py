"""``python -m jobs.backfill`` (README "Training sets, ...", design §5.6-5.7, §10 item 4): its references and its
range are checked before anything connects (exit 2, one line naming them, as the job checks them), and a failed
job is one line with the job's own ``error:`` line and the log's path, never the log's last 2,000 characters."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs import backfill
from registry.core.catalog import load_folder
from registry.core.definitions import Window
from registry.core.errors import FeatureStoreError
from registry.core.settings import Settings
from registry.definition_store import DefinitionStore
from registry.plan import apply


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        backfill.main(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # An open --since is 1970 (design §5.7): an --until before it is an empty range, as the job says.
        (
            ["user.a@2", "--events", "x.parquet", "--until", "1969-12-31T23:59:59Z"],
            "--since must be before --until (--since: none, so 1970-01-01T00:00:00Z (0 ms); --until: -1000 ms)",
        ),
        # An open --until is the end of 9999: a --since there leaves nothing.
        (
            ["user.a@2", "--events", "x.parquet", "--since", "253402300799999"],
            "--since must be before --until (--since: 253402300799999 ms; --until: none, so "
            "9999-12-31T23:59:59.999Z (253402300799999 ms))",
        ),
        (["user.a@2", "--events", "x", "--since", "1000", "--until", "1000"], "--since must be before --until"),
        (["user.txn_count_1h"], "argument versions: must be entity.name@version references"),
        (["user.a@2", "txn@2"], "argument versions: must be entity.name@version references"),
        (["user.a@2,"], "argument versions: must be entity.name@version references"),
    ],
)
def test_a_bad_reference_or_range_is_a_usage_error_before_anything_connects(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FS_DEFINITIONS_DB", "/nonexistent/definitions.db")  # nothing may be opened
    assert said in _refused(argv, capsys)


def test_a_range_exactly_one_millisecond_long_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: dict[str, Any] = {}
    monkeypatch.setattr(backfill, "settings_for_command", lambda: None)
    monkeypatch.setattr(backfill, "run", lambda settings, refs, **kw: taken.update(refs=refs, **kw))
    argv = ["user.a@2,user.b@3", "user.c@4", "--events", "x.parquet", "--since", "999", "--until", "1000"]
    assert backfill.main(argv) == 0
    assert taken == {
        "refs": ["user.a@2", "user.b@3", "user.c@4"],
        "events": "x.parquet",
        "since": "999",
        "until": "1000",
    }


def _with_version_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: Window) -> DefinitionStore:
    """The shipped definitions, with a version 2 of ``user.txn_count_1h`` over ``window`` (not active), as
    ``FS_DEFINITIONS_DB``."""
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "window": window}))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    return store


def test_a_failed_job_is_one_line_with_its_error_and_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_version_2(tmp_path, monkeypatch, Window(kind="tumbling", size=timedelta(minutes=30)))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    # The job as it fails: progress, a Java trace, then its one error line, exit 1.
    script = (
        "import sys; print('[events] x.parquet: 3 events'); print('\\tat org.apache.flink.Foo(Foo.java:1)\\n' * 200); "
        "print(\"error: events table 'x.parquet': no such file or directory\", file=sys.stderr); sys.exit(1)"
    )
    real = subprocess.Popen

    def fake_job(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        assert cmd[1:3] == ["-m", "jobs.feature_job"]
        return real([sys.executable, "-c", script], **kwargs)

    monkeypatch.setattr(backfill.subprocess, "Popen", fake_job)
    assert backfill.main(["user.txn_count_1h@2", "--events", "x.parquet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "[events] x.parquet: 3 events"
    logs = sorted(tmp_path.glob("backfill-*.log"))
    assert err[-1] == (
        "error: backfill job failed (exit 1): events table 'x.parquet': no such file or directory; "
        f"active versions untouched; log {logs[-1]}"
    )
    assert not any("Foo.java" in line for line in err)


def test_the_failed_job_s_last_line_stands_in_for_a_missing_error_line(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("starting\nKilled\n\n")
    assert backfill.job_error(log) == "Killed"
    log.write_text("")
    assert backfill.job_error(log) == "it wrote nothing"


def test_progress_is_printed_every_few_seconds_however_long_a_round_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rounds of 1.3 s (a loaded machine): ``int(elapsed) % 5 == 0`` missed 5, 10, 15, ... and said nothing for
    20 s at a time; the offline rows are to be reported every few seconds (README)."""
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    apply(store, load_folder())
    v1 = store.catalog().get("user", "txn_count_1h")
    store.register(v1.model_copy(update={"version": 2, "window": Window(kind="tumbling", size=timedelta(minutes=30))}))
    clock = [0.0]

    class _Job:
        returncode = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.polls = 0

        def poll(self) -> int | None:
            self.polls += 1
            return None if self.polls <= 30 else 0  # 30 rounds: 39 s

    def sleep(seconds: float) -> None:
        clock[0] += 1.3

    monkeypatch.setattr(backfill.subprocess, "Popen", _Job)
    monkeypatch.setattr(backfill.time, "sleep", sleep)
    monkeypatch.setattr(backfill.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(backfill, "_current_snapshot", lambda settings: None)
    monkeypatch.setattr(backfill, "_committed_rows", lambda settings, since: 7)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    backfill.run(Settings.from_env(), ["user.txn_count_1h@2"])
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[backfill]")]
    assert [line.split(":")[0] for line in said[:-1]] == [
        f"[backfill] {s}s" for s in ("5", "10", "16", "21", "26", "31", "36")
    ]
    assert said[-1] == "[backfill] done in 39s: 7 offline rows"


def test_since_is_refused_for_a_session_version_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events were cut at --since before windowing: a session that began before it (gap 1m, events at since - 10 s
    and since + 5 s) was written as one starting at since + 5 s with one event, a window no stream run has.
    --until alone stays exact, and a tumbling version takes --since as before."""
    store = _with_version_2(tmp_path, monkeypatch, Window(kind="session", gap=timedelta(minutes=1)))
    v1 = store.catalog().get("user", "txn_count_1h", 1)
    started: list[Any] = []
    monkeypatch.setattr(backfill.subprocess, "Popen", lambda *args, **kwargs: started.append(args))
    with pytest.raises(FeatureStoreError, match=r"--since cannot cut session windows \(user\.txn_count_1h@2\)"):
        backfill.run(Settings.from_env(), ["user.txn_count_1h@2"], events="x.parquet", since="1700000000000")
    assert not started
    from jobs.batch_input import check_since

    check_since([store.catalog().get("user", "txn_count_1h", 2)], None)  # --until alone
    check_since([v1], "1700000000000")  # not a session
