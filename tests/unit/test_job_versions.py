"""``--versions`` of the job: each registered version once, however often and however spelled it is named."""

from __future__ import annotations

import pytest

from jobs.feature_job import resolve_refs
from registry.core.catalog import FeatureCatalog
from registry.core.errors import UnknownFeatureError


def test_a_version_named_twice_is_computed_once(shipped_catalog: FeatureCatalog) -> None:
    """Before: two columns of one name reached Flink SQL (``Column 'txn_count_1h' is ambiguous``, a Java trace)."""
    found = resolve_refs(shipped_catalog, "user.txn_count_1h@1,user.txn_amount_sum_1h@v1,user.txn_count_1h@v1")
    assert [(d.name, d.version) for d in found] == [("txn_count_1h", 1), ("txn_amount_sum_1h", 1)]


def test_an_unknown_version_is_named(shipped_catalog: FeatureCatalog) -> None:
    with pytest.raises(UnknownFeatureError, match="txn_count_1h@v9"):
        resolve_refs(shipped_catalog, "user.txn_count_1h@1,user.txn_count_1h@9")
