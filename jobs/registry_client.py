"""The schema-registry client of the job side's Python processes (producer, archive reader; the stream job's
JVM decoder, ``jobs/java/decode``, has the same bounds).

Bounded everywhere: one attempt waits at most ``timeout`` seconds, and a failed attempt is retried at most
twice with short backoff, so a registry that hangs becomes an error within about 3.6 s (named by the
caller as ``StoreUnavailableError``), one that refuses connections within a few hundred ms, and a registry
that comes back is used again within half a second. Confluent's defaults (no timeout, retries backing off
to 20 s) would turn a paused registry into a stalled job.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from registry.core.errors import StoreUnavailableError

# Confluent's client imports Authlib, whose httpx module warns on import that it is deprecated (and switches
# its warnings to "always"): nothing for a user of ours to act on, and it would come before a command's one
# `error:` line. Imported here once, with that warning kept out of stderr; every user imports it from here.
with warnings.catch_warnings(record=True):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError

__all__ = [
    "AvroSerializer",
    "SchemaRegistryClient",
    "SchemaRegistryError",
    "registry_client",
    "require_registry",
    "schema_lookup",
]

CLIENT_CONFIG: dict[str, Any] = {
    "timeout": 1,  # seconds per attempt
    "max.retries": 2,
    "retries.wait.ms": 100,
    "retries.max.wait.ms": 500,
}


def auth_config(token: str | None) -> dict[str, Any]:
    """Confluent client settings that send ``token`` (``registry.access``) as Basic credentials, if given."""
    if not token:
        return {}
    return {"basic.auth.user.info": f"featurestore:{token}"}


def registry_client(url: str, token: str | None = None) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, **CLIENT_CONFIG, **auth_config(token)})


def require_registry(url: str, token: str | None = None) -> None:
    """Fail fast, naming the schema registry, when it does not answer a request (refused: within
    milliseconds; hung: within the client's bounds, about 3.6 s). An answer of any status counts: what
    it means (a missing subject, a refused token) is the caller's to meet."""
    import httpx

    try:
        registry_client(url, token).get_subjects()
    except SchemaRegistryError:
        return
    except httpx.TransportError as exc:
        raise StoreUnavailableError(
            f"schema registry at {url} unavailable: {type(exc).__name__}: {exc or 'no answer'}"
        ) from exc


SCHEMA_NOT_FOUND = 40403  # Confluent's error code of an unknown schema id


def schema_lookup(url: str, token: str | None = None) -> Callable[[int], str | None]:
    """The decoder's schema lookup (``udfs.decode.SchemaLookup``): the writer schema text of a registry
    id, None if the registry has no such id; StoreUnavailableError if the registry cannot answer (a
    registry that is down is not a bad record)."""
    client = registry_client(url, token)

    def lookup(schema_id: int) -> str | None:
        try:
            return str(client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 and exc.error_code == SCHEMA_NOT_FOUND:
                return None  # the registry has no such schema; any other 404 is a wrong URL or proxy: a failure
            raise StoreUnavailableError(f"schema registry: {exc}") from exc
        except Exception as exc:  # connection refused, timeout
            raise StoreUnavailableError(f"schema registry unreachable: {exc}") from exc

    return lookup
