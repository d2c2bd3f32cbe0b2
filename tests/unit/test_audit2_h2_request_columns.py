"""Request fields offline (docs/design.md "Request-time features", Offline): each request field is the label
column of its name, cast safely to the field's type; a column of another kind is a DefinitionError before any
read. A dictionary-encoded column is an encoding of its values, so its values' type decides, as for entity columns."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pytest

from registry.core.errors import DefinitionError
from registry.core.request_features import RequestFeature, Transform
from serving.offline.request_columns import RequestColumn, check_request_fields


def echo(columns: Mapping[str, pa.Array]) -> pa.Array:
    """The request field ``v`` as given: what the function saw."""
    return columns["v"]


def _column(value_type: str, name: str = "echo_v") -> RequestColumn:
    feature = RequestFeature.model_validate(
        {
            "name": name,
            "entity": "user",
            "version": 1,
            "owner": "t",
            "value_type": value_type,
            "function": f"{__name__}:echo",
            "inputs": ["txn_count_1h@v1"],
            "request_fields": [{"name": "v", "value_type": value_type}],
        }
    ).with_function_hash()
    return RequestColumn(feature, Transform.of(feature), ())


def test_a_dictionary_of_integers_is_not_a_string_field() -> None:
    """An int64 column is refused for a string field; dictionary-encoding it must not let it through as '1'."""
    labels = pa.table({"v": pa.array([1, 2]).dictionary_encode()})
    with pytest.raises(DefinitionError, match="'v'"):
        check_request_fields(labels.schema, [_column("string")])


def test_a_dictionary_of_strings_is_a_string_field() -> None:
    labels = pa.table({"v": pa.array(["a", None, "a"]).dictionary_encode()})
    check_request_fields(labels.schema, [_column("string")])
    assert _column("string").compute({}, labels).to_pylist() == ["a", None, "a"]


def test_a_dictionary_of_doubles_is_a_double_field_and_of_integers_rounds_as_plain_integers() -> None:
    """float64 or an integer type, encoded or not; an integer is rounded to the nearest double (past 2**53 too)."""
    column = _column("double")
    doubles = pa.table({"v": pa.array([1.5, 1.5, None]).dictionary_encode()})
    check_request_fields(doubles.schema, [column])
    assert column.compute({}, doubles).to_pylist() == [1.5, 1.5, None]
    integers = pa.table({"v": pa.array([2**53 + 1, 3], pa.int64()).dictionary_encode()})
    check_request_fields(integers.schema, [column])
    assert column.compute({}, integers).to_pylist() == [float(2**53 + 1), 3.0]


def test_a_dictionary_of_float32_is_refused_for_a_double_field() -> None:
    labels = pa.table({"v": pa.array([1.5], pa.float32()).dictionary_encode()})
    with pytest.raises(DefinitionError, match="'v'"):
        check_request_fields(labels.schema, [_column("double")])


def test_two_request_features_giving_one_field_two_types_are_refused_as_online() -> None:
    """Online, asking in one request for two request features whose field ``v`` has two types is 400
    ``bad_request_data`` (and a feature service pinning both is refused): a training set of both would be one no
    single read can serve, so offline refuses it too, before any read, naming the field and both types."""
    labels = pa.table({"v": pa.array([1, 2], pa.int64())})
    with pytest.raises(DefinitionError, match=r"`v` is double here and long elsewhere"):
        check_request_fields(labels.schema, [_column("long"), _column("double", "echo_v_double")])
    check_request_fields(labels.schema, [_column("long"), _column("long", "echo_v_again")])
