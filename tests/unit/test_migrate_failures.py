"""``python -m sinks.cassandra.migrate`` when Cassandra fails in the middle of a migration (a node gone, a timeout):
one ``error:`` line saying how far it got, exit 1, never a traceback (docs/design.md §5.9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.definition_store import DefinitionStore
from sinks.cassandra import migrate


class _Failing:
    """A session with the legacy table, whose scan of it times out."""

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        from cassandra import OperationTimedOut

        if "system_schema.tables" in str(query):
            return [("online_feature_values",)]
        raise OperationTimedOut("errors={}, last_host=127.0.0.1:9042")

    def prepare(self, query: str) -> object:
        return object()


class _Cluster:
    shut = False

    def shutdown(self) -> None:
        _Cluster.shut = True


def test_cassandra_failing_mid_migration_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    DefinitionStore(tmp_path / "d.db")
    monkeypatch.setattr(migrate, "_connect", lambda settings: (_Cluster(), _Failing()))
    assert migrate.main(["--definitions-db", str(tmp_path / "d.db")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("error: Cassandra failed during the migration of keyspace "), err
    assert "0 values copied: OperationTimedOut" in err and "run it again" in err
    assert _Cluster.shut
