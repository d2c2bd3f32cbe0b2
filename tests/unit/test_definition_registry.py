"""The definition registry: immutable versions, the active pointer, plan/apply, and its HTTP API."""

from __future__ import annotations

import multiprocessing
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry import cli
from registry.core.catalog import DEFAULT_FOLDER, load_folder
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.live import LiveCatalog
from registry.plan import apply, plan
from serving.online.app import create_app
from tests.unit.conftest import NoValues


@pytest.fixture
def store(tmp_path: Path) -> DefinitionStore:
    return DefinitionStore(tmp_path / "definitions.db")


@pytest.fixture
def count() -> FeatureDefinition:
    return next(d for d in load_folder() if d.name == "txn_count_1h")


def test_register_is_idempotent_and_versions_are_immutable(store: DefinitionStore, count: FeatureDefinition) -> None:
    assert store.register(count).action == "created"
    assert store.register(count).action == "unchanged"
    assert store.register(count.model_copy(update={"description": "new words"})).action == "metadata_updated"
    assert store.catalog().get("user", "txn_count_1h").description == "new words"
    with pytest.raises(DefinitionConflictError, match=r"v1 is registered with a different transform.*as v2"):
        store.register(count.model_copy(update={"ttl": timedelta(hours=5)}))
    assert store.catalog().get("user", "txn_count_1h").ttl == count.ttl  # nothing half-written


def test_new_version_does_not_serve_until_activated(store: DefinitionStore, count: FeatureDefinition) -> None:
    store.register(count)
    before = store.change_seq()
    result = store.register(count.model_copy(update={"ttl": timedelta(hours=5)}), version_given=False)
    assert (result.action, result.definition.version, result.active_version) == ("new_version", 2, 1)
    assert store.catalog().get("user", "txn_count_1h").version == 1
    store.activate("user", "txn_count_1h", 2)
    assert store.catalog().get("user", "txn_count_1h").version == 2
    assert store.change_seq() > before
    assert [h["action"] for h in store.history("user", "txn_count_1h")] == [
        "created",
        "activated",
        "new_version",
        "activated",
    ]
    store.register(count.model_copy(update={"version": 4, "ttl": timedelta(hours=9)}))  # gaps are allowed
    with pytest.raises(DefinitionConflictError, match="is at v4; a new version must be numbered above it"):
        store.register(count.model_copy(update={"version": 3, "ttl": timedelta(hours=8)}))


def test_state_survives_reopening(tmp_path: Path, count: FeatureDefinition) -> None:
    DefinitionStore(tmp_path / "d.db").register(count)
    reopened = DefinitionStore(tmp_path / "d.db").catalog()
    assert reopened.get("user", "txn_count_1h") == count


def _register_many(path: str, worker: int, n: int) -> None:
    store = DefinitionStore(Path(path))
    base = next(d for d in load_folder() if d.name == "txn_count_1h")
    for i in range(n):
        ttl = timedelta(minutes=10_000 + worker * 1000 + i)  # a distinct identity each time: a new version
        store.register(base.model_copy(update={"ttl": ttl}), version_given=False)


