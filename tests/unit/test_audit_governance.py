"""Audit of governance (docs/design.md §9 "Governance", "Retention", "Per-entity erasure"; README "Retention
and erasure"): boundaries and bad input of retention, erasure and the access rules.

- Retention and erasure refuse an FS_DEFINITIONS_DB that is not the registry. A missing file and a folder were
  refused already; an empty file or another program's SQLite database was taken as the registry: the registry's
  tables were created in it, and retention then expired every snapshot but the current one (the snapshots the
  real registry's training sets pin included), exit 0. So were ``registry.access``'s reading commands (an
  ``audit`` printed nothing, exit 0, and created the access tables there).
- Erasure's step 5 names each Kafka topic with the date its records are gone by: a topic kept "forever" by a
  ``retention.ms`` of 2^63-1 (rather than -1) overflowed the date (``OverflowError`` traceback after every store was
  erased, the report never recorded), and a compacted topic was dated by ``retention.ms`` it does not apply.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from serving.offline import erasure, retention
from serving.offline.erasure import kafka_horizon
from tests.unit.test_oracle_lifecycle_faults import _one_error_line, env

__all__ = ["env"]  # the fixture, used by name


def _not_the_registry(path: Path, kind: str) -> None:
    if kind == "empty file":
        path.write_bytes(b"")
    else:  # another program's SQLite database
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
        conn.close()


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("auth", ["off", "on"])
@pytest.mark.parametrize("args", [[], ["--dry-run"]])
@pytest.mark.parametrize("kind", ["empty file", "other database"])
def test_retention_refuses_a_registry_file_that_holds_no_registry(
    env: tuple[Path, Any, list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    auth: str,
    args: list[str],
    kind: str,
) -> None:
    _, table, _ = env
    snapshots = [s.snapshot_id for s in table.snapshots()]
    assert len(snapshots) == 2
    db = tmp_path / "wrong.db"
    _not_the_registry(db, kind)
    before = _tables(db)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_AUTH", auth)
    monkeypatch.setenv("FS_TOKEN", "fs_abc_def")
    assert retention.main([*args, "--orphans-older-than", "0s"]) == 1
    assert _one_error_line(capsys) == (
        f"error: registry database {db} (FS_DEFINITIONS_DB) holds no registry (an empty file, or another "
        "program's database): retention needs the registry the stream job and the training sets use"
    )
    assert [s.snapshot_id for s in table.refresh().snapshots()] == snapshots  # no snapshot expired
    assert _tables(db) == before  # nothing created there


@pytest.mark.parametrize("auth", ["off", "on"])
@pytest.mark.parametrize("kind", ["empty file", "other database"])
def test_erasure_refuses_a_registry_file_that_holds_no_registry(
    env: tuple[Path, Any, list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    auth: str,
    kind: str,
) -> None:
    db = tmp_path / "wrong.db"
    _not_the_registry(db, kind)
    before = _tables(db)
    monkeypatch.setenv("FS_DEFINITIONS_DB", str(db))
    monkeypatch.setenv("FS_AUTH", auth)
    monkeypatch.setenv("FS_TOKEN", "fs_abc_def")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")
    assert erasure.main(["--entity-type", "user", "--entity-id", "u1"]) == 1
    assert "(FS_DEFINITIONS_DB) holds no registry (an empty file, or another program's database): erasure needs" in (
        _one_error_line(capsys)
    )
    assert _tables(db) == before  # no erasure recorded, no table created


@pytest.mark.parametrize(
    "argv",
    [
        ["list-tokens"],
        ["list-grants"],
        ["audit"],
        ["revoke-token", "abc"],
        ["revoke-grant", "--owner", "a", "--to", "b"],
    ],
)
@pytest.mark.parametrize("kind", ["empty file", "other database"])
def test_access_commands_that_read_or_undo_refuse_a_file_that_holds_no_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], kind: str
) -> None:
    """README: ``registry.access`` creates its store only for create-token and grant and, like ``registry.cli``,
    refuses a file that is not one (an empty file, another program's database): one ``error:`` line naming
    ``--db``, exit 1, nothing created there. An ``audit`` there printed nothing, exit 0, as if no record matched."""
    from registry import access

    db = tmp_path / "wrong.db"
    _not_the_registry(db, kind)
    before = _tables(db)
    assert access.main(["--db", str(db), *argv]) == 1
    assert _one_error_line(capsys) == (
        f"error: --db {db}: no registry store there (an empty file, or another program's database; "
        "create-token or grant creates it)"
    )
    assert _tables(db) == before


def test_access_commands_read_a_registry_that_holds_no_token_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry's file before any token (definitions applied, nothing else) is the store: nothing listed."""
    from registry import access
    from registry.definition_store import DefinitionStore

    db = tmp_path / "definitions.db"
    DefinitionStore(db)
    assert access.main(["--db", str(db), "list-tokens"]) == 0
    assert access.main(["--db", str(db), "audit"]) == 0
    assert capsys.readouterr().out == ""


class _FakeAdmin:
    """An AdminClient answering ``list_topics`` and ``describe_configs`` from ``CONFIGS`` (topic -> config)."""

    CONFIGS: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, conf: dict[str, Any]) -> None:
        pass

    def list_topics(self, timeout: float = 0) -> Any:
        return SimpleNamespace(topics=dict.fromkeys(self.CONFIGS), brokers={})

    def describe_configs(self, resources: list[Any]) -> dict[Any, Any]:
        def answer(topic: str) -> Any:
            values = {k: SimpleNamespace(value=v) for k, v in self.CONFIGS[topic].items()}
            return SimpleNamespace(result=lambda timeout=0: values)

        return {r: answer(r.name) for r in resources}


