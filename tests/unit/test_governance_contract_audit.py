"""Retention and erasure runs in the audit log, failed ones included (docs/design.md §9 "Governance": every
write, allowed or refused, is one record written before the answer; the `retention`/`erase` actions).

A run that failed once its caller was known (a catalog refusing the commit, a table missing, an argument the
registry refuses, the online store down) left no record at all, while a successful run and a 403 did: the
audit could not tell that an admin had tried, nor what a half-done run had changed. Now it is recorded with
its outcome (503 a store failed or refused, 422 a refused argument, 500 a bug, recorded before its
traceback) and its error line in ``detail``; a
record that cannot be written is named in the command's one ``error:`` line, never a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry.access_store import AccessStore
from serving.offline import erasure, retention
from tests.unit.test_oracle_lifecycle_faults import _fail_commit, _one_error_line, env
from tests.unit.test_training_sets import iceberg_table

__all__ = ["env"]  # the fixture, used by name


@pytest.fixture
def admin(env: tuple[Path, Any, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AccessStore:
    """``env`` with FS_AUTH=on and an admin token in FS_TOKEN; the store holding the audit log."""
    store = AccessStore(tmp_path / "definitions.db")
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_TOKEN", store.issue("ops", "platform", admin=True))
    return store


def _audited(store: AccessStore) -> list[tuple[str, str, int, str]]:
    return [(r["action"], r["target"], r["outcome"], r["detail"]) for r in store.audit(principal="ops")]


def test_a_retention_run_whose_commit_is_refused_is_audited_with_its_error(
    admin: AccessStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with monkeypatch.context() as m:
        _fail_commit(m, 1)
        assert retention.main(["--orphans-older-than", "0s"]) == 1
    err = _one_error_line(capsys)
    ((action, target, outcome, detail),) = _audited(admin)
    assert (action, target, outcome) == ("retention", "table:fs", 503)
    assert "could not delete rows of fs.offline_feature_values" in detail and err == f"error: {detail}"
    assert retention.main(["--orphans-older-than", "0s"]) == 0  # the rerun: newest first
    assert [(a, o) for a, _, o, _ in _audited(admin)] == [("retention", 200), ("retention", 503)]


@pytest.mark.parametrize(("args", "action"), [([], "retention"), (["--dry-run"], "retention_dry_run")])
def test_a_retention_run_on_a_missing_table_is_audited(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    action: str,
) -> None:
    store = AccessStore(tmp_path / "definitions.db")
    monkeypatch.setenv("FS_AUTH", "on")
    monkeypatch.setenv("FS_TOKEN", store.issue("ops", "platform", admin=True))
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(tmp_path / "definitions.db"))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    assert retention.main(args) == 1
    assert "offline table fs.offline_feature_values does not exist" in _one_error_line(capsys)
    ((a, target, outcome, detail),) = _audited(store)
    assert (a, target, outcome) == (action, "table:fs", 503) and "does not exist" in detail


@pytest.mark.parametrize(
    ("args", "target", "outcome", "says"),
    [
        (["--entity-type", "user", "--key", "user_id=x"], "entity:user/user_id=x", 422, "'user' has no composite key"),
        (["--entity-type", "user", "--entity-id", ""], "entity:user/", 422, "give an entity type and an entity id"),
        (["--entity-type", "user", "--entity-id", "u1"], "entity:user/u1", 503, "Cassandra at 127.0.0.1:1"),
    ],
)
def test_an_erasure_that_fails_is_audited_with_its_error(
    admin: AccessStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    target: str,
    outcome: int,
    says: str,
) -> None:
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")  # nothing listens
    assert erasure.main(args) == 1
    err = _one_error_line(capsys)
    ((action, t, o, detail),) = _audited(admin)
    assert (action, t, o) == ("erase", target, outcome)
    assert says in detail and err == f"error: {detail}"


@pytest.mark.parametrize("command", ["retention", "erasure"])
def test_an_audit_record_that_cannot_be_written_is_named_in_the_error_line(
    admin: AccessStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """A failed run whose record cannot be written says both; it was a traceback on the success path."""

    def refuse(self: Any, records: Any) -> int:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(AccessStore, "record", refuse)
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")
    main, args = (
        (retention.main, ["--dry-run"])
        if command == "retention"
        else (erasure.main, ["--entity-type", "user", "--key", "user_id=x"])
    )
    assert main(args) == 1
    err = _one_error_line(capsys)
    assert "(its audit record could not be written: OperationalError: attempt to write a readonly database)" in err


def test_a_retention_run_whose_audit_record_cannot_be_written_prints_its_report_and_says_so(
    admin: AccessStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(self: Any, records: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(AccessStore, "record", refuse)
    assert retention.main(["--orphans-older-than", "0s"]) == 1
    out, err = capsys.readouterr()
    assert '"rows_removed_total": 2' in out
    assert (
        err == "error: retention completed (its audit record could not be written: OperationalError: disk I/O error)\n"
    )


@pytest.mark.parametrize(
    ("main", "args"),
    [
        (retention.main, ["--dry-run"]),
        (erasure.main, ["--entity-type", "user", "--entity-id", "u1"]),
    ],
)
@pytest.mark.parametrize("auth", ["on", "off"])
def test_a_registry_database_that_is_not_sqlite_is_one_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    main: Any,
    args: list[str],
    auth: str,
) -> None:
    """FS_DEFINITIONS_DB naming a file that is not a database was a `sqlite3.DatabaseError` traceback."""
    bad = tmp_path / "definitions.db"
    bad.write_text("not a database\n")
    monkeypatch.setenv("FS_AUTH", auth)
    monkeypatch.setenv("FS_TOKEN", "fs_abc_def")
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(bad))
    monkeypatch.setenv("FS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path}/cat.db")
    monkeypatch.setenv("FS_ICEBERG_WAREHOUSE", (tmp_path / "wh").as_uri())
    monkeypatch.setenv("FS_ICEBERG_NAMESPACE", "fs")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")
    iceberg_table(tmp_path, "feature_store")  # the offline table is there: the registry's database is what fails
    assert main(args) == 1
    err = _one_error_line(capsys)
    assert (
        err == f"error: registry database {bad} (FS_DEFINITIONS_DB) not usable: DatabaseError: file is not a database"
    )


def _failing_midway(
    command: str, monkeypatch: pytest.MonkeyPatch, failure: Callable[..., Any]
) -> tuple[Callable[[list[str]], int], list[str], str, str]:
    """``command`` (retention or erasure) made to call ``failure`` once its caller is known: its main, arguments,
    audited action and target."""
    if command == "retention":
        monkeypatch.setattr(retention, "apply_retention", failure)
        return retention.main, [], "retention", "table:fs"
    monkeypatch.setattr("sinks.factory.connect_cassandra", failure)
    return erasure.main, ["--entity-type", "user", "--entity-id", "u1"], "erase", "entity:user/u1"


@pytest.mark.parametrize("command", ["retention", "erasure"])
def test_a_run_stopped_by_a_bug_is_audited_before_its_traceback(
    admin: AccessStore, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug\nwith a second line")

    main, args, action, target = _failing_midway(command, monkeypatch, bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(args)
    assert _audited(admin) == [(action, target, 500, "a bug with a second line")]


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(143)], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("command", ["retention", "erasure"])
def test_a_run_stopped_half_way_is_audited_as_interrupted(
    admin: AccessStore, monkeypatch: pytest.MonkeyPatch, command: str, stop: BaseException
) -> None:
    """A run stopped by Ctrl-C or SIGTERM (``registry.core.interrupt.run_command``: SystemExit(143)) once its caller
    was known left no record, though it may have changed stores already (an erasure's record is its step 1)."""

    def stopped(*args: Any, **kwargs: Any) -> Any:
        raise stop

    main, args, action, target = _failing_midway(command, monkeypatch, stopped)
    with pytest.raises(type(stop)):
        main(args)
    name = "retention" if command == "retention" else "erasure"
    how = "interrupted (Ctrl-C)" if isinstance(stop, KeyboardInterrupt) else "terminated (exit 143)"
    assert _audited(admin) == [(action, target, 499, f"{name} {how}")]
