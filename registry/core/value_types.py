"""Value types: the one table from a feature's ``value_type`` to every physical type that holds it.

A definition declares one of four value types. Everything that stores, computes, serves or joins a
value takes its physical type from ``SPECS`` here (one row per type, one column per target), or from
the converters below for targets whose type objects need a heavy library (Arrow, Iceberg): those
import it when called, so this module stays import-light like the rest of ``registry.core``.

======== ========== ================ ========= =========== ============= ==============
type     Avro       Python (JSON)    CQL       Flink SQL   Arrow         Iceberg
======== ========== ================ ========= =========== ============= ==============
long     long       int              bigint    BIGINT      int64         LongType
double   double     float (or int)   double    DOUBLE      float64       DoubleType
string   string     str              text      STRING      (large_)string StringType
boolean  boolean    bool             boolean   BOOLEAN     bool_         BooleanType
======== ========== ================ ========= =========== ============= ==============

The offline table keeps a value in the column ``value_<type>`` (``SPECS[t].column``): exactly one of the
four value columns is set per row, the one of the definition's value type. The online store keeps it
in a cell serialized as the CQL type (``sinks.cassandra.layout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.types import PrimitiveType

ValueType = Literal["long", "double", "string", "boolean"]
Value = int | float | str | bool


@dataclass(frozen=True, slots=True)
class ValueTypeSpec:
    """One value type's physical type in each target."""

    name: ValueType
    column: str  # the offline table's value column
    avro: str
    cql: str
    flink_sql: str


SPECS: dict[ValueType, ValueTypeSpec] = {
    "long": ValueTypeSpec("long", "value_long", avro="long", cql="bigint", flink_sql="BIGINT"),
    "double": ValueTypeSpec("double", "value_double", avro="double", cql="double", flink_sql="DOUBLE"),
    "string": ValueTypeSpec("string", "value_string", avro="string", cql="text", flink_sql="STRING"),
    "boolean": ValueTypeSpec("boolean", "value_boolean", avro="boolean", cql="boolean", flink_sql="BOOLEAN"),
}
VALUE_TYPES: tuple[ValueType, ...] = tuple(SPECS)
VALUE_COLUMNS: dict[ValueType, str] = {t: s.column for t, s in SPECS.items()}
"""Value type -> the offline column holding it, in the table's order."""


def arrow_type(value_type: ValueType, *, large_strings: bool = False) -> pa.DataType:
    """The Arrow type of a value: ``large_string`` for strings when asked (what pyiceberg reads by default)."""
    import pyarrow as pa

    if value_type == "long":
        return pa.int64()
    if value_type == "double":
        return pa.float64()
    if value_type == "string":
        return pa.large_string() if large_strings else pa.string()
    return pa.bool_()


def iceberg_type(value_type: ValueType) -> PrimitiveType:
    """The Iceberg type of a value column."""
    from pyiceberg.types import BooleanType, DoubleType, LongType, StringType

    types: dict[ValueType, PrimitiveType] = {
        "long": LongType(),
        "double": DoubleType(),
        "string": StringType(),
        "boolean": BooleanType(),
    }
    return types[value_type]


def from_text(text: str, value_type: ValueType) -> Value:
    """A value from Flink SQL's ``CAST(x AS STRING)`` text: ``TRUE``/``FALSE`` for booleans."""
    if value_type == "long":
        return int(text)
    if value_type == "double":
        return float(text)
    if value_type == "boolean":
        return text.upper() == "TRUE"
    return text