def test_two_processes_never_create_the_same_version(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_register_many, args=(str(tmp_path / "d.db"), w, 25)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    versions = DefinitionStore(tmp_path / "d.db").catalog().versions("user", "txn_count_1h")
    assert [v.version for v in versions] == list(range(1, 51))
    assert len({v.ttl for v in versions}) == 50


def test_plan_changes_nothing_and_apply_converges(store: DefinitionStore, tmp_path: Path) -> None:
    definitions = load_folder()
    changes = plan(store, definitions)
    assert sorted((c.kind, c.definition.name) for c in changes) == [
        ("create", "txn_amount_sum_1h"),
        ("create", "txn_count_1h"),
    ]
    assert len(store.catalog()) == 0
    assert {r.action for r in apply(store, definitions)} == {"created"}
    assert plan(store, definitions) == []
    edited = [d.model_copy(update={"owner": "fraud-team"}) for d in definitions]
    assert {c.kind for c in plan(store, edited)} == {"update_metadata"}
    broken = [d.model_copy(update={"ttl": timedelta(hours=7)}) for d in definitions]
    with pytest.raises(DefinitionConflictError, match="versions are immutable"):
        plan(store, broken)


def test_a_version_defined_twice_in_a_folder_is_a_conflict_and_nothing_is_written(
    store: DefinitionStore, count: FeatureDefinition
) -> None:
    other = next(d for d in load_folder() if d.name != count.name)
    twice = count.model_copy(update={"ttl": timedelta(hours=5)})  # same version, another TTL
    renamed_owner = other.model_copy(update={"owner": "fraud-team"})  # same version, other metadata
    folder = [count, other, twice, renamed_owner, count]  # an identical repeat is no conflict
    with pytest.raises(DefinitionConflictError) as info:
        plan(store, folder)
    message = str(info.value)
    assert f"user.{count.name} v1: defined more than once in the folder, with different transform or TTL" in message
    assert f"user.{other.name} v1: defined more than once in the folder, with different metadata" in message
    with pytest.raises(DefinitionConflictError):
        apply(store, folder)
    assert len(store.catalog()) == 0
    assert store.change_seq() == 0  # no version, no active pointer, no change row
    assert {r.action for r in apply(store, [count, other, count])} == {"created"}


def test_apply_writes_a_folder_in_one_transaction(store: DefinitionStore, count: FeatureDefinition) -> None:
    apply(store, [count])
    seq = store.change_seq()
    new = next(d for d in load_folder() if d.name != count.name)
    conflicting = count.model_copy(update={"ttl": timedelta(hours=9)})  # registered v1 with another TTL
    with pytest.raises(DefinitionConflictError, match="versions are immutable"):
        store.register_all([new, conflicting])  # the first would be written alone without a transaction
    assert [d.name for d in store.catalog()] == [count.name]
    assert store.change_seq() == seq


def test_cli_plan_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "d.db")
    DefinitionStore(Path(db))  # plan reads an existing store (one that is not there is an error)
    folder = tmp_path / "features"
    shutil.copytree(DEFAULT_FOLDER, folder)
    assert cli.main(["--db", db, "plan", str(folder)]) == 2
    assert "+ user.txn_count_1h v1: new feature" in capsys.readouterr().out
    assert cli.main(["--db", db, "apply", str(folder)]) == 0
    assert cli.main(["--db", db, "plan", str(folder)]) == 0
    toml = (folder / "user_transactions.toml").read_text().replace('ttl = "2h"', 'ttl = "3h"')
    (folder / "user_transactions.toml").write_text(toml)
    assert cli.main(["--db", db, "plan", str(folder)]) == 1
    assert "versions are immutable" in capsys.readouterr().err
    assert cli.main(["--db", db, "activate", "user", "txn_count_1h", "9"]) == 1


