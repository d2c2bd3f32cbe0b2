"""An in-memory index of feature definitions, loaded from a folder of TOML files.

The folder is reviewed like code; each file holds ``[[feature]]`` tables and optional ``[defaults]``,
and may hold ``[[request_feature]]`` tables (request-time features, ``registry.core.request_features``:
they take ``entity``, ``owner`` and ``tags`` from ``[defaults]``, nothing else).
Lookups are dictionary reads, so serving cost does not grow with the number of definitions.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from registry.core.definitions import (
    NAME_PATTERN,
    FeatureDefinition,
    check_entity_keys,
    check_event_schema,
    check_lateness,
    check_streams,
    validate_registered,
)
from registry.core.durable import read_text_file
from registry.core.errors import DefinitionError, UnknownFeatureError
from registry.core.request_features import RequestFeature
from registry.core.shown import shown

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "features"
Held = Callable[[FeatureDefinition], bool]
"""Whether a store holds a definition's version with the same identity (``DefinitionStore.holds``)."""


def _merge(defaults: Mapping[str, Any], feature: Mapping[str, Any]) -> dict[str, Any]:
    """A feature's table over ``[defaults]``: tables merge key by key (a feature's ``window = { size = "2h" }``
    keeps the default's kind and slide), except a ``window`` of another ``kind`` than the default's, which replaces
    the default's whole (a session window takes none of a sliding default's size and slide), and an ``aggregation``
    ``count`` without a ``field``, which takes no default ``field`` (TOML has no null to clear it; ``count`` takes
    none); a default that names no kind merges key by key whatever kind the feature names."""
    merged = dict(defaults)
    for key, value in feature.items():
        default = merged.get(key)
        if isinstance(value, Mapping) and isinstance(default, Mapping):
            # A default without a kind is of no other kind: a feature naming one keeps its size and slide.
            other_kind = key == "window" and "kind" in default and "kind" in value and value["kind"] != default["kind"]
            counted = key == "aggregation" and value.get("function") == "count" and "field" not in value
            merged[key] = dict(value) if other_kind or counted else {**default, **value}
        else:
            merged[key] = value
    return merged


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """A pydantic error's problems as ``(field.path, message)`` (the path empty for the whole input), without the
    misleading ones: pydantic counts only the entries that validated, so a list whose every entry failed is also
    "too short"; that list's own entries' errors say what is wrong. A check of ours speaks for itself: its message
    goes without pydantic's ``Value error, `` in front."""
    errors = exc.errors(include_url=False)
    within = {err["loc"][:i] for err in errors for i in range(len(err["loc"]))}
    return [
        (".".join(str(p) for p in err["loc"]), _message(err["type"], str(err["msg"])))
        for err in errors
        if not (err["type"] == "too_short" and err["loc"] in within)
    ]


def _message(kind: str, msg: str) -> str:
    """A problem's message as users read it: a ``ValueError`` raised by our own checks without pydantic's prefix."""
    prefix = "Value error, "
    return msg[len(prefix) :] if kind == "value_error" and msg.startswith(prefix) else msg


def validation_text(exc: ValidationError) -> str:
    """A pydantic error in one line: each problem as ``field.path: message``, joined by ``; `` (no input dumps,
    no URLs: a CLI prints it as its one ``error:`` line)."""
    parts = [f"{where}: {msg}" if where else msg for where, msg in validation_problems(exc)]
    return "; ".join(parts).replace("\n", " ")


def _label(raw: Mapping[str, Any], i: int) -> str:
    """An entry as an error names it: its ``name`` when it is one, else its number (and what it holds, quoted)."""
    name = raw.get("name")
    if isinstance(name, str) and re.fullmatch(NAME_PATTERN, name):
        return name
    return f"#{i + 1}" if name is None else f"#{i + 1} ({name!r:.100})"


def _tables(path: Path, doc: Mapping[str, Any], key: str) -> tuple[dict[str, Any], list[Any]]:
    """``[defaults]`` and the ``[[key]]`` array of a file, each checked for its TOML shape."""
    defaults, entries = doc.get("defaults", {}), doc.get(key, [])
    if not isinstance(defaults, dict):
        raise DefinitionError(f"{shown(path)}: `defaults` must be a table ([defaults]), not {defaults!r:.100}")
    if not isinstance(entries, list):
        raise DefinitionError(f"{shown(path)}: `{key}` must be an array of tables ([[{key}]]), not {entries!r:.100}")
    unknown = sorted(set(defaults) - set(FeatureDefinition.model_fields))
    if unknown:  # refused whether or not a table of the file inherits it (a misspelling would otherwise go unseen)
        raise DefinitionError(f"{shown(path)}: defaults: unknown field(s) {unknown}")
    return defaults, entries


