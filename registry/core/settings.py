"""Connection settings of the feature store's clients: one frozen model, read at entry points only."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from registry.core.errors import SettingsError
from registry.core.hosts import is_host_name
from registry.core.places import DEFAULT_STATE, left_behind
from registry.core.shown import error_line, shown


def _switch(name: str, raw: str) -> bool:
    value = raw.lower()  # nothing around it, as every other setting: " on" is refused, not read as on
    if value not in ("on", "off"):  # set but empty is no default either: only an unset variable is "off"
        raise SettingsError(f"{name} must be 'on' or 'off', not {raw!r}")
    return value == "on"


# Whole numbers as settings spell them: ASCII digits with an optional sign, nothing around them (as the
# commands' ``registry.core.arguments.whole``): ``1_000``, `` 64 ``, ``7.0`` and non-ASCII digits are refused.
WHOLE = re.compile(r"[+-]?[0-9]+")


def whole_number(raw: str) -> int | None:
    """The value of a text ``WHOLE`` matches; None past int()'s 4,300 digits (leading zeros not counted), which is
    past every bound a setting or an option has, so callers refuse it as out of range instead of a ValueError."""
    digits = raw.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 4300:
        return None
    return -int(digits) if raw.startswith("-") else int(digits)


# Decimal numbers likewise: ASCII digits, one optional point, an optional exponent (``0.5``, ``.5``, ``1e3``);
# no underscores, spaces or non-ASCII digits, and no ``nan`` or ``inf``.
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
# One host name or IPv4 address: something ``host:port`` and ``http://host:port`` can be built from.
# Control characters are no part of a host name either.
# Kafka's security protocols are the only prefixes librdkafka takes ("http://h:1" passed, then failed every client)
_SERVER = re.compile(
    r"(?i:(?:PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)://)?(?:\[([0-9A-Fa-f:.]+)\]|([^\s/?#@\[\]:,\x00-\x1f\x7f-\x9f]+)):([0-9]{1,5})"
)
# A Cassandra keyspace as the store's CQL spells it, unquoted: a lowercase ASCII letter, then lowercase letters,
# digits or underscores, 48 characters at most (Cassandra's limit). Unquoted CQL names fold to lowercase, so
# an uppercase one would name another keyspace in the drivers' metadata than in the statements.
_KEYSPACE = re.compile(r"[a-z][a-z0-9_]{0,47}")
# CQL's reserved words (Cassandra 5.0's org/apache/cassandra/cql3/reserved_keywords.txt), lowercase: the store's CQL
# names the keyspace unquoted, and "CREATE KEYSPACE IF NOT EXISTS table" is a syntax error.
_CQL_RESERVED_WORDS = (
    "add allow alter and apply asc authorize batch begin by columnfamily create delete desc describe drop "
    "entries execute from full grant if in index infinity insert into is keyspace limit materialized "
    "modify nan norecursive not null of on or order primary rename revoke schema select set table to "
    "token truncate unlogged update use using view where with"
)
CQL_RESERVED = frozenset(_CQL_RESERVED_WORDS.split())
# An Iceberg namespace: levels separated by dots, each not empty and without white space.
# Nor "#" or "?" (the warehouse's file locations are URLs: the rest was read as a fragment or a query, and every table
# of the namespace written to one file), nor control characters; the whole namespace, dots included, is one folder
# name in the warehouse ("<level>.<level>.db", as pyiceberg makes it): 252 bytes, the 255 a file system takes as a rule
# less ".db" (levels of 250 bytes each were accepted, and two of 126 failed the first table's creation: errno 36).
_NAMESPACE = re.compile(r"[^\s.#?\x00-\x1f\x7f\ud800-\udfff]+(\.[^\s.#?\x00-\x1f\x7f\ud800-\udfff]+)*")  # not UTF-8
_NAMESPACE_BYTES = 252


def int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer setting in ``[low, high]`` (both included); SettingsError naming it otherwise."""
    raw = env.get(name, str(default))
    if WHOLE.fullmatch(raw) is None:
        raise SettingsError(f"{name} must be an integer, not {raw!r}")
    value = whole_number(raw)
    if value is None or not low <= value <= high:
        given = raw if len(raw) <= 24 else f"{raw[:12]}...({len(raw)} characters)"
        raise SettingsError(f"{name} must be from {low} to {high}, not {given if value is None else value}")
    return value


