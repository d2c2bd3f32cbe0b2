"""Creating and loading an Iceberg table, race-safe, with the string statistics our readers rely on
(``string_metrics``): every table of ours, the offline table (``writer.ensure_table``), the serving log's and the
events archive's, is made here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from registry.core.errors import StoreUnavailableError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

COMMIT_RETRIES = 5
_METRICS_COLUMN = "write.metadata.metrics.column."
WHOLE_BOUNDS = frozenset({"entity_type", "entity_id", "feature_name"})
"""The string columns read by value (filters on them prune files and row groups by their statistics)."""


def string_metrics(schema: Schema) -> dict[str, str]:
    """The statistics mode of every string column of ``schema``, as table properties: ``full`` (whole min and max)
    for the columns read by value (``entity_type``, ``entity_id``, ``feature_name``: names and ids of bounded
    length), ``counts`` (no bounds) for the rest. Never pyiceberg's default ``truncate(16)``: 0.8.1 raises the
    16th character of a longer string by one code point for the upper bound, and U+D7FF becomes U+D800, a lone
    surrogate with no UTF-8, so the append fails (apache/iceberg-python#3880): one such id or string value would
    fail every flush of the job that holds it, on every replay."""
    from pyiceberg.types import StringType

    return {
        f"{_METRICS_COLUMN}{field.name}": "full" if field.name in WHOLE_BOUNDS else "counts"
        for field in schema.fields
        if isinstance(field.field_type, StringType)
    }


def _with_properties(table: Table, wanted: Mapping[str, str]) -> Table:
    """``table`` with ``wanted`` among its properties, set once (a table made before they existed takes them when
    first opened); another process setting them at the same moment is retried against the table it wrote."""
    from pyiceberg.exceptions import CommitFailedException

    for _ in range(COMMIT_RETRIES):
        missing = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
        if not missing:
            return table
        try:
            with table.transaction() as tx:
                tx.set_properties(missing)
        except CommitFailedException:
            pass
        table = table.refresh()
    return table


def create_or_load(catalog: Catalog, namespace: str, name: str, schema: Schema, spec: PartitionSpec) -> Table:
    """The table ``namespace.name``, created (with its namespace) if it does not exist.

    Safe to call from any number of processes at once: each step is "create, and if that fails, check
    whether it exists now". A SQL catalog checks, then inserts, so the loser of a race between two
    processes gets the database's unique-key error (not ``NamespaceAlreadyExistsError``); what counts
    is the outcome, so whoever finds the object there afterwards goes on. An existing table is loaded without
    trying to create it: pyiceberg writes a new table's metadata file before the catalog refuses the name, so every
    call on an existing table left one more file no snapshot or catalog entry points to.

    Storage or a catalog that cannot be used (the warehouse's disk full or read-only, the catalog's database
    refusing) is StoreUnavailableError naming the table: a command's one ``error:`` line, not a traceback.
    """
    from sqlalchemy.exc import DatabaseError

    from sinks.iceberg.maintenance import one_line

    try:
        return _create_or_load(catalog, namespace, name, schema, spec)
    except (OSError, DatabaseError) as exc:
        raise StoreUnavailableError(f"cannot create or load the table {namespace}.{name}: {one_line(exc)}") from exc


def _create_or_load(catalog: Catalog, namespace: str, name: str, schema: Schema, spec: PartitionSpec) -> Table:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:
        if not _namespace_exists(catalog, namespace):
            raise
    identifier = f"{namespace}.{name}"
    properties = string_metrics(schema)
    if catalog.table_exists(identifier):  # the usual case: a create that fails has already written a metadata file
        return _with_properties(catalog.load_table(identifier), properties)
    try:
        return catalog.create_table(identifier, schema=schema, partition_spec=spec, properties=properties)
    except TableAlreadyExistsError:
        pass
    except Exception:
        if not catalog.table_exists(identifier):
            raise
    return _with_properties(catalog.load_table(identifier), properties)


def _namespace_exists(catalog: Catalog, namespace: str) -> bool:
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        catalog.load_namespace_properties(namespace)
    except NoSuchNamespaceError:
        return False
    return True
