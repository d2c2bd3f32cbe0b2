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
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FS_STATE_DIR": str(tmp_path / "state"),
        "FS_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}",
        "FS_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{closed_port}",
        "FS_CASSANDRA_PORT": str(closed_port),
        "PYTHONPATH": str(REPO),
    }
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
