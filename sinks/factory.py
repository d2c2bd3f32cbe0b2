"""Build the store clients from Settings. Called by entry points only; everything else gets clients passed in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from registry.core.errors import SettingsError, StoreUnavailableError
from registry.core.settings import Settings
from registry.core.shown import shown

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session
    from pyiceberg.catalog import Catalog

_CATALOG_INIT_ATTEMPTS = 5
RECONNECT_DELAY_S = 0.5


def connect_cassandra(
    settings: Settings, *, connect_timeout_s: float = 5.0, create_schema: bool = True
) -> tuple[Cluster, Session]:
    """A connected session with the online schema in place; StoreUnavailableError if Cassandra is down.

    ``create_schema=False`` is for processes started many at once (the job's writers, the API's
    workers): one process creates the schema before them, so no two race to create one table, which
    a cluster of several nodes can answer with two table ids and a schema disagreement.
    """
    from cassandra import OperationTimedOut, UnresolvableContactPoints
    from cassandra.cluster import Cluster, NoHostAvailable
    from cassandra.policies import ConstantReconnectionPolicy, DCAwareRoundRobinPolicy, TokenAwarePolicy

    from sinks.cassandra.writer import ensure_schema

    hosts = ",".join(settings.cassandra_hosts)
    try:
        cluster = Cluster(
            list(settings.cassandra_hosts),
            port=settings.cassandra_port,
            connect_timeout=connect_timeout_s,
            control_connection_timeout=connect_timeout_s,
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            # A node that went away is tried again every half second for as long as it is gone, so reads
            # recover within a second of its return whatever the outage length (the driver's default backs
            # off exponentially to 10 minutes: after a 12 s outage it waited 15 s).
            reconnection_policy=ConstantReconnectionPolicy(delay=RECONNECT_DELAY_S, max_attempts=None),
            protocol_version=5,
        )
    except UnresolvableContactPoints as exc:  # raised before any connection: no contact point resolves
        raise StoreUnavailableError(
            f"Cassandra at {hosts}:{settings.cassandra_port} unavailable: no contact point resolves to an address"
        ) from exc
    try:
        session = cluster.connect()
        if create_schema:
            ensure_schema(session, settings.cassandra_keyspace)
        session.set_keyspace(settings.cassandra_keyspace)
    except (NoHostAvailable, OperationTimedOut, OSError) as exc:  # OperationTimedOut: a DDL left unanswered
        cluster.shutdown()
        raise StoreUnavailableError(f"Cassandra at {hosts}:{settings.cassandra_port} unavailable: {exc}") from exc
    except BaseException:  # a keyspace that does not exist (create_schema=False), a refused DDL: no threads left
        cluster.shutdown()
        raise
    return cluster, session


class MissingKeyspaceError(StoreUnavailableError):
    """The keyspace a command works on (``FS_CASSANDRA_KEYSPACE``) does not exist: a store missing, as a missing
    offline table is."""


def connect_existing_keyspace(settings: Settings, *, nothing_done: str) -> tuple[Cluster, Session]:
    """A session on the keyspace ``FS_CASSANDRA_KEYSPACE`` names, with today's tables in it, for a command that works
    on data already there (a migration, an erasure): StoreUnavailableError when Cassandra is down,
    MissingKeyspaceError when it has no such keyspace, which is then not created: a name mistyped must not pass as
    a store with nothing in it (an erasure would report success while the real keyspace keeps the data).
    ``nothing_done``: what the error adds, e.g. "nothing migrated, nothing created"."""
    from cassandra import InvalidRequest

    from sinks.cassandra.writer import ensure_schema

    keyspace = settings.cassandra_keyspace
    try:
        cluster, session = connect_cassandra(settings, create_schema=False)
    except InvalidRequest as exc:  # using a keyspace that does not exist
        raise MissingKeyspaceError(
            f"no keyspace {keyspace!r} (FS_CASSANDRA_KEYSPACE) in Cassandra at "
            f"{','.join(settings.cassandra_hosts)}:{settings.cassandra_port}: {nothing_done} ({exc})"
        ) from None
    try:
        ensure_schema(session, keyspace)  # today's tables, in a keyspace that has only older ones
    except BaseException:
        cluster.shutdown()
        raise
    return cluster, session


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line: SQLAlchemy's adds the statement and a "(Background on this
    error at: ...)" link on lines of their own."""
    return " ".join(str(exc).split("\n(Background on this error at:")[0].split())


