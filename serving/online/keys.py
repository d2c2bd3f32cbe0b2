"""A read request's entity keys, checked and encoded into the stores' ``entity_id``.

A single-key entity type is named by one id (the GET path's last segment, or ``entity_ids`` in a
batch body). A composite-keyed one (``registry.core.entity_keys``) is named by a value per key field:
query parameters of the fields' names on ``GET /v1/features/{entity_type}``, or objects in a batch
body's ``entity_keys``. Every id and key value is 1-256 characters of ``A-Z a-z 0-9 _ . : @ -``;
anything else, a missing or extra key field, or the other form of key is 400 ``bad_entity_id``,
``bad_entity_key`` or ``bad_entity_ids``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from registry.core import entity_keys
from registry.core.entity_keys import MAX_KEY_CHARS
from serving.online.http_errors import ApiError, ErrorCode
from serving.online.responses import json_int


class _JsonObject(dict[str, Any]):
    """A JSON object read by ``with_repeats``: ``repeated`` names its members given more than once."""

    repeated: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _JsonObject(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        twice: dict[str, None] = {}
        for name, _ in pairs:
            if name in seen:
                twice[name] = None
            seen.add(name)
        obj.repeated = tuple(twice)
    return obj


def with_repeats(raw: bytes) -> dict[str, Any]:
    """``raw``, a body already read as a JSON object, read again so that each of its objects knows the members
    given more than once (JSON parsers keep the last): a key field repeated in a key object is refused, never
    one of its values picked. Only bodies where ``members_once`` sees a member that may be repeated pay for it."""
    try:
        body: dict[str, Any] = json.loads(raw, object_pairs_hook=_json_object, parse_int=json_int)
    except RecursionError as exc:  # nested deeper than the standard library goes (orjson read it)
        raise ApiError(ErrorCode.BAD_JSON, "request body is not JSON: nested too deeply") from exc
    return body


def members_once(raw: bytes, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (``raw`` as orjson read it, keeping the last of a repeated member) itself when no member anywhere in
    it was given twice, else ``raw`` read again by ``with_repeats``. Without an escape in ``raw`` every string of
    ``body`` is spelled as in ``raw``, and each member is one ``:`` outside strings: ``raw`` holds as many ``:``
    as ``body`` written out again exactly when no member (and so no string with it) was dropped. Costs a
    serialization (15-70 µs for 1,000 ids or keys); a body with an escape, or nested deeper than orjson writes
    (255 levels), pays the slower parse (about 2 ms for 1,000 keys)."""
    if b"\\" not in raw:
        try:
            if raw.count(b":") == orjson.dumps(body).count(b":"):
                return body
        except orjson.JSONEncodeError:
            pass
    return with_repeats(raw)


_MEMBER_CODES = {
    "entity_ids": ErrorCode.BAD_ENTITY_IDS,
    "entity_keys": ErrorCode.BAD_ENTITY_IDS,
    "entity_id": ErrorCode.BAD_ENTITY_ID,
    "entity_key": ErrorCode.BAD_ENTITY_KEY,
    "names": ErrorCode.BAD_NAMES,
    "request_data": ErrorCode.BAD_REQUEST_DATA,
}  # any other member (`feature_service`, `entity_type`, `entities`, one not taken): bad_request


def members_given_once(obj: Any, where: str) -> None:
    """400 for a member of ``obj`` (as ``members_once`` read it) given more than once, with that member's code
    (``names``: ``bad_names``, ...), as for a query parameter given twice: never one of its values picked."""
    twice = getattr(obj, "repeated", ())
    if twice:
        raise ApiError(
            _MEMBER_CODES.get(twice[0], ErrorCode.BAD_REQUEST),
            f"member(s) {list(twice)} given more than once in {where}: give each once",
            members=list(twice),
        )


def _check_once(key: dict[str, Any], where: str) -> None:
    twice = getattr(key, "repeated", ())
    if twice:
        raise ApiError(ErrorCode.BAD_ENTITY_KEY, f"key field(s) {list(twice)} given more than once in {where}")


# match() anchors the start; \Z the very end (not before a "\n")
ENTITY_ID = re.compile(rf"[A-Za-z0-9_.:@-]{{1,{MAX_KEY_CHARS}}}\Z")
_CHARS = f"1-{MAX_KEY_CHARS} characters of A-Z a-z 0-9 _ . : @ -"