@pytest.mark.parametrize(
    ("db", "command", "message"),
    [
        ("{tmp}", ["list"], "is a directory"),
        ("{tmp}/not.db", ["list"], "not a usable definition store"),
        ("{tmp}/no/such/x.db", ["list"], "no definition store there"),
        ("{tmp}/new.db", ["plan"], "no definition store there"),
        ("{tmp}/new.db", ["gate", "m.toml", "--no-schema-check"], "no definition store there"),
        ("{tmp}/new.db", ["activate", "user", "txn_count_1h", "1"], "no definition store there"),
        ("{tmp}/no/such/x.db", ["apply"], "folder {tmp}/no/such does not exist"),
    ],
)
def test_cli_db_that_is_not_a_definition_store_is_one_line_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db: str, command: list[str], message: str
) -> None:
    (tmp_path / "not.db").write_text("a text file, not SQLite\n" * 10)
    path = db.format(tmp=tmp_path)
    assert cli.main(["--db", path, *command]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --db {path}") and message.format(tmp=tmp_path) in err and err.count("\n") == 1
    assert not (tmp_path / "no").exists() and not (tmp_path / "new.db").exists()


def test_cli_apply_creates_a_new_store_in_an_existing_folder(tmp_path: Path) -> None:
    assert cli.main(["--db", str(tmp_path / "new.db"), "apply"]) == 0
    assert cli.main(["--db", str(tmp_path / "new.db"), "list"]) == 0


@pytest.fixture
def client(store: DefinitionStore) -> TestClient:
    apply(store, load_folder())
    return TestClient(create_app(LiveCatalog(store), NoValues()))


def _body(d: FeatureDefinition, **changes: object) -> dict[str, object]:
    body = d.model_dump(mode="json")
    body.update(changes)
    return body


def test_http_register_search_and_lineage(client: TestClient, count: FeatureDefinition) -> None:
    body = _body(count, name="txn_count_30m", window={"kind": "sliding", "size": "30m", "slide": "5m"}, tags=["fresh"])
    del body["version"]
    created = client.post("/v1/feature-definitions", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["result"] == "created" and created.json()["definition"]["version"] == 1
    again = client.post("/v1/feature-definitions", json=body)
    assert (again.status_code, again.json()["result"]) == (200, "unchanged")
    changed = client.post("/v1/feature-definitions", json=dict(body, ttl="4h"))
    assert (changed.status_code, changed.json()["result"], changed.json()["definition"]["version"]) == (
        201,
        "new_version",
        2,
    )
    assert changed.json()["definition"]["active_version"] == 1
    assert [d["name"] for d in client.get("/v1/feature-definitions", params={"tag": "fresh"}).json()] == [
        "txn_count_30m"
    ]
    assert len(client.get("/v1/feature-definitions", params={"owner": "risk-team", "entity": "user"}).json()) == 3
    assert [d["name"] for d in client.get("/v1/feature-definitions", params={"q": "total amount"}).json()] == [
        "txn_amount_sum_1h"
    ]
    one = client.get("/v1/feature-definitions/user/txn_count_30m").json()
    assert one["versions"] == [1, 2] and one["active_version"] == 1
    assert one["lineage"]["source_topic"] == "card_transactions"
    assert one["lineage"]["transform"].startswith("card_transactions:sliding(30m/5m):count(*)@")
    assert one["freshness_slo"] == "10m" and one["value_schema"] == {"type": ["null", "long"]}
    activated = client.post("/v1/feature-definitions/user/txn_count_30m/activate", params={"version": 2})
    assert activated.status_code == 200
    assert client.get("/v1/feature-definitions/user/txn_count_30m").json()["ttl"] == "4h"


def test_http_bad_definitions_name_the_problem(client: TestClient, count: FeatureDefinition) -> None:
    assert client.post("/v1/feature-definitions", content=b"{not json").status_code == 400
    unknown = client.post("/v1/feature-definitions", json=_body(count, colour="red"))
    assert unknown.status_code == 422 and "colour" in unknown.json()["message"]
    wrong = client.post("/v1/feature-definitions", json=_body(count, ttl=5))
    assert wrong.status_code == 422 and "ttl" in wrong.json()["message"]
    clash = client.post("/v1/feature-definitions", json=_body(count, ttl="9h"))
    assert clash.status_code == 409 and "immutable" in clash.json()["message"]
    big = client.post("/v1/feature-definitions", content=b"[" + b"1," * 200_000 + b"1]")
    assert big.status_code == 413
    assert client.get("/v1/feature-definitions/user/txn_count_1h").json()["ttl"] == "2h"  # nothing half-written
    assert client.get("/v1/feature-definitions/user/nope").status_code == 404


def test_renamed_feature_answers_to_its_old_name(client: TestClient, count: FeatureDefinition) -> None:
    renamed = _body(count, name="card_txn_count_1h", aliases=["txn_count_1h_old"])
    assert client.post("/v1/feature-definitions", json=renamed).status_code == 201
    response = client.get("/v1/features/user/u1", params={"names": "txn_count_1h_old"})
    assert response.status_code == 200, response.text
    assert response.json()["features"]["txn_count_1h_old"]["status"] == "missing"
    assert client.get("/v1/feature-definitions/user/txn_count_1h_old").json()["name"] == "card_txn_count_1h"


def test_a_stream_read_two_ways_is_refused_at_registration_and_activation(
    store: DefinitionStore, client: TestClient, count: FeatureDefinition
) -> None:
    other_source = count.source.model_copy(update={"max_out_of_orderness": timedelta(seconds=7)})
    # A new feature in the same stream (topic, entity, window) reading the topic differently: refused whole.
    newcomer = count.model_copy(update={"name": "txn_count_1h_b", "source": other_source})
    before = store.change_seq()
    with pytest.raises(DefinitionError, match="one stream must have one source"):
        store.register(newcomer)
    assert store.change_seq() == before
    assert "txn_count_1h_b" not in {d.name for d in store.catalog()}
    response = client.post("/v1/feature-definitions", json=_body(newcomer))
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_definition"
    assert "one stream must have one source" in response.json()["message"]
    # A new version of an existing feature may read it differently while inactive, not be activated so.
    v2 = count.model_copy(update={"version": count.version + 1, "source": other_source})
    store.register(v2)
    refused = client.post(f"/v1/feature-definitions/user/txn_count_1h/activate?version={v2.version}")
    assert refused.status_code == 422, refused.text
    assert store.catalog().get("user", "txn_count_1h").version == count.version


def test_a_stream_changes_how_it_reads_its_topic_by_activating_all_its_features_at_once(tmp_path: Path) -> None:
    db = tmp_path / "definitions.db"
    store = DefinitionStore(db)
    apply(store, load_folder())
    active = [d for d in store.catalog().active() if d.stream == "card_transactions/user/sliding(1h/5m)"]
    assert len(active) >= 2
    moved = []
    for d in active:
        v2 = d.model_copy(
            update={"version": d.version + 1, "source": d.source.model_copy(update={"event_id_field": None})}
        )
        store.register(v2)
        moved.append(f"{d.entity}.{d.name}@{v2.version}")
    # One at a time, the first move would leave the stream read two ways: refused, nothing moves.
    assert cli.main(["--db", str(db), "activate", "user", active[0].name, str(active[0].version + 1)]) == 1
    assert cli.main(["--db", str(db), "activate-all", *moved]) == 0
    now = {d.name: d for d in store.catalog().active()}
    assert all(now[d.name].version == d.version + 1 and now[d.name].source.event_id_field is None for d in active)


@pytest.mark.parametrize("ref", ["user.txn_count_1h@1 ", " user.txn_count_1h@1", "user.txn_count_1h@1\n"])
def test_cli_activate_all_refuses_a_reference_with_whitespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ref: str
) -> None:
    """The reference grammar matches the whole argument: surrounding whitespace is one `error:` line, exit 1."""
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply"]) == 0
    capsys.readouterr()
    assert cli.main(["--db", db, "activate-all", ref]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {ref!r} is not a versioned feature reference like user.txn_count_1h@2\n"


@pytest.mark.parametrize("version", ["1_0", "٣", "1.0", "0", "2147483648", "x", ""])
def test_cli_activate_takes_a_version_in_ascii_digits_from_1_to_2_31_minus_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """Not `int()`: `1_0` is not v10 nor `٣` v3; a usage error naming the argument, exit 2, nothing moves."""
    db = tmp_path / "d.db"
    assert cli.main(["--db", str(db), "apply"]) == 0
    seq = DefinitionStore(db).change_seq()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.main(["--db", str(db), "activate", "user", "txn_count_1h", version])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument version: must be a whole number from 1 to " in err and err.endswith(f", not {version!r}\n")
    assert DefinitionStore(db).change_seq() == seq


def _plan(tmp_path: Path, content: bytes) -> tuple[int, str]:
    db = tmp_path / "d.db"
    DefinitionStore(db)
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "x.toml").write_bytes(content)
    code = cli.main(["--db", str(db), "plan", str(folder)])
    return code, str(folder / "x.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[[feature]]\nname = "caf\xe9"\n', "cannot read definitions: not UTF-8 text (byte 23)"),
        (b"feature = [1]\n", "feature #1 is not a table ([[feature]]): 1"),
        (b'feature = ["a"]\n', "feature #1 is not a table ([[feature]]): 'a'"),
        (b"request_feature = [1]\n", "request feature #1 is not a table ([[request_feature]]): 1"),
        (b'request_feature = ["a", 2]\n', "request feature #1 is not a table ([[request_feature]]): 'a'"),
    ],
)
def test_cli_plan_on_a_file_it_cannot_read_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    """A file that is not UTF-8, or `[[feature]]`/`[[request_feature]]` entries that are not tables: exit 1,
    one `error:` line naming the file (and the entry), no traceback."""
    code, path = _plan(tmp_path, content)
    err = capsys.readouterr().err
    assert (code, err) == (1, f"error: {path}: {message}\n")