def _read(path: Path) -> tuple[dict[str, Any], str]:
    """A definitions file's TOML document and its text."""
    try:
        text = read_text_file(path)  # a FIFO named *.toml blocked the read for good
        if text.startswith("\ufeff"):  # invisible in an editor: TOML's "Invalid statement (at line 1, column 1)"
            raise DefinitionError(f"{shown(path)}: starts with a UTF-8 byte order mark (BOM): save it without one")
        doc = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{shown(path)}: cannot read definitions: not UTF-8 text (byte {exc.start})") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"{shown(path)}: cannot read definitions: {exc}") from exc
    except RecursionError:  # Python's TOML parser recurses per level of nesting
        raise DefinitionError(f"{shown(path)}: cannot read definitions: nested too deeply") from None
    unknown = set(doc) - {"defaults", "feature", "request_feature"}
    if unknown:
        raise DefinitionError(
            f"{shown(path)}: unknown top-level key(s) {sorted(unknown)}; expected [defaults], [[feature]] "
            "and [[request_feature]]"
        )
    return doc, text


def _places(path: Path, text: str, key: str, count: int) -> list[str]:
    """Where each of a file's ``count`` ``[[key]]`` entries is, for messages: ``path:line`` of its header, or
    ``path (key #n)`` when the entries are not all written as ``[[key]]`` headers (an inline array)."""
    header = re.compile(rf"[ \t]*\[\[[ \t]*{key}[ \t]*\]\][ \t]*(#.*)?")
    lines = [i + 1 for i, line in enumerate(text.split("\n")) if header.fullmatch(line.removesuffix("\r"))]
    if len(lines) == count:
        return [f"{shown(path)}:{line}" for line in lines]
    return [f"{shown(path)} ({key} #{i + 1})" for i in range(count)]


def parse_request_features_at(path: Path) -> list[tuple[RequestFeature, str]]:
    """The ``[[request_feature]]`` tables of one file (``entity``, ``owner``, ``tags`` default from ``[defaults]``),
    each with where it is written (``path:line``, for messages)."""
    doc, text = _read(path)
    defaults, raw_features = _tables(path, doc, "request_feature")
    inherited = {k: v for k, v in defaults.items() if k in ("entity", "owner", "tags")}
    out = []
    for i, raw in enumerate(raw_features):
        if not isinstance(raw, dict):
            raise DefinitionError(
                f"{shown(path)}: request feature #{i + 1} is not a table ([[request_feature]]): {raw!r:.100}"
            )
        try:
            out.append(RequestFeature.model_validate({**inherited, **raw}))
        except ValidationError as exc:
            label = _label(raw, i)
            raise DefinitionError(f"{shown(path)}: request feature {label}: {validation_text(exc)}") from exc
    return list(zip(out, _places(path, text, "request_feature", len(out)), strict=True))


def parse_request_features(path: Path) -> list[RequestFeature]:
    """The ``[[request_feature]]`` tables of one file (``entity``, ``owner``, ``tags`` default from ``[defaults]``)."""
    return [r for r, _ in parse_request_features_at(path)]


def parse_file_at(path: Path, held: Held | None = None) -> list[tuple[FeatureDefinition, str]]:
    """The ``[[feature]]`` tables of one file over its ``[defaults]``, each with where it is written (``path:line``);
    ``held``: which versions the store holds, exempt from bounds added after them (``validate_registered``)."""
    doc, text = _read(path)
    defaults, features = _tables(path, doc, "feature")
    out = []
    for i, raw in enumerate(features):
        if not isinstance(raw, dict):
            raise DefinitionError(f"{shown(path)}: feature #{i + 1} is not a table ([[feature]]): {raw!r:.100}")
        try:
            out.append(validate_registered(_merge(defaults, raw), held))
        except ValidationError as exc:
            label = _label(raw, i)
            raise DefinitionError(f"{shown(path)}: feature {label}: {validation_text(exc)}") from exc
    return list(zip(out, _places(path, text, "feature", len(out)), strict=True))


