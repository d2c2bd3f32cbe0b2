"""The stream job's, the backfill's and the archiver's options are checked by argparse before anything connects:
a malformed one exits 2 with one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import backfill, feature_job
from registry.core.errors import FeatureStoreError
from sinks import archive


def _refused(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main(argv)  # type: ignore[operator]
    assert caught.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--bind-host", ""], "argument --bind-host: must be one host name or IPv4 address, not ''"),
        (["--bind-host", "bad host"], "argument --bind-host: must be one host name or IPv4 address"),
        (["--bind-host", "h:1"], "argument --bind-host"),
        (["--versions", ""], "argument --versions: must be entity.name@version references separated by commas"),
        (["--versions", "user.a@1,"], "argument --versions"),
        (["--events", "x.parquet", "--since", "bogus"], "argument --since: 'bogus' is neither an ISO-8601 time"),
        (["--events", "x.parquet", "--since", "\u0661\u0662"], "argument --since"),  # Arabic-Indic digits
        (
            ["--events", "x.parquet", "--until", "2026-01-01T00:00:00"],
            "argument --until: '2026-01-01T00:00:00' needs a time zone",
        ),
        (["--events", "x.parquet", "--until", "1970-01-01T00:00:00.0015Z"], "give a whole millisecond"),
        # past the 6th digit: Python's ISO reader dropped it, and this was the whole millisecond before it
        (["--events", "x.parquet", "--until", "2026-12-05T14:00:00.0000009Z"], "a fraction of a microsecond"),
        (["--events", "x.parquet", "--since", "2000", "--until", "2000"], "--since must be before --until"),
        (["--since", "2000"], "--since and --until need --events"),
        # an empty group id aborted the job inside librdkafka (SIGABRT, exit 134, no error line)
        (["--group-id", ""], "argument --group-id: must be a consumer group's name"),
        (["--group-id", "  "], "argument --group-id: must be a consumer group's name"),
        (["--group-id", "a\nb"], "argument --group-id: must be a consumer group's name"),
        # design §5.4: a bounded source restored from a checkpoint never ends (a run that hung, not an error)
        (
            ["--bounded", "--restore-from", "/c/chk-1"],
            "--restore-from resumes an unbounded run, not --bounded: a bounded source restored from a checkpoint",
        ),
        (
            ["--events", "x.parquet", "--restore-from", "/c/chk-1"],
            "--restore-from resumes an unbounded run, not --events",
        ),
    ],
)
def test_the_job_refuses_a_malformed_option_in_one_line(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert names in _refused(feature_job.main, argv, capsys)


def test_the_job_refuses_a_checkpoint_it_could_not_write_or_restore_before_it_connects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flink found these out once the job ran (stores prepared, mini-cluster started) and named neither option:
    "the job failed: FileAlreadyExistsException: <path>" or "... Cannot find checkpoint or savepoint"."""
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "absent.db"))  # reached only if the options pass
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    checkpoint = tmp_path / "checkpoints" / "0f" / "chk-3"
    checkpoint.mkdir(parents=True)
    refused = [
        (["--checkpoint-dir", str(a_file)], f"--checkpoint-dir {a_file}: {a_file} is not a folder"),
        (["--checkpoint-dir", str(a_file / "sub")], f"--checkpoint-dir {a_file}/sub: {a_file} is not a folder"),
        (["--restore-from", str(checkpoint)], f"--restore-from {checkpoint}: no checkpoint there"),  # no _metadata
        (["--restore-from", f"file://{tmp_path}/nowhere/chk-1"], "no checkpoint there"),
        (["--restore-from", str(checkpoint.parent)], "no checkpoint there (a retained <checkpoint dir>/<job id>/chk"),
    ]
    for argv, names in refused:
        assert names in _refused(feature_job.main, argv, capsys)
    (checkpoint / "_metadata").write_bytes(b"\x00")
    # past the options: the next thing checked is the registry (a missing one is refused with its variable's name)
    for argv in (
        ["--checkpoint-dir", str(tmp_path / "new" / "folder"), "--restore-from", str(checkpoint)],
        ["--restore-from", f"file://{checkpoint}"],
        ["--restore-from", str(checkpoint / "_metadata")],
        ["--restore-from", "s3://bucket/checkpoints/0f/chk-3"],  # another file system: Flink's to judge
        ["--restore-from", f"file://localhost{checkpoint}"],  # a host: the path after it
    ):
        with pytest.raises(FeatureStoreError, match="FS_DEFINITIONS_DB"):
            feature_job.main(argv)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["user.a@2", "--events", "x.parquet", "--since", "bogus"], "argument --since: 'bogus' is neither"),
        (["user.a@2", "--events", "x.parquet", "--until", "\u0661\u0662"], "argument --until"),
        (["user.a@2", "--events", "x.parquet", "--since", "2000", "--until", "1000"], "--since must be before --until"),
        (["user.a@2", "--since", "2000"], "--since and --until need --events"),
    ],
)
def test_the_backfill_refuses_a_malformed_range_before_it_starts_a_job(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert names in _refused(backfill.main, argv, capsys)


@pytest.mark.parametrize("raw", ["nan", "inf", "-5", "x", ""])
def test_the_archiver_takes_finite_seconds_of_zero_or_more(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --expire-after-s: must be a number of 0 or more" in _refused(
        archive.main, ["--topic", "t", "--expire-after-s", raw], capsys
    )


@pytest.mark.parametrize("raw", ["nan", "inf", "-5", "x", "", "86400.001", "5e10"])
def test_the_archiver_waits_for_a_batch_a_day_at_most(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    """5e10 was taken, then the idle archiver's sleep failed with OverflowError (platform time_t)."""
    assert "argument --max-wait-s: must be a number from 0 to 86400" in _refused(
        archive.main, ["--topic", "t", "--max-wait-s", raw], capsys
    )


@pytest.mark.parametrize("raw", [" 5d", "5d\n", "5 d"])
def test_the_archive_retention_is_a_duration_with_nothing_around_it(
    raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "argument --retention" in _refused(archive.main, ["--topic", "t", "--retention", raw], capsys)


@pytest.mark.parametrize("raw", ["0s", "0ms", "0d"])
def test_the_archive_retention_is_above_zero(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    """0 was taken, and the archiver's first round deleted every record it held (backfills' history)."""
    assert "argument --retention: must be above 0" in _refused(
        archive.main, ["--topic", "t", "--retention", raw], capsys
    )


@pytest.mark.parametrize("raw", ["", " ", "a\x00b"])
def test_follow_refuses_a_group_id_prefix_no_job_could_take(raw: str, capsys: pytest.CaptureFixture[str]) -> None:
    from jobs import follow

    assert "argument --group-id: must be a consumer group's name" in _refused(follow.main, ["--group-id", raw], capsys)


def test_checkpoint_locations_are_read_as_flink_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``file:`` URI's path is not unescaped and keeps ``#`` and ``?`` (``urlsplit`` cut them off: a checkpoint Flink
    restores was refused); a folder that cannot be searched is one line naming the option, not a PermissionError;
    under ``flink run`` the paths are the cluster's, not checked here."""
    from jobs.flink_environment import checkpoint_options_problem

    odd = tmp_path / "a#b?c%20d" / "chk-1"
    odd.mkdir(parents=True)
    (odd / "_metadata").write_bytes(b"\x00")
    assert checkpoint_options_problem(None, f"file://{odd}") is None
    assert checkpoint_options_problem(None, f"file:{odd}") is None
    assert checkpoint_options_problem(None, str(odd)) is None
    assert checkpoint_options_problem(None, f"file://{tmp_path}/a%23b/chk-1") is not None  # not unescaped
    assert checkpoint_options_problem(None, "file:rel/chk-1") == (
        "--restore-from file:rel/chk-1: a file: URI's path is absolute (file:///<path>)"
    )

    def refused(*_: object, **__: object) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "exists", refused)
    monkeypatch.setattr(Path, "is_file", refused)
    assert (
        checkpoint_options_problem(tmp_path / "x", None)
        == f"--checkpoint-dir {tmp_path}/x: cannot be read (Permission denied)"
    )
    assert checkpoint_options_problem(None, str(odd)) == f"--restore-from {odd}: cannot be read (Permission denied)"
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "25333")  # submitted by `flink run`
    assert checkpoint_options_problem(tmp_path / "x", "/nowhere/chk-1") is None