def test_an_alias_taken_twice_is_a_plan_conflict_and_nothing_is_written(
    store: DefinitionStore, count: FeatureDefinition
) -> None:
    """What apply would leave must be a catalog every command can load: a folder whose alias names another
    feature (or another's alias) is refused by plan and by apply, before and after other features exist."""
    other = next(d for d in load_folder() if d.name != count.name)
    clash = count.model_copy(update={"aliases": (other.name,)})
    with pytest.raises(DefinitionError, match=f"alias user.{other.name} of {count.name} collides"):
        plan(store, [clash, other])  # plan alone (no request features) sees it too: ``plan_all`` is what the CLI runs
    with pytest.raises(DefinitionError, match="collides"):
        apply(store, [clash, other])
    with pytest.raises(DefinitionError, match="collides"):
        store.register_all([clash, other])
    assert len(store.catalog()) == 0 and store.change_seq() == 0
    apply(store, [other])
    with pytest.raises(DefinitionError, match="collides"):
        store.register(clash)  # one at a time, against what is stored
    assert [d.name for d in store.catalog()] == [other.name]
    store.catalog()  # still loads


def test_cli_apply_of_an_alias_clash_is_one_error_line_and_the_store_still_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    text = (DEFAULT_FOLDER / "user_transactions.toml").read_text()
    (folder / "user_transactions.toml").write_text(text)
    names = [d.name for d in load_folder(folder)]
    first, second = names[0], names[1]
    (folder / "user_transactions.toml").write_text(
        text.replace(f'name = "{first}"', f'name = "{first}"\naliases = ["{second}"]', 1)
    )
    db = str(tmp_path / "d.db")
    DefinitionStore(Path(db))
    for command in ("plan", "apply"):
        assert cli.main(["--db", db, command, str(folder)]) == 1
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            f"error: alias user.{second} of {first} collides with another feature or alias"
        ]
    assert cli.main(["--db", db, "list"]) == 0