def _port(name: str, raw: str) -> int:
    if WHOLE.fullmatch(raw) is None:
        raise SettingsError(f"{name} must be a port number, not {raw!r}")
    port = whole_number(raw)
    if port is None:
        raise SettingsError(f"{name} must be from 1 to 65535, not {raw[:20]}...")
    if not 1 <= port <= 65_535:
        raise SettingsError(f"{name} must be from 1 to 65535, not {port}")
    return port


def check_host(name: str, raw: str) -> str:
    if not is_host_name(raw):  # ASCII labels only: nothing NFKC could turn into a URL delimiter, no white space
        raise SettingsError(f"{name} must be one host name or IPv4 address, not {raw!r}")
    return raw


def _servers(name: str, raw: str) -> str:
    """Kafka's bootstrap list: ``host:port`` servers separated by commas (spaces around each allowed), a host
    name, an IPv4 address or a bracketed IPv6 address, an optional ``<protocol>://`` prefix (one of Kafka's
    security protocols: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``, in any case), a port 1-65535."""
    for server in raw.split(","):
        found = _SERVER.fullmatch(server.strip())
        if (
            found is None
            or not 1 <= int(found.group(3)) <= 65_535
            or (found.group(1) is not None and not _ipv6(found.group(1)))  # "[1:2]" is no IPv6 address
            or (found.group(2) is not None and not is_host_name(found.group(2)))
        ):
            raise SettingsError(f"{name} must be host:port servers separated by commas, not {raw!r}")
    return raw


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingsError(f"{name} must not be empty")
    return raw


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    """Host names, IPv4 or IPv6 addresses separated by commas (spaces around each allowed; no ports)."""
    hosts = tuple(h.strip() for h in raw.split(","))
    if not all(is_host_name(h) or _ipv6(h) for h in hosts):
        raise SettingsError(f"{name} must be host names separated by commas, not {raw!r}")
    return hosts


def _ipv6(raw: str) -> bool:
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return False
    return True


def http_url(name: str, raw: str) -> str:
    """``raw`` if it is an ``http://`` or ``https://`` URL (the scheme in lower case, as the clients take it) with a
    host, no white space or control character anywhere, and a port from 1 to 65535 if it names one."""
    shown = f"{raw[:300]!r}" + (f" ({len(raw)} characters)" if len(raw) > 300 else "")
    refused = SettingsError(f"{name} must be an http:// or https:// URL with a host, not {shown}")
    if any(c <= " " or "\x7f" <= c <= "\x9f" for c in raw) or raw.partition("://")[0] not in ("http", "https"):
        raise refused
    try:
        url = urlsplit(raw)
    except ValueError:  # an unclosed "[" of an IPv6 host, characters that NFKC-normalise into delimiters
        raise refused from None
    if not url.hostname:
        raise refused
    try:
        port = url.port  # a port that is not a number raises here, not at the first request
    except ValueError:
        raise SettingsError(f"{name} has a malformed port: {shown}") from None
    if port == 0:
        raise SettingsError(f"{name} has a port of 0: {shown} (ports are 1-65535)")
    return raw


def _path(name: str, raw: str | Path, what: str = "a file path") -> Path:
    if not str(raw).strip():
        raise SettingsError(f"{name} must be {what}, not empty")
    return Path(raw)


def _folder(name: str, raw: str | Path) -> Path:
    return _path(name, raw, "a folder path")


def _state_dir(raw: str | Path) -> Path:
    folder = _folder("FS_STATE_DIR", raw)
    try:
        return folder.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise SettingsError(f"FS_STATE_DIR={shown(folder)} is not a folder we can use: {exc}") from None


def state_folder() -> Path:
    """``FS_STATE_DIR`` made absolute (default: the repository's ``.state``): the data of the local stack and of
    the commands that keep some (``jobs.follow``'s plan and checkpoints); SettingsError for one that is unusable."""
    if "FS_STATE_DIR" not in os.environ and (reason := left_behind()) is not None:
        raise SettingsError(reason)
    return _state_dir(os.environ.get("FS_STATE_DIR", DEFAULT_STATE))


def _keyspace(name: str, raw: str) -> str:
    if _KEYSPACE.fullmatch(raw) is None:
        raise SettingsError(
            f"{name} must be a lowercase letter then lowercase letters, digits or underscores"
            f" (48 characters at most), not {raw!r}"
        )
    if raw in CQL_RESERVED:
        raise SettingsError(
            f"{name} must be a name other than CQL's reserved words (the store names it unquoted), not {raw!r}"
        )
    return raw


