"""design §5.6: a batch run writes the records the decoder would refuse to ``--rejected`` (Parquet). A path that
cannot be written (a folder, or under a file) used to end the run in Python's traceback (IsADirectoryError,
FileExistsError); now one line naming ``--rejected``, exit 1, before the job starts: nothing written anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_an_unwritable_rejected_path_is_named_in_one_line(where: str, closed_port: int, tmp_path: Path) -> None:
    env = _env(tmp_path, closed_port)
    applied = subprocess.run(
        [sys.executable, "-m", "registry.cli", "apply"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert applied.returncode == 0, applied.stderr
    now = time.time_ns() // 1_000_000
    events = tmp_path / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "transaction_id": ["t1", "t2"],
                "user_id": ["u", "u"],
                "merchant_id": ["m", "m"],
                "amount": [1.0, float("nan")],
                "currency": ["EUR", "EUR"],
                "event_time": [now - 7_200_000, now - 7_100_000],
            }
        ),
        events,
    )
    rejected = tmp_path if where == "folder" else events / "rejected.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "jobs.feature_job", "--events", str(events), "--rejected", str(rejected)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --rejected {rejected}: cannot write the 1 rejected record(s): "), done.stderr
    assert "Traceback" not in done.stderr


def _env(tmp_path: Path, closed_port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FS_STATE_DIR": str(tmp_path / "state"),
        "FS_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}",
        "FS_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{closed_port}",
        "FS_CASSANDRA_PORT": str(closed_port),
        "PYTHONPATH": str(REPO),
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("which", ["empty", "all_rejected"])
def test_a_table_with_no_event_left_writes_nothing_and_exits_0(which: str, closed_port: int, tmp_path: Path) -> None:
    """Before: ``ValueError: range() arg 3 must not be zero`` from Flink's ``from_pandas`` of no rows. Nothing is
    started (the stores are closed ports here: reaching one would fail the run)."""
    env = _env(tmp_path, closed_port)
    assert _run(["registry.cli", "apply"], env).returncode == 0
    now = time.time_ns() // 1_000_000
    amounts = [] if which == "empty" else [float("nan")]
    events = tmp_path / "events.parquet"
    columns = {"transaction_id": "t", "user_id": "u", "merchant_id": "m", "currency": "EUR"}
    table = {name: pa.array([value] * len(amounts), pa.string()) for name, value in columns.items()}
    table["amount"] = pa.array(amounts, pa.float64())
    table["event_time"] = pa.array([now - 7_200_000] * len(amounts), pa.int64())
    pq.write_table(pa.table(table), events)
    done = _run(["jobs.feature_job", "--events", str(events), "--rejected", str(tmp_path / "r.parquet")], env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[events] no events to compute: nothing written", done.stderr


def test_rejected_without_events_is_a_usage_error(closed_port: int, tmp_path: Path) -> None:
    done = _run(["jobs.feature_job", "--rejected", str(tmp_path / "r.parquet")], _env(tmp_path, closed_port))
    assert done.returncode == 2 and "--rejected needs --events" in done.stderr, done.stderr


def test_the_job_refuses_a_missing_definition_store_and_creates_none(closed_port: int, tmp_path: Path) -> None:
    """As every other command that reads definitions: before, the job created an empty registry file there."""
    env = {**_env(tmp_path, closed_port), "FS_DEFINITIONS_DB": str(tmp_path / "none.db")}
    done = _run(["jobs.feature_job", "--events", str(tmp_path / "e.parquet")], env)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith(
        f"error: FS_DEFINITIONS_DB={tmp_path / 'none.db'}: no definition store there"
    ), done.stderr
    assert not (tmp_path / "none.db").exists()


def test_paths_holding_a_line_feed_are_named_quoted_in_one_line(closed_port: int, tmp_path: Path) -> None:
    """design §6: a path someone gave is named through ``shown`` (quoted as ``repr`` writes it when a character is
    not printable). Before, ``[events] <path>: N events``, ``... written to <path>`` and ``--rejected <path>: cannot
    write ...`` printed it raw: a line feed in it split one line in two (found by an audit)."""
    env = _env(tmp_path, closed_port)
    assert _run(["registry.cli", "apply"], env).returncode == 0
    now = time.time_ns() // 1_000_000
    events = tmp_path / "all\nbad.parquet"
    table = {name: pa.array([value], pa.string()) for name, value in {"transaction_id": "t", "user_id": "u"}.items()}
    table |= {"merchant_id": pa.array(["m"]), "currency": pa.array(["EUR"]), "amount": pa.array([float("nan")])}
    table["event_time"] = pa.array([now - 7_200_000], pa.int64())
    pq.write_table(pa.table(table), events)
    rejected = tmp_path / "r\nnl.parquet"
    done = _run(["jobs.feature_job", "--events", str(events), "--rejected", str(rejected)], env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert f"[events] {str(events)!r}: 0 events" in lines, done.stderr
    assert f"[events] 1 rejected (non_finite: 1), written to {str(rejected)!r}" in lines, done.stderr
    assert pq.read_table(rejected).num_rows == 1
    under = events / "a\nb.parquet"  # under a file: cannot be written
    done = _run(["jobs.feature_job", "--events", str(events), "--rejected", str(under)], env)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --rejected {str(under)!r}: cannot write the 1 rejected record(s): "), done.stderr