def parse_file(path: Path) -> list[FeatureDefinition]:
    return [d for d, _ in parse_file_at(path)]


def _files(folder: Path) -> list[Path]:
    """The ``*.toml`` files of ``folder``, sorted; DefinitionError (one line) if it is not a folder that can be listed."""
    where = shown(folder)
    try:
        if not folder.is_dir():
            raise DefinitionError(f"{where}: not a folder of definition files (*.toml)")
        # Not hidden ones (".x.toml", an editor's lock ".#x.toml" or backup), which glob matches and a shell does not.
        return sorted(p for p in folder.glob("*.toml") if not p.name.startswith("."))
    except OSError as exc:  # e.g. a name too long
        raise DefinitionError(f"{where}: cannot list definition files: {exc.strerror or exc}") from None


def load_folder_at(folder: Path = DEFAULT_FOLDER, held: Held | None = None) -> list[tuple[FeatureDefinition, str]]:
    """Every definition in ``folder/*.toml`` with where it is written; DefinitionError names the file and
    feature at fault. ``held``: as ``parse_file_at``."""
    files = _files(folder)
    if not files:
        raise DefinitionError(f"no *.toml feature definitions in {shown(folder)}")
    return [located for f in files for located in parse_file_at(f, held)]


def load_folder(folder: Path = DEFAULT_FOLDER) -> list[FeatureDefinition]:
    """Every definition in ``folder/*.toml``; DefinitionError names the file and feature at fault."""
    return [d for d, _ in load_folder_at(folder)]


def load_request_folder_at(folder: Path = DEFAULT_FOLDER) -> list[tuple[RequestFeature, str]]:
    """Every request feature in ``folder/*.toml`` (as written) with where it is written."""
    return [located for f in _files(folder) for located in parse_request_features_at(f)]


def load_request_folder(folder: Path = DEFAULT_FOLDER) -> list[RequestFeature]:
    """Every request feature in ``folder/*.toml`` (as written: ``function_hash`` is filled at registration)."""
    return [r for r, _ in load_request_folder_at(folder)]


def alias_clashes(held: Iterable[FeatureDefinition], new: Iterable[FeatureDefinition]) -> list[str]:
    """Where a name or alias of a ``new`` version is another feature's name or alias, in any version of it,
    active or not; ``held``: every version there would be (``new`` among them or not: a version of ``new``
    replaces the one held under its key, as a metadata update does).

    The catalog refuses such a clash among the active versions only (``FeatureCatalog``), so an inactive
    version holding another feature's name as an alias was registered and then could never be activated;
    checked at registration instead, whichever of the two is registered second, with the catalog's message.
    Clashes among ``held`` versions alone are not reported (a store that holds one still loads)."""
    fresh = list(new)
    versions = {d.key: d for d in held} | {d.key: d for d in fresh}
    names = {(d.entity, d.name) for d in versions.values()}
    holders: dict[tuple[str, str], set[str]] = {}  # (entity type, alias) -> the features giving it
    for d in versions.values():
        for alias in d.aliases:
            holders.setdefault((d.entity, alias), set()).add(d.name)
    problems: dict[str, None] = {}
    for d in fresh:
        for alias in d.aliases:  # never the feature's own name (FeatureDefinition refuses that)
            if (d.entity, alias) in names or len(holders[(d.entity, alias)]) > 1:
                problems[f"alias {d.entity}.{alias} of {d.name} collides with another feature or alias"] = None
        for other in sorted(holders.get((d.entity, d.name), ())):
            problems[f"alias {d.entity}.{d.name} of {other} collides with another feature or alias"] = None
    return list(problems)


