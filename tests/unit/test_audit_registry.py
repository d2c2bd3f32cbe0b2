"""Audit of the definition registry against docs/design.md §4 and "Request-time features": what ``plan`` names is
what ``apply`` refuses, request and stored features never share a name or alias (whichever is registered second),
a request feature's module failing while importing is one error line, request data is refused with a ValueError."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from registry import cli
from registry.core.catalog import FeatureCatalog
from registry.core.errors import DefinitionError, RequestFeatureError
from registry.core.request_features import MAX_STRING, RequestField, Transform, check_json, load_function
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.gate import load_model
from registry.plan import apply_all, plan_all
from tests.unit.test_request_features import request_feature


@pytest.fixture
def store(tmp_path: Path, shipped_catalog: FeatureCatalog) -> DefinitionStore:
    """The shipped stored features, no request feature."""
    store = DefinitionStore(tmp_path / "d.db")
    store.register_all(list(shipped_catalog))
    return store


def _inactive_v2(shipped_catalog: FeatureCatalog, alias: str) -> Any:
    count = shipped_catalog.get("user", "txn_count_1h", 1)
    return count.model_copy(update={"version": 2, "ttl": timedelta(hours=3), "aliases": (alias,)})


def test_plan_names_an_inactive_versions_alias_that_a_request_feature_holds(
    store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """The store refuses a stored version, active or not, whose alias is a request feature's name; plan said
    "1 change(s)" (exit 2) for it and only apply refused."""
    store.register_all([], [request_feature()])
    v2 = _inactive_v2(shipped_catalog, "amount_vs_mean_1h")
    before = store.change_seq()
    with pytest.raises(DefinitionConflictError, match="its alias amount_vs_mean_1h is the name of a request-time"):
        plan_all(store, [*shipped_catalog, v2], [request_feature()])
    with pytest.raises(DefinitionError):
        apply_all(store, [*shipped_catalog, v2], [request_feature()])
    assert store.change_seq() == before


def test_a_new_request_feature_named_like_an_inactive_versions_alias_is_refused(
    store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """Refused whichever is registered second: before, plan and apply took it, the inactive version could then not be
    activated, and the same folder could not be applied again."""
    v2 = _inactive_v2(shipped_catalog, "ratio")
    apply_all(store, [*shipped_catalog, v2])
    ratio = request_feature(name="ratio")
    before = store.change_seq()
    for attempt in (plan_all, apply_all):
        with pytest.raises(DefinitionConflictError, match=r"request feature user.ratio has the name of a stored"):
            attempt(store, [*shipped_catalog, v2], [ratio])
    assert store.change_seq() == before
    store.activate("user", "txn_count_1h", 2)  # still possible: nothing took its alias
    assert store.catalog().get("user", "ratio").version == 2


def test_plan_names_a_request_feature_version_below_the_latest(
    store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """As for a stored feature: plan said "+ request feature ... v2" (exit 2), apply refused."""
    apply_all(store, list(shipped_catalog), [request_feature(version=3)])
    for attempt in (plan_all, apply_all):
        with pytest.raises(
            DefinitionConflictError, match=r"request feature user\.amount_vs_mean_1h v2: below the latest"
        ):
            attempt(store, list(shipped_catalog), [request_feature(version=2, description="older")])


def test_cli_plan_of_a_request_feature_below_the_latest_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    shipped = (Path(cli.__file__).parent / "features" / "user_transactions.toml").read_text()
    (folder / "f.toml").write_text(
        shipped.replace(
            'version = 1\nvalue_type = "double"\ndescription = "This',
            'version = 3\nvalue_type = "double"\ndescription = "This',
        )
    )
    db = str(tmp_path / "d.db")
    assert cli.main(["--db", db, "apply", str(folder)]) == 0
    (folder / "f.toml").write_text(
        shipped.replace(
            'version = 1\nvalue_type = "double"\ndescription = "This',
            'version = 2\nvalue_type = "double"\ndescription = "This',
        )
    )
    capsys.readouterr()
    assert cli.main(["--db", db, "plan", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: request feature user.amount_vs_mean_1h v2: below the latest registered v3"]


def test_apply_registers_a_folders_request_feature_versions_lowest_first(
    store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """A folder listing v3 before v2 (both new) failed at apply ("is at v3"); stored features are sorted."""
    apply_all(store, list(shipped_catalog), [request_feature(version=3), request_feature(version=2)])
    catalog = store.catalog()
    assert [r.version for r in catalog.request_features()] == [2, 3]
    assert catalog.request_feature("user", "amount_vs_mean_1h") == catalog.request_feature(
        "user", "amount_vs_mean_1h", 3
    )


@pytest.mark.parametrize("value", [10**400, -(2**1024), 2**1024], ids=["1e400", "-2^1024", "2^1024"])
def test_request_data_past_the_doubles_range_is_a_value_error(value: int) -> None:
    """``check_json``'s contract: a ValueError naming the field (it raised OverflowError)."""
    with pytest.raises(ValueError, match="`amount` values must be double or null"):
        check_json(RequestField(name="amount", value_type="double"), value)
    assert check_json(RequestField(name="amount", value_type="double"), 10**308) == 1e308


