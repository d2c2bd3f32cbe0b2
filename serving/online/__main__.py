"""Run the feature API: ``python -m serving.online [--host H] [--port P] [--workers N]``. Builds the clients, then serves.

Configuration, besides the stores' ``FS_*`` settings (``registry.core.settings``):

Each is checked at start-up, before anything is connected (``serving.online.options``): integers are whole
numbers in ASCII digits (optional sign) within the range given, both ends included, fractions plain decimal
numbers; anything else stops the process with an error naming
the variable (exit status 1).

- ``FS_REQUEST_BUDGET_MS`` (default 100, from 1 to 60,000): every Cassandra read fails past it, and the
  request answers 503.
- ``FS_BATCH_BUDGET_MS`` (default 1000, from 1 to 60,000): a batch's budget (``POST .../batch``); an entity
  not read within it is that entity's ``store_unavailable``.
- ``FS_SPECULATIVE_DELAY_MS`` (default 0 = off, from 0 to the request budget less 1; native driver only) and
  ``FS_SPECULATIVE_EXECUTIONS`` (default 1, from 1 to 4): a read not answered after the delay is sent again
  to the next replica of its partition, up to that many extra attempts, the first answer winning (the C++
  driver's constant speculative execution policy; reads are idempotent). On one node (replication factor 1)
  there is no other replica and nothing is repeated (tested on two: ``tests/integration/test_speculative_reads.py``).
- ``FS_CACHE_TTL_MS`` (default 1000, from 0 to 3,600,000; 0 turns the cache off; an entry is read again once
  that long has passed since its read was sent, exactly that long included, and on a clock set back to before it) and ``FS_CACHE_MAX_ENTRIES``
  (default 1024, from 1 to 10,000,000; about 30 MB of 100-feature vectors at the default): the hot-entity
  vector cache of each worker process.
- ``FS_MAX_IN_FLIGHT`` (default 64, from 1 to 100,000): requests one process works on at once; past it, 503
  ``overloaded`` at once.
- ``FS_MAX_ENTITIES_IN_FLIGHT`` (default 400, from 1 to 1,000,000): entities one process's feature reads
  ask for at once, summed (a GET 1, a batch its ids, ``/v1/vectors`` its parts); a read that would go past
  it is answered 503 ``overloaded`` at once, unless nothing is in flight; while the bound is reached every
  feature read is refused before it is routed or validated (``serving.online.overload``).
- ``FS_BODY_TIMEOUT_MS`` (default 1000, from 1 to 60,000): a request body (a batch, ``/v1/vectors``, a
  definition or feature service) must arrive whole within it from the first read of it, else 408
  ``body_timeout``: a slow or stalled sender holds neither its request nor its ``FS_MAX_IN_FLIGHT`` slot longer.
- ``--port`` (``FS_API_PORT``, default 8000, from 1 to 65,535) and ``--workers`` (``FS_API_WORKERS``, default 1,
  from 1 to 64): server processes sharing the port; each builds its own clients.
- ``FS_SERVING_LOG_SAMPLE`` (default 0.01, a number from 0 to 1; 0 turns it off) and ``FS_SERVING_LOG_TOPIC``
  (default ``fs_serving_log``; a Kafka topic name: 1-249 ASCII letters, digits, ``.``, ``_`` or ``-``, not ``.``
  or ``..``): the share of requests whose served vectors are logged to Kafka
  (``serving.online.serving_log``; ``python -m sinks.serving_log`` creates the topic and lands it in Iceberg).
- ``FS_AUTH`` (default ``off``): ``on`` makes every route need ``Authorization: Bearer <token>`` (tokens, grants
  and the audit log: ``registry.access``, in the registry's database); off, every route is open, and each
  says so in a warning at start-up.
- ``FS_ONLINE_DRIVER`` (default ``native``; ``native`` or ``python``): ``native`` reads the online store through acsylla, the C++ driver's
  asyncio bindings (``sinks.cassandra.native_reader``); ``python`` through the Python driver
  (``sinks.cassandra.reader``). Both give the same answers and the same errors for one entity (for a batch,
  see the next setting).
- ``FS_ONLINE_PARTITIONS_PER_READ`` (default 25, from 1 to 100; native driver only): the entities of a batch
  read per query (one ``IN`` on the partition key); 1 reads each entity with a query of its own. The native
  driver then fails the entities of a failed query together; the Python driver reads and fails each alone.
- ``FS_GC_GEN0_THRESHOLD`` (default 20000, from 100 to 10,000,000): allocations between young-generation garbage collections. Python's
  default, 700, runs about 40 collections during one 100-entity request (its ~30,000 short-lived tuples,
  lists and dicts): 10 % of the API's CPU under a batch load; 20,000 removes most of it.
- ``FS_GIL_SWITCH_INTERVAL_US`` (default 500, from 1 to 100,000): how long the event loop may hold the GIL while the Cassandra
  driver's I/O thread waits for it (Python's default, 5 ms, shows up directly in p50 and p99 latency).

uvloop and httptools are used when installed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import importlib.util
import inspect
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from registry.access import Access
from registry.core.arguments import ArgumentParser, whole
from registry.core.errors import FeatureStoreError, StoreUnavailableError
from registry.core.settings import Settings
from registry.core.shown import error_line, shown
from registry.definition_store import DefinitionStore
from registry.feature_services import FeatureServiceStore, LiveFeatureServices
from registry.live import LiveCatalog, Refresher
from registry.quality import QualityStore
from registry.sqlite_store import RegistryStoreUnavailable
from serving.online.app import create_app
from serving.online.http_protocol import JsonErrorsHttpToolsProtocol
from serving.online.options import ApiOptions, int_setting
from serving.online.serving_log import KafkaSink, producer_config
from sinks.cassandra.native_reader import NativeOnlineReader
from sinks.cassandra.reader import OnlineReader
from sinks.factory import connect_cassandra
from sinks.names import StoreNames

if TYPE_CHECKING:
    from cassandra.cluster import Cluster
    from fastapi import FastAPI


def build(settings: Settings, env: dict[str, str], *, create_schema: bool = True) -> tuple[FastAPI, Cluster]:
    """The app and the Cassandra cluster it reads through (the caller shuts the cluster down).

    ``create_schema=False`` in each of several workers: the parent created the schema once before them.
    """
    from cassandra.query import tuple_factory

    options = ApiOptions.from_env(env)  # every setting checked before anything is connected
    sys.setswitchinterval(options.gil_switch_interval_us / 1e6)

    live = LiveCatalog(DefinitionStore(settings.definitions_db))
    services = LiveFeatureServices(FeatureServiceStore(settings.definitions_db))
    cluster, session = connect_cassandra(settings, create_schema=create_schema)
    session.row_factory = tuple_factory  # the default builds a namedtuple class per result set
    budget_s, batch_budget_s = options.budget_ms / 1000, options.batch_budget_ms / 1000
    reader: OnlineReader | NativeOnlineReader
    if options.driver == "native":
        reader = NativeOnlineReader(
            settings.cassandra_hosts,
            settings.cassandra_port,
            settings.cassandra_keyspace,
            timeout_s=budget_s,
            batch_timeout_s=batch_budget_s,
            partitions_per_read=options.partitions_per_read,
            speculative_delay_ms=options.speculative_delay_ms,
            speculative_executions=options.speculative_executions,
        )
    else:
        reader = OnlineReader(session, settings.cassandra_keyspace, timeout_s=budget_s, batch_timeout_s=batch_budget_s)
    log_sink = None
    if options.serving_log_sample > 0:
        from confluent_kafka import Producer

        log_sink = KafkaSink(Producer(producer_config(settings.kafka_bootstrap)), options.serving_log_topic)
        atexit.register(log_sink.close)
    access = Access.of(settings)
    atexit.register(access.close)  # the last second of buffered audit records
    app = create_app(
        live,
        reader,
        services=services,
        cache_ttl_ms=options.cache_ttl_ms,
        cache_max_entries=options.cache_max_entries,
        max_in_flight=options.max_in_flight,
        max_entities_in_flight=options.max_entities_in_flight,
        body_timeout_ms=options.body_timeout_ms,
        serving_log=log_sink,
        serving_log_sample=options.serving_log_sample,
        quality=QualityStore(settings.definitions_db),
        access=access,
        stores=StoreNames(settings.cassandra_keyspace, settings.iceberg_namespace),
    )
    if isinstance(reader, NativeOnlineReader):  # its session, in the serving loop before the first request
        app.router.on_startup.append(reader.connect)
        app.router.on_shutdown.append(reader.close)  # and closed there: a session being opened is waited for
    # The registry's checks and rebuilds in a thread beside the event loop: a request never rebuilds the catalog
    # (half a second at 10,000 definitions) on its way (registry.live).
    refresher = Refresher([live, services, *access.followers])
    refresher.start()
    atexit.register(refresher.close)
    app.state.refresher = refresher
    # Also at the server's shutdown, after the last request: a worker of several (``--workers``) dies of the SIGTERM
    # uvicorn raises again after its shutdown, before ``atexit`` (a single process ignores it: ``main``); it lost
    # the last second's audit records and the serving log's queued ones. Each close may run twice.
    # First (a reader's close may wait seconds for a session being opened, and a supervisor's grace is short), each
    # on its own (the server's shutdown stops at the first that raises).
    closes = [access.close, refresher.close, *([log_sink.close] if log_sink is not None else [])]
    app.router.on_shutdown[:0] = [_quietly(close) for close in closes]
    if not len(live.current()):
        print(
            f"warning: no feature definitions in {settings.definitions_db}; run `python -m registry.cli apply`",
            file=sys.stderr,
        )
    gc.freeze()  # what start-up built lives as long as the process: keep it out of every full collection
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(options.gc_gen0_threshold, gen1, gen2)
    return app, cluster


def _quietly(close: Callable[[], None]) -> Callable[[], None]:
    """``close``, a failure of which is one warning line: the closes after it still run."""

    def run() -> None:
        try:
            close()
        except Exception as exc:
            print(f"warning: at shutdown: {error_line(exc).removeprefix('error: ')}", file=sys.stderr)

    return run


async def _shut_down(app: FastAPI) -> None:
    """What the server runs at its shutdown (``on_shutdown``: the clients' closes), for an app that never served."""
    for close in app.router.on_shutdown:
        if inspect.isawaitable(done := close()):
            await done


START_FAILED = "FS_API_START_FAILED"
"""Where a worker marks that it could not start (a file the parent names; ``main`` then exits 1, not 0)."""


def worker_app() -> FastAPI:
    """uvicorn's factory for ``--workers`` > 1: each worker process builds its own clients. One that cannot for a
    reason a restart does not mend (a setting, the registry's database) marks it (``START_FAILED``) and exits with
    uvicorn's start-up failure status, which stops the server (any other exit had uvicorn start it again, forever);
    one whose online store is unavailable (an outage) exits 1, and uvicorn starts it again."""
    from uvicorn.config import STARTUP_FAILURE

    try:
        app, _ = build(Settings.from_env(), dict(os.environ), create_schema=False)  # clusters shut down at exit
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        if isinstance(exc, StoreUnavailableError) and not isinstance(exc, RegistryStoreUnavailable):
            sys.exit(1)
        with contextlib.suppress(OSError, KeyError):
            Path(os.environ[START_FAILED]).touch()
        sys.exit(STARTUP_FAILURE)
    return app


def _server_options() -> dict[str, Any]:
    return {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "auto",
        # httptools (a declared dependency), its parser's 400s in the API's error shape
        "http": JsonErrorsHttpToolsProtocol,
        "log_level": "warning",
        "access_log": False,
    }


def _check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once and let go, before any client is built: a port in use, or a host that is no address
    of this machine or no host name at all, is one error line naming it, exit 1 (uvicorn's own failure is a log line
    and exit status 3, after the stores were connected)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            probe.bind(address)
    except (OSError, UnicodeError, TypeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FeatureStoreError(f"cannot serve on {shown(host, quoted=True)}:{port}: {reason}") from None


def main() -> int:
    try:  # every setting, before a worker is started or a store connected
        port = int_setting(os.environ, "FS_API_PORT", 8000, 1, 65_535)
        workers = int_setting(os.environ, "FS_API_WORKERS", 1, 1, 64)
        ApiOptions.from_env(os.environ)
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    parser = ArgumentParser(prog="python -m serving.online")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=whole(1, 65_535), default=port)
    parser.add_argument("--workers", type=whole(1, 64), default=workers)
    args = parser.parse_args()
    try:
        _check_listen(args.host, args.port)
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    if args.workers > 1:
        # Built once here as each worker builds it, then let go: a setting or store that fails is one error line,
        # exit 1, before any worker starts (a worker failing at its start was started again forever), and the schema
        # is created once, so the workers starting together do not race to create it.
        try:
            app, cluster = build(Settings.from_env(), dict(os.environ))
        except FeatureStoreError as exc:
            print(error_line(exc), file=sys.stderr)
            return 1
        try:
            asyncio.run(_shut_down(app))  # its clients' closes (each worker has its own)
        finally:
            cluster.shutdown()
        del app
        with tempfile.TemporaryDirectory(prefix="fs-api-") as scratch:
            failed = Path(scratch) / "start-failed"
            os.environ[START_FAILED] = str(failed)  # the workers' environment (uvicorn spawns them)
            uvicorn.run(
                "serving.online.__main__:worker_app",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                **_server_options(),
            )
            if failed.exists():  # uvicorn stopped for a worker that could not start: its line is above
                return 1
        return 0
    try:
        app, cluster = build(Settings.from_env(), dict(os.environ))
    except FeatureStoreError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: under Python's default handler the
    # process then died before its ``atexit`` clean-up ran (the last second of buffered audit records, the serving
    # log's queued records), where a Ctrl-C ended cleanly. A stop by SIGTERM (``make down``, a supervisor) is a
    # normal stop: the repeated signal is ignored, and the process ends as after Ctrl-C, exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(app, host=args.host, port=args.port, **_server_options())
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
