"""What the offline commands (historical features, training sets, batch scoring) share around a join's data.

The ``--as-of`` time read from the command line, the labels Parquet file read a chunk at a time (a file
that is missing, not Parquet or cut short refused in one line), the output paths checked before anything is
read (a training build's outputs against its labels and each other too), and the output written atomically in
row groups of a fixed size (the same rows make the same bytes, whatever the chunks they were joined in).
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from registry.core.errors import DatasetError, FeatureStoreError
from registry.core.shown import shown
from sinks.iceberg.maintenance import unreadable_table_errors

OUTPUT_ROW_GROUP_ROWS = 131_072
"""Rows per row group of a written training set, whatever the chunks it was joined in: the same rows make the
same bytes (a rebuild with another ``chunk_rows`` is byte-identical)."""


def aside(path: Path, kind: str = "tmp") -> Path:
    """A hidden file beside ``path`` to write before moving it into place (``.featurestore-<pid>-<8 hex>.<kind>``):
    a name of fixed length, so any name the file system takes for ``path`` can be written (a name built on
    ``path``'s own, ``.<name>.<pid>.tmp``, was too long for the file system from about 240 bytes of ``--out``),
    and unique, so two writes in one process never share it."""
    return path.with_name(f".featurestore-{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def check_out_path(out: Path, option: str = "--out") -> None:
    """An output path a command may write, checked before anything is read: a regular file or none yet, in a folder
    that exists, named in text the file system and Arrow take (UTF-8), a name no longer than the file system takes
    (``PC_NAME_MAX``, 255 bytes as a rule). DatasetError naming ``option`` otherwise. A
    device, FIFO or socket is refused: the write's rename would replace it (run as root, ``--out /dev/null`` turned
    the system's null device into a Parquet file)."""
    try:
        str(out).encode("utf-8")
    except UnicodeEncodeError:
        raise DatasetError(f"{option} {shown(out)}: not a UTF-8 path") from None
    if not out.parent.is_dir():
        raise DatasetError(f"{option} {shown(out)}: not a file in an existing directory")
    try:
        limit = os.pathconf(out.parent, "PC_NAME_MAX")
    except (OSError, ValueError):  # no limit known: the write says
        limit = -1
    if 0 < limit < len(os.fsencode(out.name)):
        raise DatasetError(
            f"{option} {shown(out)}: a file name of {len(os.fsencode(out.name))} bytes, longer than the {limit} "
            "its file system takes"
        )
    if out.is_dir():
        raise DatasetError(f"{option} {shown(out)}: not a file in an existing directory")
    if out.exists() and not out.is_file():
        raise DatasetError(
            f"{option} {shown(out)}: not a regular file (a device, FIFO or socket): it would be replaced"
        )


def written_path(out: Path) -> Path:
    """Where a file moved to ``out`` lies, absolute: its folder resolved, not its name (a symbolic link at ``out`` is
    replaced by the file, not followed: the file it pointed to keeps its set)."""
    return out.parent.resolve() / out.name


def same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def check_build_paths(
    labels: Path, out: Path, manifest: Path, copy_labels_to: Path | None, manifest_option: str = "--manifest"
) -> None:
    """Refuse, before anything is read or written, a build whose outputs would overwrite its labels or each
    other, or whose manifest or label copy cannot be written (DatasetError naming the option; ``manifest_option``
    names the manifest's)."""
    if same_file(labels, out):
        raise DatasetError(f"--out {shown(out)} is the labels file: writing it would replace the labels")
    check_out_path(out)  # found before the join runs, not when the result is moved there
    if same_file(manifest, out) or same_file(manifest, labels):
        raise DatasetError(f"--manifest {shown(manifest)} is the labels or the output file")
    check_out_path(manifest, manifest_option)
    if copy_labels_to is not None:
        try:
            str(copy_labels_to).encode("utf-8")
        except UnicodeEncodeError:
            raise DatasetError(f"--copy-labels-to {shown(copy_labels_to)}: not a UTF-8 path") from None
        for option, path in (("--out", out), ("--manifest", manifest), ("--labels", labels)):
            if same_file(copy_labels_to, path):  # its folder made there: the output moved, the manifest not
                raise DatasetError(f"--copy-labels-to {shown(copy_labels_to)} is the {option} file: give a folder")
        if copy_labels_to.exists() and not copy_labels_to.is_dir():
            raise DatasetError(f"--copy-labels-to {shown(copy_labels_to)}: exists and is not a directory")
        nearest = next(p for p in (copy_labels_to, *copy_labels_to.parents) if p.exists())  # what mkdir builds on
        if not nearest.is_dir():
            raise DatasetError(f"--copy-labels-to {shown(copy_labels_to)}: {shown(nearest)} is not a directory")


def write_parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema, out: Path) -> int:
    """Write batches to ``out`` atomically (a partial file never appears under that name), in row groups of
    ``OUTPUT_ROW_GROUP_ROWS`` (the last one shorter); rows written.

    Each row group is written from one contiguous array per column: Arrow's writer checks whether to close a data
    page (and to give up a dictionary) at the end of every chunk it is handed, so chunks that followed the batches
    made other pages, other bytes, for the same rows."""
    tmp = aside(out)
    rows = 0
    pending: list[pa.RecordBatch] = []
    held = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in _inputs(batches):
                pending.append(batch)
                held += batch.num_rows
                rows += batch.num_rows
                while held >= OUTPUT_ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(pending, schema)
                    writer.write_table(
                        table.slice(0, OUTPUT_ROW_GROUP_ROWS).combine_chunks(), row_group_size=OUTPUT_ROW_GROUP_ROWS
                    )
                    rest = table.slice(OUTPUT_ROW_GROUP_ROWS)
                    pending, held = rest.to_batches(), rest.num_rows
            if held:
                writer.write_table(
                    pa.Table.from_batches(pending, schema).combine_chunks(), row_group_size=OUTPUT_ROW_GROUP_ROWS
                )
        tmp.replace(out)
    except _InputError as failed:  # reading what is written (the table, the labels): its own error, as raised
        raise failed.error from None
    except OSError as exc:  # the disk full, the folder read-only: the file the caller named, not the hidden one
        raise DatasetError(f"cannot write the output file in {shown(out.parent)}: {reason(exc)}") from None
    finally:
        discard(tmp)
    return rows


