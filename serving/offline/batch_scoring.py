"""Batch scoring: every entity's feature vector as of one time, from the offline table.

The vector is the one a training row labelled at ``as_of`` gets from ``get_historical_features``
(same join, same time rule, same read). ``read_as_of`` pins what is read exactly as the training
join's ``as_of`` does: a snapshot id, or a time (the snapshot then, and rows ingested by then: to
score yesterday with only what was known yesterday, pass yesterday); by default the current snapshot.
Entities: every one with a visible row of the requested feature versions ending at or before
``as_of``; an entity whose values have all expired gets nulls, not a missing row. Rows are sorted
by entity id. A composite-keyed entity type (docs/design.md §5.8) also gets a string column per key
field, after ``entity_id`` (its encoded id).

CLI::

    python -m serving.offline.batch_scoring --entity-type user --features txn_count_1h,txn_amount_sum_1h \\
        --as-of 2024-05-01T00:00:00Z [--read-as-of 2024-05-01T00:00:00Z | --snapshot-id N] --out vectors.parquet
"""

from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C while the modules below load is the command's one line too, not a traceback
    from registry.core.interrupt import exit_on_ctrl_c

    exit_on_ctrl_c()

import argparse
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from registry.access import guard_catalog
from registry.core import entity_keys
from registry.core.arguments import ArgumentParser, feature_names, whole
from registry.core.catalog import FeatureCatalog
from registry.core.errors import DefinitionError
from registry.core.refs import parse_ref
from registry.core.shown import error_line, shown
from serving.offline.command_io import check_out_path, command_failures, write_parquet
from serving.offline.feature_resolution import resolve_features
from serving.offline.historical import DEFAULT_CHUNK_ROWS, check_chunk_rows, join_label_batches, output_schema
from sinks.iceberg.as_of import epoch_us, read_point
from sinks.iceberg.reader import distinct_entities

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from registry.definition_store import DefinitionStore

ENTITY_COLUMN = "entity_id"
TIME_COLUMN = "as_of"
_LABELS = pa.schema([pa.field(ENTITY_COLUMN, pa.string()), pa.field(TIME_COLUMN, pa.timestamp("us", tz="UTC"))])


