"""What the bench commands share at their entry: argparse types for their options, and the check that the
running stack is up before a bench makes anything.

A bad option is a usage error (argparse: the option named, exit 2) before anything is made; a stack that is
down is one ``error: ...`` line (exit 1) within seconds, before any keyspace, topic or folder exists.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from registry.core.arguments import whole
from registry.core.settings import DECIMAL

CONNECT_TIMEOUT_S = 3.0


class BenchError(RuntimeError):
    """A bench run that cannot go on (its job failed or was too slow, its producer stopped): ``run_main`` prints
    ``detail`` (a log's tail) and then the message as one ``error:`` line, exit status 1, not a traceback."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def positive(raw: str) -> float:
    """A number above 0 (seconds, rates): ASCII decimal, not NaN, not infinite."""
    try:
        value = float(raw) if DECIMAL.fullmatch(raw) is not None else math.nan  # ASCII: not '١' nor '１'
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {raw!r}")
    return value


def positive_up_to(high: float) -> Callable[[str], float]:
    """A number above 0 and at most ``high``."""

    def parse(raw: str) -> float:
        try:
            value = positive(raw)
        except argparse.ArgumentTypeError:
            value = math.nan
        if not value <= high:
            raise argparse.ArgumentTypeError(f"must be a number above 0 and at most {high:g}, not {raw!r}")
        return value

    return parse


def whole_list(low: int, *, empty: bool = False) -> Callable[[str], list[int]]:
    """Comma-separated whole numbers of ``low`` or more; ``empty``: '' is the empty list (it skips a part)."""
    one = whole(low)

    def parse(raw: str) -> list[int]:
        if not raw.strip():
            if empty:
                return []
            raise argparse.ArgumentTypeError(f"must be whole numbers of {low} or more separated by commas, not {raw!r}")
        try:
            return [one(part.strip()) for part in raw.split(",")]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be whole numbers of {low} or more separated by commas, not {raw!r}"
            ) from None

    return parse


def duration_text(*, zero: bool) -> Callable[[str], str]:
    """A duration as definitions write one (``1m``, ``2s``), checked, kept as its text; ``zero``: ``0s`` allowed."""
    from registry.core.durations import parse_duration

    def parse(raw: str) -> str:
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not zero and value <= timedelta(0):
            raise argparse.ArgumentTypeError(f"must be a duration above 0, not {raw!r}")
        return raw

    return parse


def key_value(raw: str) -> str:
    """``KEY=VALUE``, the key not empty."""
    key, sep, _ = raw.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, not {raw!r}")
    return raw


def _tcp(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def stack_problem(settings: Any, *, cassandra: bool = True, kafka: bool = False, registry: bool = False) -> str | None:
    """What of the running stack (``make up``) a bench needs is not there: one line, or None. Each service gets a
    few seconds (a connection refused is at once)."""
    from registry.core.errors import FeatureStoreError

    if cassandra:
        reasons = [r for r in (_tcp(h, settings.cassandra_port) for h in settings.cassandra_hosts) if r]
        if len(reasons) == len(settings.cassandra_hosts):
            return f"Cassandra unavailable ({'; '.join(reasons)})"
    try:
        if kafka:
            from sinks.topics import require_reachable

            require_reachable(settings.kafka_bootstrap, timeout_s=CONNECT_TIMEOUT_S)
        if registry:
            from jobs.registry_client import require_registry

            require_registry(settings.schema_registry_url, settings.token)
    except FeatureStoreError as exc:
        return str(exc)
    return None


def require_stack(settings: Any, *, cassandra: bool = True, kafka: bool = False, registry: bool = False) -> None:
    """SystemExit with one ``error:`` line (exit 1) when a service the bench needs is down."""
    problem = stack_problem(settings, cassandra=cassandra, kafka=kafka, registry=registry)
    if problem is not None:
        raise SystemExit(f"error: the bench needs the running stack (make up): {problem}")


def run_main(main: Callable[[], int]) -> int:
    """``main()``, a Ctrl-C ending it with one line and exit status 130 (its cleanup has run by then), and a
    service failing under it (a Cassandra node that accepts connections and never answers passes the start's
    check) with one ``error:`` line and exit status 1, not a traceback. A SIGTERM unwinds through the same cleanup
    (``SystemExit(143)``): a bench's child process is stopped and its temporary folder removed, where the default
    handler left both behind. A ``BenchError`` (a failed or too slow job) is its detail, then one ``error:`` line,
    exit status 1."""
    from registry.core.errors import StoreUnavailableError
    from registry.core.interrupt import unwind_on_sigterm

    unwind_on_sigterm()
    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); what the bench made is removed", file=sys.stderr, flush=True)
        return 130
    except StoreUnavailableError as exc:
        print(f"error: the bench needs the running stack (make up): {exc}", file=sys.stderr, flush=True)
        return 1
    except BenchError as exc:
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
