"""Per-entity erasure when a store fails part way, held to the docs' rule for every command (docs/design.md §6):
one ``error:`` line naming the problem, never a traceback, and (§9 "Per-entity erasure") saying what was left.

- Cassandra that accepted the connection but stops answering (a paused node, a network cut) during step 2: the
  driver's ``OperationTimedOut`` (or ``NoHostAvailable``) ended the command with a traceback, after step 1 had
  recorded the erasure and without saying that no store was erased. It is one line naming the online store,
  saying the erasure is recorded and the offline table, serving log and archives are untouched: run it again.
- A table of step 3 that cannot be read or changed (a data file missing, a refused commit) after the online delete:
  the line was ``erasure stopped: FileNotFoundError: ...`` (a file path), naming neither the table nor that the
  entity was erased online already and its erasure recorded; it names the store and where the entity is erased.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.erasures import ErasureStore
from serving.offline import erasure
from sinks.serving_log import ensure_log_table
from tests.unit.test_oracle_lifecycle_erasure import StubSession, _log
from tests.unit.test_oracle_lifecycle_faults import _one_error_line, env

__all__ = ["env"]  # the fixture, used by name


class _StalledSession:
    """A session whose every statement times out, as the driver reports a node that no longer answers."""

    def prepare(self, cql: str) -> Any:
        from cassandra import OperationTimedOut

        raise OperationTimedOut(errors={"127.0.0.1:9042": "Client request timeout"}, last_host="127.0.0.1:9042")

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self.prepare("")


class _Cluster:
    def shutdown(self) -> None:
        pass


def test_cassandra_failing_during_the_online_delete_is_one_line_saying_what_is_left(
    env: tuple[Path, Any, list[Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sinks.factory

    folder, table, _ = env
    monkeypatch.setattr(
        sinks.factory, "connect_existing_keyspace", lambda settings, **_: (_Cluster(), _StalledSession())
    )
    monkeypatch.setattr(erasure, "SETTLE_S", 0.0)
    monkeypatch.setattr(erasure.time, "sleep", lambda s: None)
    rows = table.scan().to_arrow().num_rows
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 1
    err = _one_error_line(capsys)
    assert "online store (Cassandra) failed erasing user/u1: OperationTimedOut" in err, err
    assert "the erasure is recorded" in err and "not from the offline table" in err and "run it again" in err, err
    assert ErasureStore(folder.parent / "definitions.db").snapshot().ids.keys() == {("user", "u1")}
    assert table.refresh().scan().to_arrow().num_rows == rows  # the offline table untouched, as the line says


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        ("offline_feature_values", "user/u1: erasing it from the offline table failed: FileNotFoundError"),
        ("serving_log", "user/u1: erasing it from the serving log failed: FileNotFoundError"),
    ],
)
def test_a_table_failing_after_the_online_delete_is_named_with_where_the_entity_is_erased(
    env: tuple[Path, Any, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    broken: str,
    says: str,
) -> None:
    import sinks.factory

    folder, table, _ = env
    _log(ensure_log_table(table.catalog, "fs"), [("user", "u1"), ("user", "u2")])
    session = StubSession()
    monkeypatch.setattr(sinks.factory, "connect_existing_keyspace", lambda settings, **_: (_Cluster(), session))
    monkeypatch.setattr(erasure.time, "sleep", lambda s: None)
    next(folder.rglob(f"{broken}/data/**/*.parquet")).unlink()  # a data file of that table gone
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 1
    err = _one_error_line(capsys)
    assert says in err, err
    erased = "erased online and its" if broken == "offline_feature_values" else "online, from the offline table and"
    assert erased in err and "but not the rest: run it again" in err, err
    assert [args[1:] for args in session.deleted] == [("user", "u1")]  # the online delete was done
