"""A request feature's identity is what its inputs mean, not how they are spelled.

An input pins a stored feature version as ``name@vN`` or, equally accepted (``registry.core.refs``), ``name@N``:
both name one version, so both give one identity. The canonical spelling is ``name@vN`` (the documented and
shipped one): a version registered with it keeps the identity hash it was registered under.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from registry.core.catalog import FeatureCatalog
from registry.core.request_features import RequestFeature
from registry.definition_store import DefinitionConflictError, DefinitionStore
from registry.plan import plan_requests
from tests.unit.test_request_features import request_feature

HASH = "0123456789abcdef"  # a function hash given, so nothing is imported to compute one


def feature(*inputs: str, **overrides: Any) -> RequestFeature:
    return request_feature(**{"function_hash": HASH, "inputs": list(inputs), **overrides})


def test_a_canonically_spelled_version_keeps_its_identity_hash() -> None:
    # The value computed before identities were canonicalised: stored hashes, feature-service and
    # training-set pins and model files of versions written `name@vN` stay valid.
    assert feature("txn_count_1h@v1", "txn_amount_sum_1h@v1").identity_hash == "2f5ff54fbdad5a74"


def test_both_spellings_of_a_pinned_input_give_one_identity() -> None:
    canonical = feature("txn_count_1h@v1", "txn_amount_sum_1h@v1")
    for inputs in (("txn_count_1h@1", "txn_amount_sum_1h@1"), ("txn_count_1h@1", "txn_amount_sum_1h@v1")):
        assert feature(*inputs).identity() == canonical.identity()
        assert feature(*inputs).identity_hash == canonical.identity_hash
    assert feature("txn_count_1h@v1", "txn_amount_sum_1h@v2").identity_hash != canonical.identity_hash
    assert feature("txn_count_1h@v1", "txn_amount_sum_1h@v12").identity_hash != canonical.identity_hash


def test_the_other_spelling_registers_once_without_a_conflict(tmp_path: Path, shipped_catalog: FeatureCatalog) -> None:
    store = DefinitionStore(tmp_path / "d.db")
    written = feature("txn_count_1h@v1", "txn_amount_sum_1h@v1", function_hash=None)  # registration hashes it
    store.register_all(list(shipped_catalog), [written])
    respelled = feature("txn_count_1h@1", "txn_amount_sum_1h@1", function_hash=None)
    assert [c.kind for c in plan_requests(store, [respelled])] in ([], ["update_metadata"])  # not a conflict
    store.register_all([], [respelled])
    held = store.catalog().request_feature("user", "amount_vs_mean_1h")
    assert held is not None and held.version == 1 and held.identity_hash == written.with_function_hash().identity_hash
    assert [q.version for q in store.catalog().request_features() if q.name == "amount_vs_mean_1h"] == [1]
    # and the way back: the version now held as written `@1` takes `@v1` again
    store.register_all([], [written])
    assert store.catalog().request_feature("user", "amount_vs_mean_1h", 1) is not None


def test_a_version_stored_under_its_hash_as_written_is_the_same_version(
    tmp_path: Path, shipped_catalog: FeatureCatalog
) -> None:
    """A store written before identities were canonicalised holds an `@1`-spelled version under the hash of that
    spelling: re-applying the same file is still no conflict, and the stored hash is brought up to date."""
    import sqlite3

    store = DefinitionStore(tmp_path / "d.db")
    written = feature("txn_count_1h@1", "txn_amount_sum_1h@1", function_hash=None)
    store.register_all(list(shipped_catalog), [written])
    hashed = written.with_function_hash()
    as_written = {**hashed.identity(), "inputs": list(hashed.inputs)}  # the old rule: inputs as written
    old = hashlib.sha256(json.dumps(as_written, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert old != hashed.identity_hash
    with sqlite3.connect(tmp_path / "d.db") as conn:
        conn.execute("UPDATE request_feature_versions SET identity_hash = ?", (old,))
    store.register_all([], [written])  # was: DefinitionConflictError ("register the change as v2")
    with sqlite3.connect(tmp_path / "d.db") as conn:
        assert conn.execute("SELECT identity_hash FROM request_feature_versions").fetchall() == [
            (hashed.identity_hash,)
        ]
    changed = feature("txn_count_1h@1", "txn_amount_sum_1h@2", function_hash=None)
    with pytest.raises(DefinitionConflictError, match="register the change as v2"):
        store.register_all([], [changed])  # another identity under the same number is still a conflict


def test_pins_taken_under_the_hash_of_inputs_as_written_still_name_the_version(
    shipped_catalog: FeatureCatalog,
) -> None:
    """Training-set manifests, gate model files and feature services pinned a version written `@1` under the hash
    of that spelling: the version still answers to it (and to its canonical hash), and to nothing else."""
    from registry.feature_services import FeatureService

    written = feature("txn_count_1h@1", "txn_amount_sum_1h@1")
    as_written = {**written.identity(), "inputs": list(written.inputs)}
    old = hashlib.sha256(json.dumps(as_written, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert old != written.identity_hash
    assert written.pinned_by(old) and written.pinned_by(written.identity_hash)
    assert not written.pinned_by(feature("txn_count_1h@1", "txn_amount_sum_1h@2").identity_hash)
    catalog = FeatureCatalog(list(shipped_catalog), request_features=[written])
    pin = {"entity": "user", "name": "amount_vs_mean_1h", "version": 1}
    assert (
        FeatureService.model_validate({"name": "s", "version": 1, "features": [{**pin, "identity_hash": old}]}).check(
            catalog
        )
        == []
    )
    wrong = FeatureService.model_validate({"name": "s", "version": 1, "features": [{**pin, "identity_hash": "0" * 16}]})
    assert [p for p in wrong.check(catalog) if "pinned identity" in p]
