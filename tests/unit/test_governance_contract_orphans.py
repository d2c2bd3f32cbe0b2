"""docs/design.md §9 "Per-entity erasure", step 3: a file the erasure cannot delete "is named in the error; no
snapshot reaches it, and retention's orphan removal deletes it — re-running the erasure does not".

Retention removed orphans of the offline table only: a serving-log or events-archive file an erasure could
not delete (holding the erased entity's rows) stayed on disk for good. Now a (non-dry) retention run removes
the unreachable files of those tables too, by the same ``--orphans-older-than`` rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.core.errors import StoreUnavailableError
from serving.offline import retention
from serving.offline.erasure import erase_archive, erase_table
from sinks import archive
from sinks.serving_log import ensure_log_table
from tests.unit.test_oracle_lifecycle_erasure import _log
from tests.unit.test_oracle_lifecycle_faults import SHORT, env

__all__ = ["env"]  # the fixture, used by name


def _archive(catalog: Any) -> Any:
    table = archive.ensure_table(catalog, "fs", SHORT.source.topic)
    records = archive.ARROW_SCHEMA.empty_table().to_pydict()
    for i, key in enumerate([b"u1", b"u2"]):
        for c, v in (("kafka_timestamp", 0), ("partition", 0), ("offset", i), ("key", key), ("schema_id", 1),
                     ("payload", b"x"), ("archived_at", 0)):  # fmt: skip
            records[c].append(v)
    table.append(pa.Table.from_pydict(records, schema=archive.ARROW_SCHEMA), {archive.NEXT_OFFSETS: '{"0": 2}'})
    return table.refresh()


@pytest.mark.parametrize("store", ["serving_log", "archive"])
def test_a_file_an_erasure_could_not_delete_goes_with_the_next_retention_run(
    env: tuple[Path, Any, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    store: str,
) -> None:
    from pyiceberg.io.pyarrow import PyArrowFileIO

    _, offline, _ = env
    held: Any
    erase: Callable[[Any], Any]
    if store == "serving_log":
        table = ensure_log_table(offline.catalog, "fs")
        _log(table, [("user", "u1"), ("user", "u2")])
        table, column, held = table.refresh(), "entity_id", "u1"
        erase = lambda t: erase_table(t, "user", "u1")  # noqa: E731
    else:
        table, column, held = _archive(offline.catalog), "key", b"u1"
        erase = lambda t: erase_archive(t, "u1")  # noqa: E731
    location = Path(table.location().removeprefix("file://"))

    def on_disk() -> list[Any]:
        return [v for p in location.rglob("*.parquet") for v in pq.read_table(p).column(column).to_pylist()]

    def refuse(self: Any, path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    with monkeypatch.context() as m:
        m.setattr(PyArrowFileIO, "delete", refuse)
        with pytest.raises(StoreUnavailableError, match="could not be deleted"):
            erase(table)
    assert held not in table.refresh().scan().to_arrow().column(column).to_pylist()
    assert held in on_disk()  # the file no snapshot reaches
    assert retention.main(["--dry-run", "--orphans-older-than", "0s"]) == 0
    assert held in on_disk()  # a dry run deletes nothing
    capsys.readouterr()
    assert retention.main(["--orphans-older-than", "0s"]) == 0
    assert held not in on_disk()
    assert on_disk() == table.refresh().scan().to_arrow().column(column).to_pylist()  # the live rows stay
    capsys.readouterr()


def test_offline_files_an_erasure_could_not_delete_do_not_stop_it_before_the_other_stores(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of the offline table that cannot be deleted (after its rows are gone and its snapshots expired)
    stopped the erasure there: the serving log and the events archive still held the entity, and the error
    line said only that retention would delete the files. Now every store is erased, the report names the
    files left, and the report is recorded."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    from registry.definition_store import DefinitionStore
    from registry.erasures import ErasureStore
    from registry.training_sets import TrainingSetStore
    from serving.offline import erasure

    folder, offline, _ = env
    log = ensure_log_table(offline.catalog, "fs")
    _log(log, [("user", "u1"), ("user", "u2")])
    log = log.refresh()
    archived = _archive(offline.catalog)
    offline_location = offline.location()
    real_delete = PyArrowFileIO.delete

    def refuse_offline(self: Any, path: str) -> None:
        if path.startswith(offline_location):
            raise PermissionError(13, "Permission denied", path)
        real_delete(self, path)

    db = Path(folder).parent / "definitions.db"
    monkeypatch.setattr(erasure, "erase_online", lambda *args: 0)
    monkeypatch.setattr(PyArrowFileIO, "delete", refuse_offline)
    report = erasure.erase(
        "user",
        "u1",
        session=None,  # type: ignore[arg-type]  # erase_online is replaced
        keyspace="fs",
        offline=offline,
        serving_log=log,
        catalog=DefinitionStore(db).catalog(),
        archives={SHORT.source.topic: archived},
        erasures=ErasureStore(db),
        training_sets=TrainingSetStore(db),
        kafka_bootstrap=None,
        serving_log_topic="fs_serving_log",
        settle_s=0,
    )
    assert report.offline.rows_removed == 2 and report.offline.snapshots_expired > 0
    assert len(report.files_left) == 1 and "could not be deleted" in report.files_left[0]
    assert report.serving_log is not None and report.serving_log.rows_removed == 1
    assert report.archives[SHORT.source.topic].rows_removed == 1
    assert "u1" not in log.refresh().scan().to_arrow().column("entity_id").to_pylist()
    assert b"u1" not in archived.refresh().scan().to_arrow().column("key").to_pylist()
    recorded = ErasureStore(db).get("user", "u1")
    assert recorded is not None and "could not be deleted" in recorded["report"]


def _archive_after_a_foreign_delete(catalog: Any) -> Any:
    """Offsets 0-3 archived (next offset 4); then another tool's delete of the highest (3) that does not carry
    the offsets property (design §5.7): only the append's snapshot says 4."""
    from pyiceberg.expressions import EqualTo

    table = archive.ensure_table(catalog, "fs", "foreign_topic")
    at = 1_764_504_000_000_000
    records = {
        "kafka_timestamp": [at] * 4, "partition": [0] * 4, "offset": [0, 1, 2, 3],
        "key": [b"u1", b"u9", b"u2", b"junk"], "schema_id": [1] * 4, "payload": [b"x"] * 4, "archived_at": [at] * 4,
    }  # fmt: skip
    table.append(pa.Table.from_pydict(records, schema=archive.ARROW_SCHEMA), {archive.NEXT_OFFSETS: '{"0": 4}'})
    table.refresh().delete(EqualTo("key", b"junk"))
    table = table.refresh()
    assert archive.next_offsets(table) == {0: 4}  # from the append, the delete's parent
    return table


