"""The job's row type for an event schema: optional fields (``["null", T]``) are accepted, other unions named."""

from __future__ import annotations

from typing import Any

import pytest

from registry.core.errors import FeatureStoreError
from schemas import load_schema


def _with(field: dict[str, Any]) -> dict[str, Any]:
    schema = load_schema("card_transaction")
    return {**schema, "fields": [*schema["fields"], field]}


@pytest.mark.parametrize(
    "field_type",
    [["null", "string"], ["string", "null"], ["null", {"type": "long", "logicalType": "timestamp-millis"}]],
)
def test_an_optional_field_is_a_column_of_its_type(field_type: list[Any]) -> None:
    from jobs.feature_job import _row_type

    row = _row_type(_with({"name": "channel", "type": field_type, "default": None}))
    assert row.get_field_names()[-1] == "channel"
    assert len(row.get_field_types()) == len(load_schema("card_transaction")["fields"]) + 1


@pytest.mark.parametrize("field_type", [["null", "string", "long"], ["string", "long"], ["null"], "bytes"])
def test_other_unions_and_types_are_refused_by_name(field_type: Any) -> None:
    from jobs.feature_job import _row_type

    with pytest.raises(FeatureStoreError, match="event field 'odd'"):
        _row_type(_with({"name": "odd", "type": field_type}))