def copy_into_place(source: Path, target: Path, option: str) -> None:
    """Copy ``source`` to ``target`` aside, then move it into place, so a copy cut short (the disk full) never
    appears under the name (a manifest records it); a failure is a DatasetError naming ``option``'s folder."""
    staging = aside(target, "copying")
    try:
        shutil.copyfile(source, staging)
        staging.replace(target)
    except OSError as exc:
        raise DatasetError(
            f"{option} {shown(target.parent)}: cannot copy {shown(source)} there: {reason(exc)}"
        ) from None
    finally:
        discard(staging)


def discard(path: Path) -> None:
    """Remove a file written aside, if it is there: on a read-only file system even a file that is not there cannot
    be unlinked (EROFS), and that error replaced the one that said why the write failed."""
    with suppress(OSError):
        path.unlink(missing_ok=True)


def reason(exc: OSError) -> str:
    """Why the system refused (``No space left on device``): Arrow's OSError holds its whole message, hidden file
    name included, where the system's holds the reason alone."""
    return os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)


class _InputError(Exception):
    def __init__(self, error: OSError) -> None:
        self.error = error


def _inputs(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches``, an OSError of theirs (a data file of the table gone) set apart from the write's own."""
    try:
        yield from batches
    except OSError as exc:
        raise _InputError(exc) from None


def parse_as_of(snapshot_id: int | None, as_of: str | None, *, option: str = "--as-of") -> int | datetime | None:
    """CLI form: ``--snapshot-id N`` or ``--as-of`` an ISO-8601 time with a zone, or epoch ms digits.

    ``option`` is the name the command gives the time (in messages)."""
    from registry.core.durations import parse_instant

    if snapshot_id is not None and as_of is not None:
        raise DatasetError(f"give either --snapshot-id or {option}, not both")
    if as_of is None:
        return snapshot_id
    try:
        instant = parse_instant(as_of)
    except ValueError as exc:
        raise DatasetError(f"{option} {exc}") from None
    if instant - datetime.max.replace(tzinfo=UTC) > timedelta(0):  # 9999-12-31 late in a zone behind UTC
        raise DatasetError(f"{option} {as_of!r} is past the year 9999 (UTC)")
    return instant


# pyarrow takes a batch size as a 64-bit count (OverflowError past it): a larger chunk is every row anyway.
MAX_BATCH_ROWS = 2**63 - 1


def open_labels(path: Path, chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The labels file's schema and its batches; DatasetError naming ``--labels`` for a file that is missing,
    not Parquet, or cut short (also when the damage shows only while its batches are read)."""

    def refused(exc: Exception) -> DatasetError:
        return DatasetError(f"--labels {shown(path)}: not a readable Parquet file: {exc}")

    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO blocked the open for good; a folder is no file
            raise OSError("not a regular file")
        labels = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError, UnicodeError) as exc:  # UnicodeError: a name that is not UTF-8 (to Arrow)
        raise refused(exc) from None

    size = min(chunk_rows, MAX_BATCH_ROWS)
    int96 = any(labels.schema.column(i).physical_type == "INT96" for i in range(len(labels.schema)))

    def batches() -> Iterator[pa.RecordBatch]:
        read = labels.iter_batches(batch_size=size)
        # INT96 (Spark's and Hive's legacy timestamp) is read as nanoseconds, which wrap past 1677..2262 without a
        # word; read again in microseconds (right past 1970 and on whole days, wrong before 1970 within a day),
        # every value is exact only where the two reads agree.
        again = None
        if int96:
            try:
                again = pq.ParquetFile(path, coerce_int96_timestamp_unit="us").iter_batches(size)
            except (pa.ArrowInvalid, OSError) as exc:
                raise refused(exc) from None
        row = 0
        while True:
            try:
                batch = next(read)
                check = next(again) if again is not None else None
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as exc:
                raise refused(exc) from None
            if check is not None:
                _check_int96(path, batch, check, row)
            row += batch.num_rows
            yield batch

    return labels.schema_arrow, batches()


def _check_int96(path: Path, batch: pa.RecordBatch, again: pa.RecordBatch, row: int) -> None:
    """DatasetError naming the first value of an INT96 column (a top-level one: read as nanoseconds in ``batch``, as
    microseconds in ``again``, column by column in order, names may repeat) whose two reads disagree."""
    for i, field in enumerate(batch.schema):
        other = again.schema.field(i).type
        int96 = pa.types.is_timestamp(field.type) and pa.types.is_timestamp(other)
        if not int96 or (field.type.unit, other.unit) != ("ns", "us"):
            continue  # not INT96 (coerced to microseconds in the second read only): read once, exactly
        ns = batch.column(i).cast(pa.int64()).fill_null(0).to_numpy()
        us = again.column(i).cast(pa.int64()).fill_null(0).to_numpy()
        wrong = np.flatnonzero(ns // 1000 != us)
        if len(wrong):
            raise DatasetError(
                f"--labels {shown(path)}: column {field.name!r} is an INT96 timestamp (Spark's and Hive's legacy type) "
                f"whose row {row + int(wrong[0])} Arrow's reads cannot tell from a time 584 years away (a time outside "
                "1677-09-21..2262-04-11, or before 1970 and not at midnight): write it as a timestamp in microseconds "
                "(Spark: spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS)"
            )


def command_failures() -> tuple[type[BaseException], ...]:
    """What an offline command answers with one ``error:`` line: the project's errors, Arrow's (labels that are not
    Parquet, a damaged data file) and a table whose files are gone or cut short (``unreadable_table_errors``: an
    ``--out`` that cannot be written is an OSError too)."""
    return (FeatureStoreError, pa.ArrowException, *unreadable_table_errors())