def test_erasing_from_an_archive_keeps_its_next_offsets_after_a_foreign_delete(
    env: tuple[Path, Any, list[Any]],
) -> None:
    """The erasure's delete carried the offsets only from the current snapshot (the foreign delete's, which has
    none) and then expired the append that held them: the next offset fell back to one past the highest row
    left, 3, and the archiver would archive offset 3 again."""
    _, offline, _ = env
    table, erased = erase_archive(_archive_after_a_foreign_delete(offline.catalog), "u9")
    assert erased.rows_removed == 1 and erased.snapshots_expired == 2
    assert archive.next_offsets(table.refresh()) == {0: 4}


def test_the_archivers_expiry_keeps_the_snapshot_holding_its_offsets(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, offline, _ = env
    table = _archive_after_a_foreign_delete(offline.catalog)
    archiver = archive.Archiver(None, table, "foreign_topic", expire_after_s=1.0)  # type: ignore[arg-type]
    later_ns = (max(s.timestamp_ms for s in table.metadata.snapshots) + 10_000) * 1_000_000
    monkeypatch.setattr(archive.time, "time_ns", lambda: later_ns)  # both snapshots older than expire_after_s
    archiver._expire()
    table = table.refresh()
    assert archive.next_offsets(table) == {0: 4}
    assert len(table.metadata.snapshots) == 2  # nothing else to expire: the append holds the offsets


def test_the_erasure_names_the_serving_log_topic_the_api_logs_to(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It named the default topic whatever FS_SERVING_LOG_TOPIC the API logged to; it now reads the same setting,
    and a malformed one is one error line before any store is touched."""
    from serving.offline import erasure

    monkeypatch.setenv("FS_SERVING_LOG_TOPIC", "no spaces allowed")
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "FS_SERVING_LOG_TOPIC" in err and len(err.splitlines()) == 1
    seen: list[list[str]] = []

    class _Cluster:
        def shutdown(self) -> None:
            pass

    monkeypatch.setenv("FS_SERVING_LOG_TOPIC", "team_a.served")
    monkeypatch.setattr("sinks.factory.connect_existing_keyspace", lambda settings, **_: (_Cluster(), None))
    monkeypatch.setattr(erasure, "erase_online", lambda *args: 0)

    def horizon(bootstrap: str, topics: list[str], now: Any) -> list[dict[str, str]]:
        seen.append(topics)
        return []

    monkeypatch.setattr(erasure, "kafka_horizon", horizon)
    monkeypatch.setattr(erasure.time, "sleep", lambda seconds: None)
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 0, capsys.readouterr().err
    assert seen and seen[0][-1] == "team_a.served"


def test_an_expiry_age_past_1970_keeps_every_snapshot_and_does_not_crash(env: tuple[Path, Any, list[Any]]) -> None:
    """`--expire-after-s 1e306` passed the parser (finite), then the first round stopped the archiver with an
    OverflowError traceback."""
    _, offline, _ = env
    table = _archive_after_a_foreign_delete(offline.catalog)
    archive.Archiver(None, table, "foreign_topic", expire_after_s=1e306)._expire()  # type: ignore[arg-type]
    assert len(table.refresh().metadata.snapshots) == 2