@pytest.mark.parametrize(
    ("config", "until", "why"),
    [
        ({"retention.ms": "604800000", "cleanup.policy": "delete"}, "2026-12-14T01:06:00+00:00", "events age out"),
        ({"retention.ms": "604800000", "cleanup.policy": "compact,delete"}, "2026-12-14T01:06:00+00:00", "age out"),
        ({"retention.ms": "-1", "cleanup.policy": "delete"}, "never", "retention.ms = -1"),
        ({"retention.ms": str(2**63 - 1), "cleanup.policy": "delete"}, "never", "past the year 9999"),
        ({"retention.ms": "604800000", "cleanup.policy": "compact"}, "never", "cleanup.policy compact"),
        # Stamped by the broker: no record is ahead of its clock.
        (
            {"retention.ms": "604800000", "cleanup.policy": "delete", "message.timestamp.type": "LogAppendTime"},
            "2026-12-14T00:06:00+00:00",
            "LogAppendTime",
        ),
        # Kafka 3's default: a record may be stamped any time ahead, and holds its segment back until then.
        (
            {"retention.ms": "604800000", "cleanup.policy": "delete", "message.timestamp.after.max.ms": str(2**63 - 1)},
            "never",
            "past the year 9999",
        ),
    ],
)
def test_the_kafka_horizon_is_a_date_or_never(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, str], until: str, why: str
) -> None:
    import confluent_kafka.admin

    import sinks.topics

    _FakeAdmin.CONFIGS = {"events": {**config, "segment.ms": "604800000"}}
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", _FakeAdmin)
    monkeypatch.setattr(sinks.topics, "require_reachable", lambda bootstrap: None)
    [left] = kafka_horizon("127.0.0.1:1", ["events", "events.dlq"], datetime(2026, 11, 30, tzinfo=UTC))
    assert left["where"] == "Kafka topic events" and left["until"] == until and why in left["why"], left


def test_a_token_whose_secret_is_not_utf8_is_unknown_not_a_traceback(tmp_path: Path) -> None:
    """FS_TOKEN is read with surrogate escapes: a known id followed by bytes that are not UTF-8 is an unknown token
    (401 ``unknown or revoked``), as any wrong secret; it was a ``UnicodeEncodeError``."""
    from registry.access import Access
    from registry.access_store import AccessStore
    from registry.core.errors import UnauthenticatedError

    store = AccessStore(tmp_path / "registry.db")
    token = store.issue("scorer", "ml-team")
    access = Access(store, enabled=True)
    with pytest.raises(UnauthenticatedError, match="unknown or revoked API token"):
        access.authenticate_command(token + "\udcff")
    assert access.authenticate_command(token).team == "ml-team"


