"""The value-type table is the one source of every store's and engine's physical type for a value."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from pyiceberg.types import BooleanType, DoubleType, LongType, StringType

from jobs.sql import decode_last
from registry.core.definitions import FeatureDefinition
from registry.core.value_types import SPECS, VALUE_COLUMNS, VALUE_TYPES, ValueType, arrow_type, from_text, iceberg_type
from sinks.cassandra import layout as online_layout
from sinks.iceberg import layout as offline_layout


def test_both_stores_take_their_value_types_from_the_table() -> None:
    from cassandra.cqltypes import lookup_casstype

    for value_type in VALUE_TYPES:
        spec = SPECS[value_type]
        field = offline_layout.SCHEMA.find_field(spec.column)
        assert field.field_type == iceberg_type(value_type)
        assert f"{spec.column} {spec.cql}," in online_layout.legacy_table_ddl("ks")
        # An online cell holds the value as Cassandra serializes the type's CQL type (the tie rule rests on it).
        cql = lookup_casstype(
            {"bigint": "LongType", "double": "DoubleType", "text": "UTF8Type", "boolean": "BooleanType"}[spec.cql]
        )
        sample = {"long": -5, "double": 2.5, "string": "é", "boolean": True}[value_type]
        blob = online_layout.encode_cell(value_type, sample, 1_700_000_000_000)
        assert (blob[8:] if value_type == "string" else blob[:-8]) == cql.serialize(sample, 5)
        assert online_layout.decode_cell(value_type, blob) == (sample, 1_700_000_000_000)
    assert list(VALUE_COLUMNS.values()) == ["value_long", "value_double", "value_string", "value_boolean"]


@pytest.mark.parametrize(
    ("value_type", "arrow", "iceberg"),
    [
        ("long", pa.int64(), LongType()),
        ("double", pa.float64(), DoubleType()),
        ("string", pa.string(), StringType()),
        ("boolean", pa.bool_(), BooleanType()),
    ],
)
def test_converters(value_type: ValueType, arrow: pa.DataType, iceberg: object) -> None:
    assert arrow_type(value_type) == arrow
    assert iceberg_type(value_type) == iceberg
    assert arrow_type("string", large_strings=True) == pa.large_string()


def test_text_values_as_flink_sql_casts_them() -> None:
    assert from_text("-7", "long") == -7
    assert from_text("1.5", "double") == 1.5
    assert from_text("TRUE", "boolean") is True
    assert from_text("false", "boolean") is False
    assert from_text("a|b", "string") == "a|b"
    assert decode_last("00000000000000000001|42", "long") == 42


@pytest.mark.parametrize("value_type", VALUE_TYPES)
def test_the_definition_avro_value_schema_comes_from_the_table(
    make_definition: Callable[..., FeatureDefinition], value_type: ValueType
) -> None:
    definition = make_definition(value_type=value_type, aggregation={"function": "last", "field": "amount"})
    assert definition.value_schema == {"type": ["null", SPECS[value_type].avro]}