@pytest.fixture
def exiting_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "audit_exiting_fn.py").write_text("import sys\n\nsys.exit(3)\n\n\ndef f(columns):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "audit_exiting_fn", raising=False)
    return "audit_exiting_fn:f"


def test_a_module_that_exits_while_importing_cannot_be_imported(
    exiting_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "An exception while importing" is `cannot import <ref>: ...`, one error line; ``sys.exit`` ended the CLI with
    its code and no word."""
    with pytest.raises(RequestFeatureError, match=f"cannot import {exiting_module}: SystemExit: 3"):
        load_function(exiting_module, "r")
    folder = tmp_path / "features"
    folder.mkdir()
    shipped = (Path(cli.__file__).parent / "features" / "user_transactions.toml").read_text()
    (folder / "f.toml").write_text(shipped.replace("udfs.request:amount_vs_mean_1h", exiting_module))
    db = tmp_path / "d.db"
    DefinitionStore(db)
    for command in ("plan", "apply"):
        capsys.readouterr()
        assert cli.main(["--db", str(db), command, str(folder)]) == 1
        err = capsys.readouterr().err
        assert err.splitlines() == [
            f"error: request feature 'amount_vs_mean_1h': cannot import {exiting_module}: SystemExit: 3"
        ]


class _Custom(BaseException):
    pass


class _Unconvertible:
    def __array__(self, *_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt


@pytest.mark.parametrize("raised", [SystemExit(0), KeyboardInterrupt(), _Custom("x"), asyncio.CancelledError()])
def test_a_function_that_raises_any_base_exception_is_that_features_error(raised: BaseException) -> None:
    """Design §9: a function that raises is the feature's ``error``. A ``KeyboardInterrupt`` it raised went through
    the API's event loop and ended the API process; another ``BaseException`` was a plain-text 500."""

    def fails(columns: Any) -> Any:
        raise raised

    transform = Transform(request_feature(), fails)
    with pytest.raises(RequestFeatureError, match=f"raised {type(raised).__name__}"):
        transform.run({"amount": pa.array([1.0])}, 1)
    returns = Transform(request_feature(), lambda columns: _Unconvertible())
    with pytest.raises(RequestFeatureError, match="returned values that are not"):
        returns.run({"amount": pa.array([1.0])}, 1)


def test_a_bad_pin_in_a_model_file_is_named_alone(tmp_path: Path) -> None:
    """Each problem as `field: message`: not also "features: ... at least 1 item ..., not 0" for a list of one."""
    model = tmp_path / "model.toml"
    model.write_text('model = "m"\n[[features]]\nentity = "user"\nname = "txn_count_1h"\nversion = "1"\n')
    with pytest.raises(DefinitionError) as refused:
        load_model(model)
    assert str(refused.value) == f"{model}: not a valid model file: features.0.version: Input should be a valid integer"
    model.write_text('model = "m"\nfeatures = []\n')
    with pytest.raises(DefinitionError, match="features: Tuple should have at least 1 item"):
        load_model(model)


def test_plan_says_what_apply_does_with_two_versions_of_a_new_feature(
    store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """The lowest becomes active, the next is a new version: plan said both were "new feature (becomes active)"."""
    count = shipped_catalog.get("user", "txn_count_1h", 1)
    v2 = count.model_copy(update={"name": "txn_count_new", "version": 2})
    v3 = v2.model_copy(update={"version": 3, "ttl": timedelta(hours=3)})
    changes, _ = plan_all(store, [v3, v2], [])
    assert [(c.kind, c.definition.version, c.detail) for c in changes] == [
        ("create", 2, "new feature (becomes active)"),
        ("new_version", 3, "new version (inactive; v2 serves)"),
    ]
    registered, _ = apply_all(store, [v3, v2], [])
    assert [(r.action, r.definition.version, r.active_version) for r in registered] == [
        ("created", 2, 2),
        ("new_version", 3, 2),
    ]


@pytest.mark.parametrize("content", [b"\xff", b'[[feature]]\nname = "x"\nversion = 1\n'])
def test_a_definition_file_named_with_a_line_break_is_still_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    """One `error:` line naming the file, as a folder argument with a line break is named (quoted)."""
    folder = tmp_path / "features"
    folder.mkdir()
    named = folder / "a\nb.toml"
    named.write_bytes(content)
    db = tmp_path / "d.db"
    DefinitionStore(db)
    for command in ("plan", "apply"):
        capsys.readouterr()
        assert cli.main(["--db", str(db), command, str(folder)]) == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"error: {str(named)!r}: ")


def test_the_store_refuses_a_request_feature_named_like_an_inactive_versions_alias(
    store: DefinitionStore, shipped_catalog: FeatureCatalog
) -> None:
    """``register_all`` (the Python path beside ``apply``) checked only the active versions' names and aliases: a
    request feature took an inactive version's alias, and that version could then never be activated."""
    v2 = _inactive_v2(shipped_catalog, "ratio")
    store.register_all([v2])
    before = store.change_seq()
    with pytest.raises(DefinitionConflictError, match=r"request feature user.ratio has the name of a stored .* v2\)"):
        store.register_all([], [request_feature(name="ratio")])
    assert store.change_seq() == before and store.catalog().request_feature("user", "ratio") is None
    store.activate("user", "txn_count_1h", 2)
    assert store.catalog().get("user", "ratio").version == 2


def test_the_store_registers_request_feature_versions_lowest_first(store: DefinitionStore) -> None:
    """``register_all([v3, v2])`` refused v2 as below v3, though both were new: versions go in lowest first."""
    store.register_all([], [request_feature(version=3, description="newer"), request_feature(version=2)])
    held = store.catalog()
    latest = held.request_feature("user", "amount_vs_mean_1h")
    assert latest is not None and latest.version == 3
    assert held.request_feature("user", "amount_vs_mean_1h", 2) is not None


def test_activating_the_version_already_active_records_no_change(store: DefinitionStore) -> None:
    """``changes`` records every change, and every reader reloads when it moves: activating the version that
    already serves moved it all the same."""
    before = store.change_seq()
    store.activate("user", "txn_count_1h", 1)
    store.activate_all([("user", "txn_count_1h", 1), ("user", "txn_amount_sum_1h", 1)])
    assert store.change_seq() == before


@pytest.mark.parametrize("field", ["amount_vs_mean_1h", "event_timestamp"])
def test_a_request_field_that_cannot_be_a_label_column_is_refused(field: str) -> None:
    """Offline each request field is the label column of its name: a field named like its own feature was refused by
    every join (a label column named like a feature), and one named `event_timestamp` was the label time."""
    from tests.unit.test_request_features import request_feature

    with pytest.raises(ValueError, match="cannot be label columns in a training join"):
        request_feature(request_fields=[{"name": field, "value_type": "double"}])
    request_feature(request_fields=[{"name": "amount", "value_type": "double"}])


def test_a_json_string_over_the_limit_is_named_as_too_long() -> None:
    """It was "`label` values must be string or null" for a value that is a string."""
    field = RequestField(name="label", value_type="string")
    assert check_json(field, "a" * MAX_STRING) == "a" * MAX_STRING
    with pytest.raises(ValueError, match=f"`label` values must be at most {MAX_STRING} characters, not 4,097"):
        check_json(field, "a" * (MAX_STRING + 1))