def test_aliases_of_one_feature_are_distinct(count: FeatureDefinition) -> None:
    with pytest.raises(ValueError, match="aliases must be distinct"):
        FeatureDefinition.model_validate({**count.model_dump(), "aliases": ["old_name", "old_name"]})


def test_http_registration_of_an_alias_that_names_another_feature_is_refused(
    client: TestClient, count: FeatureDefinition
) -> None:
    taken = client.post(
        "/v1/feature-definitions", json=_body(count, name="txn_count_renamed", aliases=["txn_count_1h"])
    )
    assert taken.status_code == 422, taken.text
    assert "collides" in taken.json()["message"]
    assert client.get("/v1/feature-definitions/user/txn_count_1h").status_code == 200  # the catalog still loads
    assert client.get("/v1/feature-definitions/user/txn_count_renamed").status_code == 404


def test_an_inactive_version_whose_alias_names_another_feature_is_refused_at_registration(
    store: DefinitionStore, count: FeatureDefinition
) -> None:
    """The catalog checks names and aliases among the active versions only: an inactive v2 whose alias was another
    feature's name was planned, applied and registered (201 over HTTP), and then could never be activated."""
    other = next(d for d in load_folder() if d.name != count.name)
    apply(store, [count, other])
    before = store.change_seq()
    v2 = count.model_copy(update={"version": 2, "ttl": timedelta(hours=3), "aliases": (other.name,)})
    message = f"alias user.{other.name} of {count.name} collides with another feature or alias"
    with pytest.raises(DefinitionError, match=message):
        plan(store, [count, other, v2])
    with pytest.raises(DefinitionError, match=message):
        apply(store, [v2])
    with pytest.raises(DefinitionError, match=message):
        store.register(v2)
    with pytest.raises(DefinitionError, match=message):
        store.register_all([v2])
    assert store.change_seq() == before and store.catalog().versions("user", count.name) == [count]
    with pytest.raises(DefinitionError, match=f"unknown feature.*{count.name}@v2"):
        store.activate("user", count.name, 2)  # not registered, so not activated either


def test_a_new_feature_named_like_an_inactive_versions_alias_is_refused(
    store: DefinitionStore, count: FeatureDefinition
) -> None:
    """Whichever is registered second: the inactive version's alias first, then a feature of that name."""
    apply(store, [count])
    v2 = count.model_copy(update={"version": 2, "ttl": timedelta(hours=3), "aliases": ("old_count",)})
    apply(store, [v2])
    before = store.change_seq()
    named = next(d for d in load_folder() if d.name != count.name).model_copy(update={"name": "old_count"})
    message = f"alias user.old_count of {count.name} collides with another feature or alias"
    with pytest.raises(DefinitionError, match=message):
        plan(store, [named])
    with pytest.raises(DefinitionError, match=message):
        store.register(named)
    assert store.change_seq() == before
    store.activate("user", count.name, 2)  # still possible: nothing took its alias
    assert store.catalog().get("user", "old_count").version == 2


def test_two_features_may_not_share_an_alias_in_any_version(store: DefinitionStore, count: FeatureDefinition) -> None:
    other = next(d for d in load_folder() if d.name != count.name)
    apply(store, [count, other])
    v2 = count.model_copy(update={"version": 2, "ttl": timedelta(hours=3), "aliases": ("shared",)})
    apply(store, [v2])
    other_v2 = other.model_copy(update={"version": 2, "ttl": timedelta(hours=3), "aliases": ("shared",)})
    with pytest.raises(DefinitionError, match=f"alias user.shared of {other.name} collides"):
        apply(store, [other_v2])
    v3 = count.model_copy(update={"version": 3, "ttl": timedelta(hours=4), "aliases": ("shared",)})
    apply(store, [v3])  # one feature's versions may repeat its own alias
    assert [d.version for d in store.catalog().versions("user", count.name)] == [1, 2, 3]