class FeatureCatalog:
    """Definitions indexed by (entity, name, version), with the active version of each feature.

    ``active`` maps (entity, name) to the version that serves; a feature it leaves out is served
    at its highest version. Former names (``aliases``) resolve to the feature that carries them, in whichever
    of its versions (a name resolves to the active version).
    """

    def __init__(
        self,
        definitions: Iterable[FeatureDefinition],
        active: Mapping[tuple[str, str], int] | None = None,
        request_features: Iterable[RequestFeature] = (),
    ) -> None:
        self._by_key: dict[tuple[str, str, int], FeatureDefinition] = {}
        for d in definitions:
            if d.key in self._by_key and self._by_key[d.key] != d:
                raise DefinitionError(f"{d.entity}.{d.name} v{d.version} is defined twice, differently")
            self._by_key[d.key] = d
        self._active: dict[tuple[str, str], FeatureDefinition] = {}
        for d in self._by_key.values():
            current = self._active.get((d.entity, d.name))
            if current is None or d.version > current.version:
                self._active[(d.entity, d.name)] = d
        for (entity, name), version in (active or {}).items():
            if (entity, name, version) not in self._by_key:
                raise DefinitionError(f"active version {entity}.{name} v{version} is not defined")
            self._active[(entity, name)] = self._by_key[(entity, name, version)]
        self._aliases: dict[tuple[str, str], FeatureDefinition] = {}
        for d in self._active.values():
            for alias in d.aliases:
                if (d.entity, alias) in self._active or (d.entity, alias) in self._aliases:
                    raise DefinitionError(
                        f"alias {d.entity}.{alias} of {d.name} collides with another feature or alias"
                    )
                self._aliases[(d.entity, alias)] = d
        # A former name given by an inactive version names the feature too (registration reserves it in every
        # version: ``alias_clashes``); one that a store registered before that check shares with another feature
        # or alias stays unresolvable, as it always was, and the store still loads.
        held: dict[tuple[str, str], set[str]] = {}
        for d in self._by_key.values():
            for alias in d.aliases:
                held.setdefault((d.entity, alias), set()).add(d.name)
        for (entity, alias), features in held.items():
            if (entity, alias) not in self._active and (entity, alias) not in self._aliases and len(features) == 1:
                self._aliases[(entity, alias)] = self._active[(entity, next(iter(features)))]
        check_streams(self._active.values())  # the active versions run together in the live job
        self._composite_keys = check_entity_keys(self._by_key.values())
        self._entity_types = frozenset(entity for entity, _ in self._active)
        # Per-entity and per-feature indexes: no lookup scans the whole catalog (10,000 definitions and more).
        self._by_entity: dict[str, list[FeatureDefinition]] = {}
        for (entity, _), d in self._active.items():
            self._by_entity.setdefault(entity, []).append(d)
        self._versions: dict[tuple[str, str], list[FeatureDefinition]] = {}
        for d in sorted(self._by_key.values(), key=lambda d: d.version):
            self._versions.setdefault((d.entity, d.name), []).append(d)
        self._read_check: Callable[[Sequence[FeatureDefinition]], None] | None = None
        self._requests: dict[tuple[str, str], list[RequestFeature]] = {}
        for r in sorted(request_features, key=lambda r: r.version):
            self._check_request(r)
            self._requests.setdefault((r.entity, r.name), []).append(r)

    def _check_request(self, r: RequestFeature) -> None:
        if (r.entity, r.name) in self._versions or (r.entity, r.name) in self._aliases:
            raise DefinitionError(f"request feature {r.entity}.{r.name} has the name of a stored feature or alias")
        held = next((h for h in self._requests.get((r.entity, r.name), ()) if h.version == r.version), None)
        if held is not None and held != r:
            raise DefinitionError(f"request feature {r.entity}.{r.name} v{r.version} is defined twice, differently")
        missing = [f"{n}@v{v}" for n, v in r.input_refs if (r.entity, n, v) not in self._by_key]
        if missing:
            raise DefinitionError(
                f"request feature {r.entity}.{r.name} v{r.version} reads unregistered feature version(s): {missing}"
            )

    def after(
        self, definitions: Iterable[FeatureDefinition], request_features: Iterable[RequestFeature] = ()
    ) -> FeatureCatalog:
        """The catalog that registering ``definitions`` and ``request_features`` would leave: a definition
        replaces the one registered under its version (a metadata update), a feature new to the catalog
        serves its lowest version, active pointers stay. Raises DefinitionError as the constructor does
        (an alias or name taken twice, a request feature reading an unregistered version, ...)."""
        by_key = dict(self._by_key)
        active = {key: d.version for key, d in self._active.items()}
        for d in sorted(definitions, key=lambda d: d.key):
            by_key[d.key] = d
            active.setdefault((d.entity, d.name), d.version)
        requests = {r.key: r for held in self._requests.values() for r in held}
        requests.update((r.key, r) for r in request_features)
        return FeatureCatalog(by_key.values(), active, requests.values())

    def activation_refusal(self, entity: str, name: str, version: int) -> str | None:
        """Why activating ``version`` of the feature would be refused (``DefinitionStore.activate``'s checks on
        the catalog it would leave: a stream read two ways, a name taken twice, an event schema the job cannot
        decode, its sources' features disagreeing on ``allowed_lateness``), or None; nothing is written."""
        active = {key: d.version for key, d in self._active.items()}
        active[(entity, name)] = version
        try:
            after = FeatureCatalog(self._by_key.values(), active, (r for held in self._requests.values() for r in held))
            moved = after.get(entity, name, version)
            check_event_schema(moved)
            check_lateness(after.active(), {moved.source})
        except DefinitionError as exc:
            return str(exc)
        return None

    def guarded(self, check: Callable[[Sequence[FeatureDefinition]], None]) -> FeatureCatalog:
        """This catalog for one caller: ``check_read`` runs ``check`` (which raises to refuse a read)."""
        view = copy.copy(self)
        view._read_check = check
        return view

    def check_read(self, definitions: Sequence[FeatureDefinition]) -> None:
        """Refuse (the guard's error) reading the values of ``definitions``; every offline read of values
        resolves its definitions and then calls this (``registry.access.guard_catalog`` sets the guard)."""
        if self._read_check is not None:
            self._read_check(definitions)

    @classmethod
    def from_folder(cls, folder: Path = DEFAULT_FOLDER) -> FeatureCatalog:
        """The folder's features, and its request features hashed from the code importable now."""
        return cls(load_folder(folder), request_features=[r.with_function_hash() for r in load_request_folder(folder)])

    def __iter__(self) -> Iterator[FeatureDefinition]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def active(self) -> list[FeatureDefinition]:
        return list(self._active.values())

    def entity_types(self) -> frozenset[str]:
        return self._entity_types

    def composite_key(self, entity: str) -> tuple[str, ...]:
        """The key fields of a composite-keyed entity type, in key order; () for a single-key one."""
        return self._composite_keys.get(entity, ())

    def _lookup(self, entity: str, name: str) -> FeatureDefinition | None:
        return self._active.get((entity, name)) or self._aliases.get((entity, name))

    def get(self, entity: str, name: str, version: int | None = None) -> FeatureDefinition:
        if version is None:
            found = self._lookup(entity, name)
        else:
            found = self._by_key.get((entity, name, version))
            if found is None and (entity, name) in self._aliases:
                found = self._by_key.get((entity, self._aliases[(entity, name)].name, version))
        if found is None:
            raise UnknownFeatureError(entity, [name if version is None else f"{name}@v{version}"])
        return found

    def resolve(self, entity: str, names: Iterable[str]) -> list[FeatureDefinition]:
        """Active definitions for names or aliases (order kept); UnknownFeatureError lists every unknown name."""
        names = list(names)
        found = [self._lookup(entity, n) for n in names]
        missing = [n for n, d in zip(names, found, strict=True) if d is None]
        if missing:
            raise UnknownFeatureError(entity, missing)
        return [d for d in found if d is not None]

    def for_entity(self, entity: str) -> list[FeatureDefinition]:
        """The active definition of every feature of ``entity`` (an index lookup, whatever the catalog's size)."""
        return list(self._by_entity.get(entity, ()))

    def versions(self, entity: str, name: str) -> list[FeatureDefinition]:
        return list(self._versions.get((entity, name), ()))

    def request_feature(self, entity: str, name: str, version: int | None = None) -> RequestFeature | None:
        """A request-time feature: ``version`` or, without one, its highest registered version; None if not one."""
        versions = self._requests.get((entity, name))
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return next((r for r in versions if r.version == version), None)

    def request_features(self) -> list[RequestFeature]:
        """Every registered version of every request feature."""
        return [r for versions in self._requests.values() for r in versions]

    def inputs_of(self, feature: RequestFeature) -> list[FeatureDefinition]:
        """The stored feature versions ``feature`` reads, in its declared order."""
        return [self._by_key[(feature.entity, n, v)] for n, v in feature.input_refs]
