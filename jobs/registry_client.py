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

import httpx

from registry.core.deadline import bound_by_deadline, deadline
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


def _bound_attempts(session: httpx.Client, attempt_s: float) -> None:
    """Each request of ``session`` (one attempt of Confluent's client) gets its whole answer, body included,
    within ``attempt_s``."""
    bound_by_deadline(session)
    request = session.request

    def bounded(*args: Any, **kwargs: Any) -> httpx.Response:
        with deadline(attempt_s):
            return request(*args, **kwargs)

    session.request = bounded  # type: ignore[method-assign]


def registry_client(url: str, token: str | None = None) -> SchemaRegistryClient:
    """Confluent's client within ``CLIENT_CONFIG``'s bounds: an attempt's whole answer within its ``timeout``."""
    client = SchemaRegistryClient({"url": url, **CLIENT_CONFIG, **auth_config(token)})
    _bound_attempts(client._rest_client.session, CLIENT_CONFIG["timeout"])
    return client


def require_registry(url: str, token: str | None = None) -> None:
    """Fail fast, naming the schema registry, when it does not answer a request (refused: within
    milliseconds; hung: within the client's bounds, about 3.6 s). An answer of any status counts: what
    it means (a missing subject, a refused token) is the caller's to meet, as long as it is a registry's: an error
    answer without Confluent's numeric ``error_code`` (another web server's 404 page or JSON) is named as no
    registry, before the caller creates anything."""
    client = registry_client(url, token)  # a URL it refuses is the caller's ValueError, not the registry's answer
    try:
        client.get_subjects()
    except SchemaRegistryError as exc:
        if isinstance(exc.error_code, int) and not isinstance(exc.error_code, bool) and exc.error_code > 0:
            return
        raise StoreUnavailableError(
            f"schema registry at {url} unavailable: its answer is not a schema registry's (HTTP "
            f"{exc.http_status_code} without a registry error_code: {str(exc.error_message)[:200]})"
        ) from exc
    except httpx.TransportError as exc:
        raise StoreUnavailableError(
            f"schema registry at {url} unavailable: {type(exc).__name__}: {exc or 'no answer'}"
        ) from exc
    except ValueError as exc:  # a 2xx answer that is not JSON: another server on that address, not a registry
        raise StoreUnavailableError(
            f"schema registry at {url} unavailable: its answer is not a schema registry's ({type(exc).__name__}: {exc})"
        ) from exc


SCHEMA_NOT_FOUND = 40403  # Confluent's error code of an unknown schema id


def schema_lookup(url: str, token: str | None = None) -> Callable[[int], str | None]:
    """The decoder's schema lookup (``udfs.decode.SchemaLookup``): the writer schema text of a registry
    id, None if the registry has no such id; StoreUnavailableError if the registry cannot answer (a
    registry that is down is not a bad record)."""
    client = registry_client(url, token)

    def lookup(schema_id: int) -> str | None:
        try:
            text = client.get_schema(schema_id).schema_str
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 and exc.error_code == SCHEMA_NOT_FOUND:
                return None  # the registry has no such schema; any other 404 is a wrong URL or proxy: a failure
            raise StoreUnavailableError(f"schema registry: {exc}") from exc
        except Exception as exc:  # connection refused, timeout
            raise StoreUnavailableError(f"schema registry unreachable: {exc}") from exc
        if not isinstance(text, str):  # not a registry's answer (the JVM decoder fails the same way): not a bad record
            raise StoreUnavailableError(
                f"schema registry: the answer for schema id {schema_id} holds no schema text ({type(text).__name__})"
            )
        return text

    return lookup
