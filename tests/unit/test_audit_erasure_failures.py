"""Per-entity erasure when a store fails part way, held to the docs' rule for every command (docs/design.md §6):
one ``error:`` line naming the problem, never a traceback, and (§9 "Per-entity erasure") saying what was left.

- Cassandra that accepted the connection but stops answering (a paused node, a network cut) during step 2: the
  driver's ``OperationTimedOut`` (or ``NoHostAvailable``) ended the command with a traceback, after step 1 had
  recorded the erasure and without saying that no store was erased. It is one line naming the online store,
  saying the erasure is recorded and the offline table, serving log and archives are untouched: run it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.erasures import ErasureStore
from serving.offline import erasure
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
    monkeypatch.setattr(sinks.factory, "connect_cassandra", lambda settings: (_Cluster(), _StalledSession()))
    monkeypatch.setattr(erasure, "SETTLE_S", 0.0)
    monkeypatch.setattr(erasure.time, "sleep", lambda s: None)
    rows = table.scan().to_arrow().num_rows
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 1
    err = _one_error_line(capsys)
    assert "online store (Cassandra) failed erasing user/u1: OperationTimedOut" in err, err
    assert "the erasure is recorded" in err and "not from the offline table" in err and "run it again" in err, err
    assert ErasureStore(folder.parent / "definitions.db").snapshot().ids.keys() == {("user", "u1")}
    assert table.refresh().scan().to_arrow().num_rows == rows  # the offline table untouched, as the line says
