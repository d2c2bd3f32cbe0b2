"""A content hash of an Arrow table that does not depend on how the table happens to be laid out.

sha256 over a canonical Arrow IPC serialization: the schema (names, types, metadata), then the rows
re-cut into batches of exactly ``BATCH_ROWS`` (the last one shorter). Within a batch, a column with
nulls is written as its validity (uint8 per row) plus its values with every null slot set to zero
(or the empty string): Arrow leaves arbitrary bytes under nulls, and those must not change the
hash. Booleans are written as uint8 (no bit-packing tail bits). So two tables hash equal exactly when
they hold the same values in the same order under the same schema, whether they arrive whole or as a
stream of batches of any size. Nested columns (lists, structs, maps) are written as they are.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

BATCH_ROWS = 65_536


def _zero(t: pa.DataType) -> pa.Scalar | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.scalar("", t)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pa.scalar(b"\0" * t.byte_width, t) if pa.types.is_fixed_size_binary(t) else pa.scalar(b"", t)
    if pa.types.is_boolean(t):
        return pa.scalar(False)
    if pa.types.is_decimal(t):
        return pa.scalar(Decimal(0), t)
    for source in (pa.int64(), pa.int32()):
        try:
            return pa.scalar(0, source).cast(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            continue
    return None  # nested and exotic types: written as they are


def _canonical(array: pa.Array) -> tuple[list[pa.Array], bytes]:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    zero = _zero(array.type)
    if zero is None:
        return [array], b"r"
    arrays = []
    flag = b"v"
    if array.null_count:
        arrays.append(pc.is_valid(array).cast(pa.uint8()))
        array = pc.fill_null(array, zero)
        flag = b"n"
    if pa.types.is_boolean(array.type):
        array = array.cast(pa.uint8())
    arrays.append(array)
    return arrays, flag


class ContentHasher:
    """Feed a table whole or batch by batch (any sizes); ``hexdigest`` is the same either way."""

    def __init__(self, schema: pa.Schema) -> None:
        self._sha = hashlib.sha256(schema.serialize().to_pybytes())
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def update(self, data: pa.Table | pa.RecordBatch) -> None:
        batches = data.to_batches() if isinstance(data, pa.Table) else [data]
        for batch in batches:
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            self.rows += batch.num_rows
        if self._pending_rows >= BATCH_ROWS:
            table = pa.Table.from_batches(self._pending)
            full = self._pending_rows // BATCH_ROWS * BATCH_ROWS
            for start in range(0, full, BATCH_ROWS):
                self._write(table.slice(start, BATCH_ROWS))
            rest = table.slice(full)
            self._pending = rest.to_batches()
            self._pending_rows = rest.num_rows

    def _write(self, table: pa.Table) -> None:
        arrays: list[pa.Array] = []
        flags = b""
        for column in table.columns:
            canonical, flag = _canonical(column.combine_chunks())
            arrays.extend(canonical)
            flags += flag
        self._sha.update(len(table).to_bytes(8, "little") + flags)
        if arrays:
            batch = pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
            self._sha.update(batch.serialize().to_pybytes())

    def hexdigest(self) -> str:
        """The hash of everything fed so far (call once, at the end)."""
        if self._pending_rows:
            self._write(pa.Table.from_batches(self._pending))
            self._pending, self._pending_rows = [], 0
        return self._sha.hexdigest()


def content_sha256(table: pa.Table) -> str:
    hasher = ContentHasher(table.schema)
    hasher.update(table)
    return hasher.hexdigest()