def _usage(entity_type: str, fields: tuple[str, ...]) -> str:
    query = "&".join(f"{f}=..." for f in fields)
    return (
        f"entity type {entity_type!r} is keyed by {', '.join(fields)}: GET /v1/features/{entity_type}?{query}, "
        f"or `entity_keys` (objects of those fields) in a batch body"
    )


def single_id(entity_type: str, composite: tuple[str, ...], entity_id: str) -> str:
    """The id of ``GET /v1/features/{entity_type}/{entity_id}`` (a single-key entity type's route)."""
    if composite:
        raise ApiError(ErrorCode.BAD_ENTITY_KEY, _usage(entity_type, composite), key_fields=list(composite))
    if not ENTITY_ID.match(entity_id):
        raise ApiError(ErrorCode.BAD_ENTITY_ID, f"entity id must be {_CHARS}")
    return entity_id


def query_key(entity_type: str, composite: tuple[str, ...], params: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
    """``(entity_id, key)`` of ``GET /v1/features/{entity_type}?<field>=<value>&...`` (composite keys only)."""
    if not composite:
        raise ApiError(
            ErrorCode.BAD_ENTITY_KEY,
            f"entity type {entity_type!r} has a single key: GET /v1/features/{entity_type}/<entity id>",
        )
    missing = [f for f in composite if f not in params]
    if missing:
        raise ApiError(ErrorCode.BAD_ENTITY_KEY, _usage(entity_type, composite), missing=missing)
    twice = [f for f in composite if len(params[f]) > 1]
    if twice:
        raise ApiError(ErrorCode.BAD_ENTITY_KEY, f"key field(s) {twice} given more than once")
    return _encode(entity_type, composite, {f: params[f][0] for f in composite})


def body_ids(entity_type: str, composite: tuple[str, ...], body: dict[str, Any], limit: int) -> list[str]:
    """The ids of a batch body: ``entity_ids`` (single key) or ``entity_keys`` (composite), 1-``limit`` of them."""
    name = "entity_keys" if composite else "entity_ids"
    other = "entity_ids" if composite else "entity_keys"
    if other in body:
        raise ApiError(
            ErrorCode.BAD_ENTITY_KEY,
            _usage(entity_type, composite)
            if composite
            else f"entity type {entity_type!r} has a single key: list ids in `entity_ids`",
        )
    given = body.get(name)
    if not isinstance(given, list) or not 1 <= len(given) <= limit:
        raise ApiError(
            ErrorCode.BAD_ENTITY_IDS, f"`{name}` must list 1-{limit} entity {'keys' if composite else 'ids'}"
        )
    if not composite:
        bad = [i for i in given if not isinstance(i, str) or not ENTITY_ID.match(i)]
        if bad:
            raise ApiError(
                ErrorCode.BAD_ENTITY_ID, f"entity ids must be {_CHARS}", entity_ids=[str(b)[:300] for b in bad[:10]]
            )
        return given
    ids = []
    for i, key in enumerate(given):
        if not isinstance(key, dict) or set(key) != set(composite):
            raise ApiError(
                ErrorCode.BAD_ENTITY_KEY,
                f"`entity_keys[{i}]` must be an object of exactly the key fields {list(composite)}",
                key_fields=list(composite),
            )
        _check_once(key, f"`entity_keys[{i}]`")
        ids.append(_encode(entity_type, composite, key)[0])
    return ids


def part_key(entity_type: str, composite: tuple[str, ...], given: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """``(entity_id, key)`` of a ``/v1/vectors`` part's ``entity_key`` (an object of exactly the key fields)."""
    _check_once(given, "`entity_key`")
    return query_key(entity_type, composite, {k: [v] for k, v in given.items()})


def entity_key(composite: tuple[str, ...], entity_id: str) -> dict[str, str]:
    """The key fields of a composite ``entity_id``, for a response."""
    return dict(zip(composite, entity_keys.decode(entity_id, len(composite)), strict=True))


def _encode(entity_type: str, composite: tuple[str, ...], key: dict[str, Any]) -> tuple[str, dict[str, str]]:
    bad = [f for f in composite if not isinstance(key[f], str) or not ENTITY_ID.match(key[f])]
    if bad:
        raise ApiError(ErrorCode.BAD_ENTITY_KEY, f"key value(s) of {bad} must be {_CHARS}", fields=bad)
    values = {f: key[f] for f in composite}
    return entity_keys.encode([values[f] for f in composite]), values