# What SQLite answers for a catalog file the setting gets wrong (a folder, not a database, read-only), as
# opposed to a transient state such as "database is locked".
_SQLITE_UNUSABLE = ("unable to open database file", "file is not a database", "readonly database")


def _make_folder(name: str, value: str, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file is in its place" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        raise SettingsError(f"{name} {value!r}: cannot create the folder {shown(folder)}: {reason}") from None


def connect_iceberg(settings: Settings) -> Catalog:
    """The SQL catalog holding the offline tables (SQLite by default, PostgreSQL in production).

    A catalog URI or warehouse that cannot be used (a folder that cannot be created, a SQLite path that is
    a folder or not a database, a database whose catalog tables are another program's) is a SettingsError naming
    FS_ICEBERG_CATALOG_URI or FS_ICEBERG_WAREHOUSE.
    """
    from urllib.parse import urlparse

    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

    import sinks.iceberg  # noqa: F401  # its import fixes pyiceberg's parallel planning (sinks.iceberg.planning_race)

    uri = settings.iceberg_catalog_uri
    sqlite = uri.startswith("sqlite:///")
    if sqlite:
        database = Path(make_url(uri).database or "")  # the path as SQLAlchemy opens it: %xx decoded, ?... not in it
        _make_folder("FS_ICEBERG_CATALOG_URI", uri, database.parent)
        if database.is_dir():
            raise SettingsError(f"FS_ICEBERG_CATALOG_URI {uri!r} names a folder, not a database file")
    warehouse = urlparse(settings.iceberg_warehouse)
    if warehouse.scheme == "file":  # its path as written: pyiceberg does not unescape it
        _make_folder("FS_ICEBERG_WAREHOUSE", settings.iceberg_warehouse, Path(warehouse.path))
    elif not warehouse.scheme:  # a plain path, "#" and "?" in it included (pyiceberg reads it as a local one)
        _make_folder("FS_ICEBERG_WAREHOUSE", settings.iceberg_warehouse, Path(settings.iceberg_warehouse))
    for attempt in range(_CATALOG_INIT_ATTEMPTS):
        try:
            catalog = SqlCatalog("feature_store", uri=uri, warehouse=settings.iceberg_warehouse)
            catalog.list_namespaces()  # tables of that name that are not a catalog's: refused here, not at first use
            return catalog
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:  # not a URL, unknown dialect, no driver
            raise SettingsError(
                f"FS_ICEBERG_CATALOG_URI {uri!r} is not a database SQLAlchemy can open: {_one_line(exc)}"
            ) from None
        except DatabaseError as exc:  # OperationalError included
            # Writers opening a new catalog together race to create its tables (check, then CREATE);
            # the losers see "already exists" and find the tables there on the next attempt.
            if "already exists" in str(exc) and attempt < _CATALOG_INIT_ATTEMPTS - 1:
                time.sleep(0.05 * (attempt + 1))
                continue
            reason = _one_line(exc.orig if exc.orig is not None else exc)
            if "no such column" in reason:  # pyiceberg made the tables it lacked; the ones there are another's
                raise SettingsError(
                    f"FS_ICEBERG_CATALOG_URI {uri!r} holds tables that are not an Iceberg SQL catalog's: {reason}"
                ) from None
            if sqlite and any(unusable in reason for unusable in _SQLITE_UNUSABLE):
                raise SettingsError(
                    f"FS_ICEBERG_CATALOG_URI {uri!r} is not a SQLite database this process can open and write: {reason}"
                ) from None
            raise StoreUnavailableError(f"Iceberg catalog {uri}: {reason}") from exc
    raise AssertionError("unreachable")