@pytest.mark.parametrize("limit", [str(2**63 - 1), str(2**63), "99999999999999999999"])
def test_audit_takes_any_limit_of_1_or_more(tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: str) -> None:
    """``--limit`` is a count of 1 or more with no upper bound (README: counts of 1 or more); one past SQLite's
    integers was an ``OverflowError`` traceback."""
    from registry import access
    from registry.access_store import AccessStore
    from registry.audit import AuditRecord

    db = tmp_path / "registry.db"
    AccessStore(db).record([AuditRecord("ops", "platform", "erase", "entity:user/u1", 200, "offline")])
    assert access.main(["--db", str(db), "audit", "--limit", limit]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 and '"target": "entity:user/u1"' in out and err == ""


@pytest.mark.parametrize("auth", ["off", "on"])
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--entity-type", "user", "--entity-id", "u\udcff"], "entity id 'u\\udcff' is not UTF-8 text"),
        (["--entity-type", "user_merchant", "--key", "user_id=u\udcff"], "key value 'u\\udcff' is not UTF-8 text"),
    ],
)
def test_an_erasure_argument_that_is_not_utf8_is_refused_before_any_store_and_audited(
    env: tuple[Path, Any, list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    auth: str,
    args: list[str],
    says: str,
) -> None:
    """An argument read from bytes that are not UTF-8 (``--entity-id $'u\\xff'``): no store can hold such an id.
    It was, with auth on, a ``UnicodeEncodeError`` traceback writing its audit record (the target holds the id);
    with auth off, it went on to the stores (here: a Cassandra nobody listens for)."""
    from registry.access_store import AccessStore
    from registry.definition_store import DefinitionStore
    from registry.erasures import ErasureStore
    from tests.unit.conftest import build_definition

    db = tmp_path / "definitions.db"
    DefinitionStore(db).register(
        build_definition(name="pair_count", entity="user_merchant", **{"source.entity_key": ["user_id", "merchant_id"]})
    )
    monkeypatch.setenv("FS_AUTH", auth)
    monkeypatch.setenv("FS_TOKEN", AccessStore(db).issue("ops", "platform", admin=True))
    monkeypatch.setenv("FS_CASSANDRA_HOSTS", "127.0.0.1")
    monkeypatch.setenv("FS_CASSANDRA_PORT", "1")
    assert erasure.main(args) == 1
    assert says in _one_error_line(capsys)
    assert not ErasureStore(db).snapshot()  # nothing recorded
    records = AccessStore(db).audit()
    if auth == "on":  # audited, the id's bytes escaped
        [record] = records
        assert (record["action"], record["outcome"]) == ("erase", 422)
        assert record["target"] == f"entity:{args[1]}/{args[3]}".encode("utf-8", "backslashreplace").decode()
    else:
        assert records == []


@pytest.mark.parametrize("team", ["データ\u3000チーム", "data\u00a0team", "risk\u00adteam", "team\u200d"])
def test_every_owner_a_definition_may_name_is_a_team_tokens_and_grants_may_name(tmp_path: Path, team: str) -> None:
    """A definition's ``owner`` is 1-256 characters without control characters (docs §4): an ideographic or
    no-break space, a soft hyphen, a zero-width joiner are allowed. Such a team could hold no token and be named by
    no grant (``str.isprintable`` refused them), so only an admin could write or read its restricted features."""
    from registry import access as access_cli
    from registry.access import Access
    from registry.access_store import AccessStore, Caller
    from tests.unit.conftest import build_definition

    feature = build_definition(owner=team, sensitivity="restricted")  # the definition takes this owner
    db = tmp_path / "registry.db"
    assert access_cli.main(["--db", str(db), "create-token", "--principal", "svc", "--team", team]) == 0
    assert access_cli.main(["--db", str(db), "grant", "--owner", team, "--to", "ml-team"]) == 0
    store = AccessStore(db)
    [owner_token] = [t for t in store.tokens() if t["team"] == team]
    assert owner_token["principal"] == "svc"
    token = store.issue("scorer", "ml-team")
    access = Access(store, enabled=True)
    scorer = access.authenticate(token)
    access.check_read(scorer, [feature], action="read_features", now=True)  # granted: no ForbiddenError
    access.check_write(Caller("svc", team), [feature.owner], what="the feature")  # the owning team writes it
    assert access_cli.main(["--db", str(db), "revoke-grant", "--owner", team, "--to", "ml-team"]) == 0


def test_an_audit_filter_in_bytes_that_are_not_utf8_finds_what_was_recorded(tmp_path: Path) -> None:
    """``record`` escapes a target that is not UTF-8; ``audit --target`` with the same argument failed with
    ``'utf-8' codec can't encode character`` (an error naming no option) instead of finding it."""
    from registry.access_store import AccessStore
    from registry.audit import AuditRecord

    store = AccessStore(tmp_path / "registry.db")
    target = "entity:user/u\udcff"  # what Python makes of the argument bytes b"entity:user/u\xff"
    store.record([AuditRecord("ops", "platform", "erase", target, 200, "offline")])
    [found] = store.audit(target=target)
    assert found["target"] == "entity:user/u\\udcff"
    assert store.audit(principal="ops\udcff") == []


@pytest.mark.parametrize(
    ("args", "said"), [([], "retention applied in "), (["--dry-run"], "retention dry run (nothing ")]
)
def test_retention_says_whether_it_applied_or_only_reported(
    env: tuple[Path, Any, list[Any]], capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    """A dry run said "retention applied" on stderr."""
    assert retention.main([*args, "--orphans-older-than", "1d"]) == 0
    assert capsys.readouterr().err.startswith(said)


@pytest.mark.parametrize(
    ("token", "quoted"),
    [
        ("fs_0123456789ab_wrong", "fs_0123456789ab_…"),  # an id's 12 characters and its "_": 16 sent
        ("fs_bogus_secret", "fs_bogus_…"),
        ("fs_" + "a" * 40 + "_secret", "fs_" + "a" * 12 + "…"),  # quoted 32 of them before
    ],
)
def test_an_unknown_token_is_quoted_16_characters_at_most(tmp_path: Path, token: str, quoted: str) -> None:
    from registry.access import Access
    from registry.access_store import AccessStore
    from registry.core.errors import UnauthenticatedError

    access = Access(AccessStore(tmp_path / "registry.db"), enabled=True)
    with pytest.raises(UnauthenticatedError) as refused:
        access.authenticate(token)
    assert str(refused.value) == f"unknown or revoked API token {quoted}"
    assert len(quoted.removesuffix("…")) <= 16
