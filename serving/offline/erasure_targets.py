"""Which entities an erasure applies to, checked before anything is touched (``serving.offline.erasure``): an
id or a composite key's field no store can hold is refused with a ValueError naming why, and an erasure by key
field finds the matching entities in the tables that hold every entity written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from registry.core import entity_keys
from registry.core.catalog import FeatureCatalog
from registry.core.shown import shown

if TYPE_CHECKING:
    from pyiceberg.table import Table


def matching_ids(
    tables: Sequence[Table | None], entity_type: str, fields: tuple[str, ...], field: str, value: str
) -> list[str]:
    """The ids of ``entity_type`` in ``tables`` whose key ``field`` is ``value`` (sorted): the entities an
    erasure by key field removes. The offline table holds every entity the job wrote online (the dual
    writer writes offline first), the serving log every one served."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyiceberg.expressions import EqualTo

    found: set[str] = set()
    position = fields.index(field)
    for table in tables:
        if table is None or table.current_snapshot() is None:
            continue
        ids = table.scan(row_filter=EqualTo("entity_type", entity_type), selected_fields=("entity_id",)).to_arrow()
        distinct = pc.unique(ids.column("entity_id").combine_chunks()).cast(pa.string())
        component = entity_keys.decode_arrays(distinct, len(fields))[position]
        found.update(distinct.filter(pc.fill_null(pc.equal(component, value), False)).to_pylist())
    return sorted(found)


def key_fields(catalog: FeatureCatalog, entity_type: str, key_field: str, key_value: str) -> tuple[str, ...]:
    """The composite key of ``entity_type`` an erasure by ``key_field=key_value`` applies to; ValueError for a
    single-key type, a field outside the key or an empty value (checked before anything is touched)."""
    _known_type(catalog, entity_type)
    fields = catalog.composite_key(entity_type)
    if not fields:
        raise ValueError(f"{entity_type!r} has no composite key: erase its entities by --entity-id")
    if key_field not in fields:
        raise ValueError(f"{key_field!r} is not a key field of {entity_type} ({', '.join(fields)})")
    if not key_value:
        raise ValueError("give the key field's value")
    _utf8("key value", key_value)
    return fields


def _utf8(what: str, value: str) -> None:
    """ValueError for an argument that is not UTF-8 text (its bytes read with surrogate escapes): every store
    holds ids as UTF-8, so none holds it, and the registry could not record its erasure."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} is not UTF-8 text: no store holds it") from None


def check_requester(requested_by: str) -> None:
    """ValueError for a ``--requested-by`` that is not UTF-8 text (read with surrogate escapes): the registry could
    not record it, and the erasure would stop at its first step after reaching every store."""
    try:
        requested_by.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"--requested-by {requested_by!r} is not UTF-8 text: the erasure record could not name who asked"
        ) from None


def _known_type(catalog: FeatureCatalog, entity_type: str) -> None:
    """ValueError for an entity type no feature version is defined for: nothing of it can be stored (the
    definitions are never deleted), so erasing it would report zeros for what is likely a misspelling."""
    if entity_type not in catalog.entity_types():
        known = ", ".join(sorted(catalog.entity_types())) or "none"
        raise ValueError(
            f"no feature is defined for entity type {shown(entity_type, quoted=True)}, so no store holds any of it"
            f" (entity types: {known})"
        )


def check_entity(catalog: FeatureCatalog, entity_type: str, entity_id: str) -> None:
    """ValueError, before anything is touched, for an erasure by id no store can hold: an empty type or id, a
    type no feature is defined for, or an id of a composite-keyed type that does not encode its key."""
    if not entity_type or not entity_id:
        raise ValueError("give an entity type and an entity id")
    _known_type(catalog, entity_type)
    _utf8("entity id", entity_id)
    fields = catalog.composite_key(entity_type)
    if fields:
        try:
            entity_keys.decode(entity_id, len(fields))
        except ValueError as exc:
            raise ValueError(
                f"{exc}: an id of {entity_type} encodes its key ({', '.join(fields)}) as 'a|b'; "
                f"to erase every {entity_type} of one {fields[0]}, give --key {fields[0]}=VALUE"
            ) from None