def _namespace(name: str, raw: str) -> str:
    if _NAMESPACE.fullmatch(raw) is None or len(raw.encode()) > _NAMESPACE_BYTES:
        raise SettingsError(
            f"{name} must be namespace levels separated by dots, none empty or with spaces, '#', '?' or control"
            f" characters, at most {_NAMESPACE_BYTES} bytes of UTF-8 in all, not {raw[:300]!r}"
        )
    return raw


def sqlite_uri(path: Path) -> str:
    """The SQLAlchemy URI of the SQLite file at ``path``: SQLAlchemy ends the path at ``?`` (the query) and decodes
    ``%xx`` in it, so those two are escaped; bare, a state folder named ``st?x`` put its catalog in ``st`` beside it,
    one that two state folders ``st?x`` and ``st?y`` shared."""
    return "sqlite:///" + _uri_path(str(path))


def _uri_path(path: str) -> str:
    return path.replace("%", "%25").replace("?", "%3F")


class Settings(BaseModel):
    """Where the services are. Built once by an entry point (``from_env``) and passed in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka_bootstrap: str = "127.0.0.1:9092"
    schema_registry_url: str = "http://127.0.0.1:8081"
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_keyspace: str = "feature_store"
    iceberg_catalog_uri: str = sqlite_uri(DEFAULT_STATE / "iceberg" / "catalog.db")
    iceberg_warehouse: str = str(DEFAULT_STATE / "iceberg" / "warehouse")
    iceberg_namespace: str = "feature_store"
    definitions_dir: Path = Path(__file__).resolve().parents[1] / "features"
    definitions_db: Path = DEFAULT_STATE / "registry" / "definitions.db"
    flink_jars_dir: Path = Path.home() / ".cache" / "featurestore" / "flink" / "lib"
    auth: bool = False  # FS_AUTH=on: services check tokens, grants and ownership (registry.access)
    token: str | None = None  # FS_TOKEN: this process's API token (registry.access), for services run with FS_AUTH=on

    @classmethod
    def from_env(cls) -> Settings:
        """Read FS_* variables, falling back to the local stack's defaults; relative paths made absolute from this
        process's folder (``absolute``): a table created under a relative warehouse recorded relative locations in
        the catalog, which every process started elsewhere (a backfill's job, a service) read as other files."""
        env = os.environ
        # FS_HOST: where the local stack (python -m infra) runs its services, and so where the clients
        # look for them unless FS_KAFKA_BOOTSTRAP, FS_SCHEMA_REGISTRY_URL or FS_CASSANDRA_HOSTS say otherwise.
        host = check_host("FS_HOST", env.get("FS_HOST", "127.0.0.1"))
        kafka_port = _port("FS_KAFKA_PORT", env.get("FS_KAFKA_PORT", "9092"))
        registry_port = _port("FS_REGISTRY_PORT", env.get("FS_REGISTRY_PORT", "8081"))
        state = state_folder()
        cache = _folder("FS_CACHE_DIR", env.get("FS_CACHE_DIR", Path.home() / ".cache" / "featurestore"))
        # A variable that is set is checked, even when empty: only an unset one takes the default.
        settings = cls(
            kafka_bootstrap=_servers("FS_KAFKA_BOOTSTRAP", env["FS_KAFKA_BOOTSTRAP"])
            if "FS_KAFKA_BOOTSTRAP" in env
            else f"{host}:{kafka_port}",
            schema_registry_url=http_url("FS_SCHEMA_REGISTRY_URL", env["FS_SCHEMA_REGISTRY_URL"])
            if "FS_SCHEMA_REGISTRY_URL" in env
            else f"http://{host}:{registry_port}",
            cassandra_hosts=_hosts("FS_CASSANDRA_HOSTS", env.get("FS_CASSANDRA_HOSTS", host)),
            cassandra_port=_port("FS_CASSANDRA_PORT", env.get("FS_CASSANDRA_PORT", "9042")),
            cassandra_keyspace=_keyspace("FS_CASSANDRA_KEYSPACE", env.get("FS_CASSANDRA_KEYSPACE", "feature_store")),
            iceberg_catalog_uri=_text(
                "FS_ICEBERG_CATALOG_URI",
                env.get("FS_ICEBERG_CATALOG_URI", sqlite_uri(state / "iceberg" / "catalog.db")),
            ),
            iceberg_warehouse=_text(
                "FS_ICEBERG_WAREHOUSE", env.get("FS_ICEBERG_WAREHOUSE", str(state / "iceberg" / "warehouse"))
            ),
            iceberg_namespace=_namespace("FS_ICEBERG_NAMESPACE", env.get("FS_ICEBERG_NAMESPACE", "feature_store")),
            definitions_dir=_folder(
                "FS_DEFINITIONS_DIR", env.get("FS_DEFINITIONS_DIR", Path(__file__).resolve().parents[1] / "features")
            ),
            definitions_db=_path(
                "FS_DEFINITIONS_DB", env.get("FS_DEFINITIONS_DB", state / "registry" / "definitions.db")
            ),
            flink_jars_dir=_folder("FS_FLINK_JARS_DIR", env.get("FS_FLINK_JARS_DIR", cache / "flink" / "lib")),
            auth=_switch("FS_AUTH", env.get("FS_AUTH", "off")),
            token=env.get("FS_TOKEN") or None,
        )
        try:
            return absolute(settings)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise SettingsError(f"a path setting cannot be made absolute: {exc}") from None

    def to_env(self) -> dict[str, str]:
        """The FS_* variables that make ``from_env`` in a child process (the stream job) return these settings."""
        return {
            "FS_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "FS_SCHEMA_REGISTRY_URL": self.schema_registry_url,
            "FS_CASSANDRA_HOSTS": ",".join(self.cassandra_hosts),
            "FS_CASSANDRA_PORT": str(self.cassandra_port),
            "FS_CASSANDRA_KEYSPACE": self.cassandra_keyspace,
            "FS_ICEBERG_CATALOG_URI": self.iceberg_catalog_uri,
            "FS_ICEBERG_WAREHOUSE": self.iceberg_warehouse,
            "FS_ICEBERG_NAMESPACE": self.iceberg_namespace,
            "FS_DEFINITIONS_DIR": str(self.definitions_dir),
            "FS_DEFINITIONS_DB": str(self.definitions_db),
            "FS_FLINK_JARS_DIR": str(self.flink_jars_dir),
            "FS_AUTH": "on" if self.auth else "off",
            **({"FS_TOKEN": self.token} if self.token else {}),
        }


def port_for_command(name: str, default: int) -> int:
    """A port a command reads beside ``Settings`` (the schema registry's ``FS_REGISTRY_PORT``, its
    ``--port`` default): a whole number from 1 to 65535 as every port setting, ``default`` when unset; a
    malformed one ends the command as ``settings_for_command`` does."""
    try:
        return _port(name, os.environ.get(name, str(default)))
    except SettingsError as exc:
        raise SystemExit(error_line(exc)) from None


def settings_for_command() -> Settings:
    """``Settings.from_env()`` for a command's ``main``: a malformed setting ends the command with one line
    naming it (``error: ...`` on stderr, exit status 1) instead of a traceback."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(error_line(exc)) from None


def absolute(settings: Settings) -> Settings:
    """``settings`` with every relative path made absolute from this process's directory: for a child run in
    another folder (the stream job, a service ``infra`` starts in its own folder), which must find the caller's
    definitions, catalog, warehouse and jars, not others of the same name."""
    uri = settings.iceberg_catalog_uri
    database = uri.removeprefix("sqlite:///")
    # sqlite:///x.db is relative (not an in-memory database, nor SQLite's own "file:" URI form)
    if uri.startswith("sqlite:///") and not database.startswith(("/", ":memory:", "file:")) and database:
        # as written (escaped already) from this process's folder, whose own path is escaped here
        uri = "sqlite:///" + os.path.normpath(os.path.join(_uri_path(os.getcwd()), database))
    warehouse = settings.iceberg_warehouse
    if "://" not in warehouse and not warehouse.startswith("file:"):  # a bare path
        # a plain path, not ``as_uri()``: pyiceberg does not unescape a file URI, so "a b" became a folder "a%20b"
        warehouse = str(_absolute(warehouse))
    return settings.model_copy(
        update={
            "iceberg_catalog_uri": uri,
            "iceberg_warehouse": warehouse,
            "definitions_db": _absolute(settings.definitions_db),
            "definitions_dir": _absolute(settings.definitions_dir),
            "flink_jars_dir": _absolute(settings.flink_jars_dir),
        }
    )


def _absolute(path: str | Path) -> Path:
    """``path`` from this process's folder, symbolic links kept (a store notices a link pointed elsewhere)."""
    return Path(os.path.abspath(path))