def feature_vector_batches(
    table: Table,
    catalog: FeatureCatalog,
    entity_type: str,
    features: Sequence[str],
    as_of: datetime,
    *,
    read_as_of: int | datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The export as (schema, batches of at most ``chunk_rows`` entities): memory bounded by the chunk
    plus the list of distinct entity ids."""
    check_chunk_rows(chunk_rows)
    if not features:
        raise DefinitionError("give at least one feature to export")
    asked = [parse_ref(f) for f in features]
    requests = [str(r) for r in asked if r is not None and catalog.request_feature(entity_type, r.name) is not None]
    if requests:
        raise DefinitionError(
            f"request-time feature(s) {requests} need request data: batch scoring exports stored features only "
            "(join them with `serving.offline.historical` on a label frame holding the request fields)"
        )
    definitions = resolve_features(catalog, entity_type, features)
    named = sorted({d.name for d in definitions} & {ENTITY_COLUMN, TIME_COLUMN})
    if named:
        raise DefinitionError(
            f"feature(s) {named} would name two columns of the export ({ENTITY_COLUMN} and {TIME_COLUMN} are its own)"
        )
    at_us = epoch_us(as_of)
    point = read_point(table, read_as_of)
    entities = distinct_entities(table, point, entity_type, definitions, at_us)
    key = catalog.composite_key(entity_type)
    clash = sorted({ENTITY_COLUMN, TIME_COLUMN, *(d.name for d in definitions)} & set(key))
    if clash:
        raise DefinitionError(f"key field(s) {clash} of {entity_type} would name two columns of the export")
    schema = pa.schema(
        [_LABELS.field(ENTITY_COLUMN), *(pa.field(f, pa.string()) for f in key), _LABELS.field(TIME_COLUMN)]
    )

    def labels() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(entities), chunk_rows):
            ids = entities.slice(start, chunk_rows)
            at = pa.array([at_us] * len(ids), pa.int64()).cast(_LABELS.field(TIME_COLUMN).type)
            fields = entity_keys.decode_arrays(ids, len(key)) if key else []
            yield pa.RecordBatch.from_arrays([ids, *fields, at], schema=schema)

    batches = join_label_batches(
        table,
        definitions,
        schema,
        labels(),
        entity_type=entity_type,
        entity_column=",".join(key) if key else ENTITY_COLUMN,  # a composite key joins by its fields, re-encoded
        timestamp_column=TIME_COLUMN,
        point=point,
    )
    return output_schema(schema, definitions), batches


def export_feature_vectors(
    table: Table,
    catalog: FeatureCatalog,
    entity_type: str,
    features: Sequence[str],
    as_of: datetime,
    *,
    read_as_of: int | datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pa.Table:
    """``entity_id`` (then a column per key field of a composite key), ``as_of`` and one column per
    feature, one row per entity (sorted by id).

    Args:
        as_of: the time of the vectors (timezone-aware).
        read_as_of: what the read sees, as ``get_historical_features``'s ``as_of``: a snapshot id, or
            a time (the snapshot then, rows ingested by then). Default: the current snapshot.
        chunk_rows: entities joined at a time (bounds memory, never changes the result).
    """
    schema, batches = feature_vector_batches(
        table, catalog, entity_type, features, as_of, read_as_of=read_as_of, chunk_rows=chunk_rows
    )
    return pa.Table.from_batches(list(batches), schema=schema)


def _definitions(db: Path) -> DefinitionStore:
    """The registry a command reads: an error naming ``FS_DEFINITIONS_DB``, nothing created, if none is there."""
    from registry.definition_store import DefinitionStore

    return DefinitionStore.existing(db, name=f"FS_DEFINITIONS_DB={shown(db)}")


def main(argv: list[str] | None = None) -> int:
    from registry.core.settings import settings_for_command
    from serving.offline.command_io import parse_as_of
    from sinks.factory import connect_iceberg
    from sinks.iceberg.writer import load_table

    parser = ArgumentParser(
        prog="python -m serving.offline.batch_scoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entity-type", required=True, help="the entity type the features belong to (e.g. user)")
    parser.add_argument(
        "--features", required=True, type=feature_names, help="comma-separated names; name@vN pins a version"
    )
    parser.add_argument("--as-of", required=True, help="time of the vectors: ISO-8601 with zone, or epoch ms")
    parser.add_argument(
        "--snapshot-id", type=whole(0, 2**63 - 1), help="read this Iceberg snapshot (default: the current one)"
    )
    parser.add_argument("--read-as-of", help="read the snapshot current then, and only rows ingested by then")
    parser.add_argument("--out", required=True, type=Path, help="the Parquet file to write (its folder must exist)")
    parser.add_argument("--chunk-rows", type=whole(1), default=DEFAULT_CHUNK_ROWS, help="entities per chunk")
    args = parser.parse_args(argv)
    settings = settings_for_command()
    try:
        check_out_path(args.out)
        as_of = parse_as_of(None, args.as_of)
        assert isinstance(as_of, datetime)
        read_as_of = parse_as_of(args.snapshot_id, args.read_as_of, option="--read-as-of")
        registry = _definitions(settings.definitions_db)  # before the catalog: a missing one named, nothing created
        table = load_table(connect_iceberg(settings), settings.iceberg_namespace)
        schema, batches = feature_vector_batches(
            table,
            guard_catalog(registry.catalog(), settings, action="batch_scoring"),
            args.entity_type,
            args.features.split(","),
            as_of,
            read_as_of=read_as_of,
            chunk_rows=args.chunk_rows,
        )
        rows = write_parquet(batches, schema, args.out)
    except command_failures() as exc:  # ArrowInvalid: a damaged offline data file
        print(error_line(exc), file=sys.stderr)
        return 1
    print(f"wrote {rows} feature vectors as of {as_of.isoformat()} to {shown(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from registry.core.interrupt import run_command

    sys.exit(run_command(main, None))
