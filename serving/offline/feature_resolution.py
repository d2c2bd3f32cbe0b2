"""The features a join's names mean: stored definitions and request-time columns, read-checked together.

A name is a feature's active version (aliases too) or ``name@vN``; a request-time feature's function is
loaded and checked against its registered source, and reading it needs the grants its stored inputs need.
Every unknown name is named at once, and a feature asked for twice is refused, as are no feature, names given as
one string (read as its characters, they were named as unknown features) and names that are not strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from registry.core.catalog import FeatureCatalog
from registry.core.definitions import FeatureDefinition
from registry.core.errors import DefinitionError, UnknownFeatureError
from registry.core.refs import Ref, parse_ref
from serving.offline.request_columns import Column, RequestColumn


def resolve_features(catalog: FeatureCatalog, entity_type: str, features: Sequence[str]) -> list[FeatureDefinition]:
    """Definitions for ``name`` (the active version, aliases too) or ``name@vN`` (that version).

    UnknownFeatureError lists every unknown name; a feature asked for twice is a DefinitionError; then
    the catalog's read check (ForbiddenError naming every feature the caller has no grant for).
    """
    found = _resolve_stored(catalog, entity_type, _parsed(features))
    catalog.check_read(found)
    return found


def _parsed(features: Sequence[str]) -> list[tuple[str, Ref]]:
    """Each reference with what it spells; a DefinitionError names every reference that is not ``name`` or
    ``name@vN`` (design §3.2: a space or a trailing newline makes one malformed), shown quoted, where such a
    reference was called an unknown feature and its trailing space went unseen; the entity type is the command's,
    never part of the reference."""
    if isinstance(features, str | bytes) or not isinstance(features, Iterable):
        raise DefinitionError(
            f"features must be a list of feature names, not {type(features).__name__} {str(features)[:200]!r}"
            + (" (one string would be read as its characters)" if isinstance(features, str | bytes) else "")
        )
    features = list(features)
    if not features:
        raise DefinitionError("give at least one feature")
    if others := [f for f in features if not isinstance(f, str)]:
        raise DefinitionError(f"feature names must be strings, not {', '.join(repr(f) for f in others[:5])}")
    parsed = [(f, parse_ref(f)) for f in features]
    malformed = [f for f, ref in parsed if ref is None]
    if malformed:
        shown = ", ".join(repr(f) for f in malformed)
        raise DefinitionError(f"malformed feature reference(s): {shown}: give name or name@vN (the entity type apart)")
    return [(f, ref) for f, ref in parsed if ref is not None]


def _resolve_stored(
    catalog: FeatureCatalog, entity_type: str, features: Sequence[tuple[str, Ref]]
) -> list[FeatureDefinition]:
    """``resolve_features`` without the read check, for references already parsed."""
    found: list[FeatureDefinition] = []
    unknown: list[str] = []
    for feature, ref in features:
        try:
            if ref.version is not None:
                found.append(catalog.get(entity_type, ref.name, ref.version))
            else:
                found.extend(catalog.resolve(entity_type, [ref.name]))
        except UnknownFeatureError:
            unknown.append(feature)
    if unknown:
        raise UnknownFeatureError(entity_type, unknown)
    names = [d.name for d in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DefinitionError(f"feature(s) requested more than once (one version per request): {twice}")
    return found


def resolve_columns(catalog: FeatureCatalog, entity_type: str, features: Sequence[str]) -> list[Column]:
    """``resolve_features`` for stored features and request-time features alike (order kept).

    A request feature is ``name`` (its highest version) or ``name@vN``; its function is loaded and
    checked against its registered source here (RequestFeatureError), and reading it needs the grants
    its stored inputs need."""
    columns = resolve_unchecked(catalog, entity_type, features)
    check_columns(catalog, columns)
    return columns


def check_columns(catalog: FeatureCatalog, columns: Sequence[Column]) -> None:
    """One read check for a whole command: a feature read directly and as a request feature's input is one read
    (audited once), and a refusal names every feature without a grant, stored or input."""
    catalog.check_read([d for c in columns for d in (c.inputs if isinstance(c, RequestColumn) else (c,))])


def resolve_unchecked(catalog: FeatureCatalog, entity_type: str, features: Sequence[str]) -> list[Column]:
    """``resolve_columns`` without the read check."""
    found: dict[int, Column] = {}
    stored: list[tuple[int, tuple[str, Ref]]] = []
    unknown: list[str] = []
    parsed = _parsed(features)
    for i, (feature, ref) in enumerate(parsed):
        if catalog.request_feature(entity_type, ref.name) is None:
            stored.append((i, (feature, ref)))
            continue
        request = catalog.request_feature(entity_type, ref.name, ref.version)
        if request is None:
            unknown.append(feature)
        else:
            found[i] = RequestColumn.of(catalog, request)
    try:
        definitions = _resolve_stored(catalog, entity_type, [f for _, f in stored])
    except UnknownFeatureError as exc:
        raise UnknownFeatureError(entity_type, [*exc.names, *unknown]) from exc
    if unknown:
        raise UnknownFeatureError(entity_type, unknown)
    found.update((i, d) for (i, _), d in zip(stored, definitions, strict=True))
    columns = [found[i] for i in range(len(parsed))]
    names = [c.name for c in columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DefinitionError(f"feature(s) requested more than once (one version per request): {twice}")
    return columns
