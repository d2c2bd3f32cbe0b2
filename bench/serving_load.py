"""Load benchmark of the online feature API: ``python -m bench.serving_load`` (or ``make bench-serving``).

Self-contained on the running local stack (Cassandra on 9042): it registers 100 feature
definitions in a temporary definitions DB, writes one window's values for ``--entities`` entities
into its own keyspace through ``OnlineWriter`` (the job's writer, so rows have the job's layout,
TTL and write time), starts ``python -m serving.online`` on a free loopback port, and runs the load
generator (``bench.loadgen``, a separate process) for:

    (a) GET  /v1/features/user/{id}?names=<100 names>           1 entity  x 100 features
    (b) POST /v1/features/user/batch  {100 ids, 100 names}       100 entities x 100 features

each at a fixed request rate (open loop, latency from the due time) and at saturation (closed
loop); (a) at its fixed rate ``--rounds`` times (default 3), each round a row, then the p99 of all the
rounds' requests pooled (and the range of the rounds' own p99s) and how late a 1 ms sleep woke meanwhile (``bench.stalls``: the machine's own scheduling delays,
which set a few-millisecond tail on shared cores as much as the code does); after ``--prime`` seconds (default 20) of (a) at saturation that are not measured: a freshly
started Cassandra's first seconds under load are its JIT compiling the read path (measured once on
2026-12-03: right after ``make up`` (a) saturated at 593 requests/s at 2.3 ms of Cassandra CPU each, minutes
later at 1,623/s and 0.27 ms), then

    (c) GET  /v1/features/user/{id}?names=<10 names>            1 entity x 10 features

at ``--catalog-rate`` requests/s with catalogs of ``--catalog-sizes`` definitions (the same ten read,
the others registered beside them for the same entity type): whether latency stays flat as the
registry grows (issue #19 asks within 10 % from 10 to 10,000 definitions). With the cache off, (b)
also runs at ``--overload`` times its saturated rate (default 10; ``bench.serving_overload``). The (a) and (b) runs go
first with the vector cache off (entity ids uniform: every entity read goes to Cassandra)
and then with it on (``FS_CACHE_TTL_MS``) under hot-key traffic (entity ids Zipf-distributed,
``--zipf``; 0 for uniform). ``--auth on`` runs the server with ``FS_AUTH=on`` and every request
carries a bearer token (10 of the 100 features are confidential, granted to the caller's team, so
each request also checks a grant and writes audit records); ``--auth both`` runs the uncached set
with auth off, then on. ``--request-feature on`` adds one request-time feature to every request (its
function divides the request's ``amount`` by a stored feature; ``both``: the uncached set without,
then with it), so the difference of the rows is its cost. It prints one table, drops its
keyspace and stops the server.

Every answer of (a) and (c), and every tenth of (b), is checked to hold exactly the features asked as
``present`` (an unseeded id, a wrong keyspace or an expired TTL answer 200 with every feature ``missing``);
a wrong answer is not a success, is counted in the row's ``bad`` column, marks the row INVALID, and makes the
bench exit with status 1 after its last run. A row's ``ok/s`` is the rate of successes (200 and not found
wrong), its percentiles are over the successes with each timed-out request counted at the load generator's
timeout (10 s), ``n`` how many that is; a percentile printed ``max`` is the largest sample (too few for the
quantile). ``--profile`` also samples where the server's time goes (yappi if
installed, else cProfile of the event-loop thread) during a saturation run of (a).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.cli import positive, require_stack, run_main, whole_list
from bench.stalls import StallProbe
from registry.core.arguments import number, whole

REPO = Path(__file__).resolve().parent.parent
ENTITY = "user"
N_FEATURES = 100
MIN_MS = 60_000
REQUEST_FEATURE = "bench_amount_per_count"
CATALOG_READ = 10  # features each (c) request reads


def _definitions() -> list[Any]:
    from registry.core.definitions import FeatureDefinition

    kinds = [
        ("count", None, "long"),
        ("sum", "amount", "double"),
        ("max", "merchant_id", "string"),
        ("last", "currency", "string"),  # the event schema has no boolean field
    ]
    out = []
    for i in range(N_FEATURES):
        function, field, value_type = kinds[i % len(kinds)]
        out.append(
            FeatureDefinition.model_validate(
                {
                    "name": f"bench_{function}_{i:03d}",
                    "entity": ENTITY,
                    "version": 1,
                    # Every tenth feature is confidential and owned by another team: with auth on, each
                    # request's grant check and audit records are part of what is measured.
                    "owner": "bench-fraud" if i % 10 == 0 else "bench",
                    "sensitivity": "confidential" if i % 10 == 0 else "internal",
                    "value_type": value_type,
                    "source": {
                        "topic": "bench_events",
                        "event_schema": "card_transaction",
                        "subject": "bench_events-value",
                        "entity_key": "user_id",
                        "timestamp_field": "event_time",
                    },
                    "window": {"kind": "sliding", "size": "1h", "slide": "5m"},
                    "aggregation": {"function": function, "field": field} if field else {"function": function},
                    "freshness_slo": "1h",
                    "ttl": "1d",
                }
            )
        )
    return out


def _value(value_type: str, e: int, i: int) -> object:
    if value_type == "long":
        return (e * 31 + i) % 1000
    if value_type == "double":
        return ((e * 17 + i) % 10_000) / 4
    if value_type == "string":
        return f"m{(e + i) % 500:04d}"
    return (e + i) % 2 == 0


def seed(settings: Any, entities: int) -> tuple[list[str], list[str]]:
    """Definitions into the settings' DB and one window of values per (entity, feature) into its keyspace."""
    from registry.core.request_features import RequestFeature
    from registry.definition_store import DefinitionStore
    from sinks.cassandra.writer import OnlineWriter
    from sinks.factory import connect_cassandra
    from sinks.records import FeatureRow

    definitions = _definitions()
    store = DefinitionStore(settings.definitions_db)
    for d in definitions:
        store.register(d)
    request = RequestFeature.model_validate(
        {
            "name": REQUEST_FEATURE,
            "entity": ENTITY,
            "version": 1,
            "owner": "bench",
            "value_type": "double",
            "function": "bench.request_fns:amount_per_count",
            "inputs": ["bench_count_000@v1"],
            "request_fields": [{"name": "amount", "value_type": "double"}],
        }
    )
    store.register_all([], [request])
    cluster, session = connect_cassandra(settings)
    try:
        writer = OnlineWriter(session, settings.cassandra_keyspace, concurrency=128)
        end = time.time_ns() // 1_000_000 // (5 * MIN_MS) * 5 * MIN_MS
        ids = [f"u{e:06d}" for e in range(entities)]
        for e, eid in enumerate(ids):
            for i, d in enumerate(definitions):
                writer.add(FeatureRow.of(d, eid, _value(d.value_type, e, i), end - 60 * MIN_MS, end))  # type: ignore[arg-type]
            if (e + 1) % 200 == 0:
                writer.flush()
        writer.flush()
    finally:
        cluster.shutdown()
    return ids, [d.name for d in definitions]


def drop_keyspace(settings: Any) -> None:
    from sinks.factory import connect_cassandra

    cluster, session = connect_cassandra(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: Any, cache_ttl_ms: int, auth: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env["FS_AUTH"] = "on" if auth else "off"
    env.update(
        {
            "FS_CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
            "FS_CASSANDRA_PORT": str(settings.cassandra_port),
            "FS_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
            "FS_DEFINITIONS_DB": str(settings.definitions_db),
            "FS_CACHE_TTL_MS": str(cache_ttl_ms),
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SETTLED_CORES = 0.15  # Cassandra's CPU use under which the seeding's flushes and compactions are over
SETTLE_MAX_S = 90.0


def settle(pid: int | None) -> tuple[float, float]:
    """Wait until Cassandra's CPU use over a second falls below ``SETTLED_CORES`` (at most ``SETTLE_MAX_S``):
    the seeding's memtable flushes and compactions otherwise run during the first measured run, which then
    measures them. Returns the seconds waited and the last second's use (0 without a pid)."""
    started = time.monotonic()
    busy = 0.0
    while pid is not None and time.monotonic() - started < SETTLE_MAX_S:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        after = cpu_seconds(pid)
        if before is None or after is None:
            break
        busy = after - before
        if busy < SETTLED_CORES:
            break
    return time.monotonic() - started, busy


def cassandra_pid() -> int | None:
    """The local stack's Cassandra (its PID file), to report its CPU time per request; None if not found."""
    from infra.settings import StackSettings

    try:
        pid = int((StackSettings.from_env().service_dir("cassandra") / "pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if cpu_seconds(pid) is not None else None


@contextmanager
def server(
    settings: Any, *, port: int, workers: int, cache_ttl_ms: int, profile: Path | None, auth: bool = False
) -> Iterator[int]:
    cmd = [sys.executable, "-m", "serving.online", "--port", str(port), "--workers", str(workers)]
    if profile is not None:
        cmd = [sys.executable, "-m", "bench.profiled", str(profile), "--port", str(port)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(settings, cache_ttl_ms, auth),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # auth off logs one warning per route; a failed start is seen at /health
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and auth:
                    break  # up, and refusing the anonymous
                raise
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _auth_header(token: str | None) -> str:
    return f"Authorization: Bearer {token}\r\n" if token else ""


def _get(port: int, eid: str, names: str, token: str | None = None, query: str = "") -> str:
    return (
        f"GET /v1/features/{ENTITY}/{eid}?names={names}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"{_auth_header(token)}\r\n"
    )


def _post(
    port: int, ids: list[str], names: list[str], token: str | None = None, data: dict[str, Any] | None = None
) -> str:
    asked: dict[str, Any] = {"entity_ids": ids, "names": names}
    if data is not None:
        asked["request_data"] = data
    body = json.dumps(asked, separators=(",", ":"))
    return (
        f"POST /v1/features/{ENTITY}/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{_auth_header(token)}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )


def _draw(ids: list[str], rng: random.Random, zipf_s: float, k: int) -> list[str]:
    """``k`` distinct ids, uniformly or with Zipf weights (rank r drawn with weight r^-s: a few hot entities)."""
    if zipf_s <= 0:
        return rng.sample(ids, k)
    cum = list(itertools.accumulate(1 / (rank**zipf_s) for rank in range(1, len(ids) + 1)))
    out: dict[str, None] = {}
    for _ in range(100):  # bounded: distinct draws from a skewed distribution
        for eid in rng.choices(ids, cum_weights=cum, k=4 * k):
            out.setdefault(eid, None)
            if len(out) == k:
                return list(out)
    return list(out)


def requests_for(
    scenario: str,
    port: int,
    ids: list[str],
    names: list[str],
    rng: random.Random,
    zipf_s: float = 0.0,
    token: str | None = None,
    request_feature: bool = False,
) -> list[str]:
    """Request texts; with ``request_feature`` each also asks for the request-time feature, with an amount."""
    if scenario == "a":
        joined = ",".join([*names, REQUEST_FEATURE] if request_feature else names)
        return [
            _get(
                port,
                _draw(ids, rng, zipf_s, 1)[0],
                joined,
                token,
                f"&amount={rng.randint(1, 99_999) / 100}" if request_feature else "",
            )
            for _ in range(4000)
        ]
    if request_feature:
        return [
            _post(
                port,
                _draw(ids, rng, zipf_s, 100),
                [*names, REQUEST_FEATURE],
                token,
                {"amount": [rng.randint(1, 99_999) / 100 for _ in range(100)]},
            )
            for _ in range(300)
        ]
    return [_post(port, _draw(ids, rng, zipf_s, 100), names, token) for _ in range(300)]


def expected_present(scenario: str, features: int, request_feature: bool = False) -> int:
    """How many features a right answer of ``scenario`` holds as ``present``: every one asked (``features`` stored
    ones, and the request-time one if asked) of every entity asked (1 for (a) and (c), 100 for (b))."""
    return (1 if scenario in ("a", "c") else 100) * (features + request_feature)


CHECK_EVERY = {"a": 1, "c": 1, "b": 10}  # a (b) answer is ~0.5 MB: counting its statuses takes ~0.26 ms


def load(
    port: int,
    requests: list[str],
    *,
    mode: str,
    rate: float,
    connections: int,
    duration_s: float,
    warmup_s: float,
    expect_present: int | None,
    check_every: int = 1,
    return_samples: bool = False,
) -> dict[str, Any]:
    """One load generator run (``bench.loadgen``); answers with other than ``expect_present`` features present
    (every ``check_every``-th checked) are counted as ``bad``, not as successes."""
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "mode": mode,
        "rate": rate,
        "connections": connections,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "requests": requests,
        "timeout_s": 10.0,
        "max_requests": 1_000_000,
        "expect_present": expect_present,
        "check_every": check_every,
        "return_samples": return_samples,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", f.name],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=duration_s + warmup_s + 60,
            check=True,
        )
    finally:
        os.unlink(f.name)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def cache_hit_rate(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return "?"
    counts = {}
    for line in text.splitlines():
        if line.startswith("fs_cache_requests_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    total = sum(counts.values())
    return f"{counts.get('hit', 0) / total:.0%}" if total else "-"


ROW = "{:<46} {:>6} {:>6} {:>6} {:>9} {:>9} {:>10} {:>6} {:>6} {:>5} {:>6} {:>9} {:>9} {:>6}"
HEADER = ROW.format(
    "scenario",
    "cache",
    "target",
    "ok/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "n",
    "errors",
    "bad",
    "KB",
    "server us",
    "cassandra",
    "gen us",
)
LEGEND = (
    "ok/s: successes a second (200, holding every feature asked as present); p50/p99/p99.9: nearest-rank over the n "
    "successes and timed-out requests (each at the 10 s timeout), 'max' where n is too small for the quantile; "
    "errors: non-200 answers, timeouts, broken connections; bad: 200 answers with features not present (checked: "
    "every (a)/(c) answer, every 10th (b) one); KB: mean size of a success's answer"
)


def _us(cpu: float | None, n: int) -> str:
    return f"{cpu / n * 1e6:.0f}" if cpu is not None and n else "-"


def ms(r: dict[str, Any], name: str) -> str:
    """A percentile of a load result in ms, ``max ...`` when it is the largest sample (too few for the quantile)."""
    value = f"{r[f'{name}_ms']:.2f}"
    return f"max {value}" if r.get(f"{name}_is_max") else value


def verdict(r: dict[str, Any]) -> str:
    """'' for a run without wrong answers, else one line saying how many were wrong and how."""
    if not r["bad"]:
        return ""
    return f"INVALID: {r['bad']:,} of {r['checked']:,} answers checked were wrong ({r['bad_example']})"


def print_row(label: str, cache: str, r: dict[str, Any], server_cpu: float | None, cassandra_cpu: float | None) -> bool:
    """One row of the table; a run with wrong answers is followed by an INVALID line. Returns whether it was valid."""
    target = f"{r['target_rate']:.0f}" if r["target_rate"] else "sat"
    errors = sum(r["errors"].values())
    n = r["answered"]
    print(
        ROW.format(
            label,
            cache,
            target,
            f"{r['ok_rate']:.0f}",
            ms(r, "p50"),
            ms(r, "p99"),
            ms(r, "p999"),
            r["samples"],
            errors,
            r["bad"],
            f"{r['mean_response_bytes'] / 1000:.1f}",
            _us(server_cpu, n),
            _us(cassandra_cpu, n),
            f"{r['generator_cpu_us_per_request']:.0f}",
        ),
        flush=True,
    )
    bad = verdict(r)
    if bad:
        print(f"  !!! {label}: {bad}", flush=True)
    return not bad


def rounds_summary(rate: float, rounds: list[list[float]]) -> str:
    """One line on the p99 of several rounds of one fixed-rate run: the p99 of every round's samples (ms) pooled,
    over how many, and the range of the rounds' own p99s."""
    from bench.loadgen import percentile

    pooled = sorted(x for samples in rounds for x in samples)
    p99, is_max = percentile(pooled, 0.99)
    own = sorted(percentile(sorted(samples), 0.99)[0] for samples in rounds)
    return (
        f"p99 at {rate:,.0f} requests/s over {len(rounds)} rounds pooled: {'max ' if is_max else ''}{p99:.2f} ms "
        f"(n={len(pooled):,}; the rounds' own p99s from {own[0]:.2f} to {own[-1]:.2f} ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serving_load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entities",
        type=whole(100),
        default=1000,
        help="entities seeded, each one row of 100 values (at least 100: a (b) request reads 100 entities)",
    )
    parser.add_argument(
        "--workers", type=whole(1, 64), default=1, help="server processes, 1 to 64 as the API takes (1 best on 2 cores)"
    )
    parser.add_argument("--duration", type=positive, default=8.0, help="seconds measured per run")
    parser.add_argument(
        "--rounds",
        type=whole(1),
        default=3,
        help="rounds of (a) at 1,000 requests/s, each its own row, then the p99 of their requests pooled and the "
        "machine's scheduling stalls during them (one run's p99 on shared cores swings with the machine)",
    )
    parser.add_argument("--warmup", type=number(0, math.inf), default=2.0, help="seconds sent before measuring")
    parser.add_argument(
        "--prime",
        type=number(0, math.inf),
        default=20.0,
        help="seconds of (a) at saturation after each server start, not measured: Cassandra's and the server's "
        "first seconds under load (the JVM compiling the read path) are not their steady state (0 skips it)",
    )
    parser.add_argument(
        "--cache-ttl-ms", type=whole(1, 3_600_000), default=1000, help="TTL of the cached runs (1 to 3,600,000)"
    )
    parser.add_argument(
        "--zipf",
        type=number(0, math.inf),
        default=1.1,
        help="skew of entity ids in the cached runs (Zipf exponent; 0: uniform like the uncached runs)",
    )
    parser.add_argument("--only", choices=["off", "on"], help="only the runs with the cache off or on")
    parser.add_argument(
        "--log-sample",
        type=number(0, 1),
        default=0.01,
        help="share of requests the API logs to the serving-log topic (its default 0.01; 0 turns it off)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the server under saturation of (a)")
    parser.add_argument(
        "--profile-scenario",
        choices=["a", "b", "overload"],
        default="a",
        help="what --profile runs: (a) or (b) saturated (default a), or (b) at --overload times its saturated rate",
    )
    parser.add_argument(
        "--catalog-sizes",
        type=whole_list(CATALOG_READ, empty=True),
        default=[10, 1000, 10000],
        help=f"definitions in the catalog for the (c) runs, comma-separated, each at least {CATALOG_READ} (the "
        "features read; '' skips them)",
    )
    parser.add_argument("--catalog-rate", type=positive, default=300.0, help="requests/s of the (c) runs")
    parser.add_argument(
        "--overload",
        type=number(0, math.inf),
        default=10.0,
        help="(b) offered at this multiple of its saturated rate, cache off (0 skips the run)",
    )
    parser.add_argument(
        "--auth",
        choices=["off", "on", "both"],
        default="off",
        help="FS_AUTH of the server; both: the uncached runs with auth off, then on",
    )
    parser.add_argument(
        "--request-feature",
        choices=["off", "on", "both"],
        default="off",
        help="add a request-time feature to every request; both: the uncached runs without, then with it",
    )
    args = parser.parse_args(argv)
    os.environ["FS_SERVING_LOG_SAMPLE"] = str(args.log_sample)

    from registry.core.settings import settings_for_command
    from serving.online.serving_log import DEFAULT_TOPIC
    from sinks.topics import ensure_topics

    base = settings_for_command()
    require_stack(base, cassandra=True, kafka=args.log_sample > 0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    settings = base.model_copy(
        update={"cassandra_keyspace": f"bench_{uuid.uuid4().hex[:8]}", "definitions_db": tmp / "definitions.db"}
    )
    rng = random.Random(7)
    print(
        f"keyspace {settings.cassandra_keyspace}; seeding {args.entities} entities x {N_FEATURES} features "
        "through OnlineWriter ...",
        flush=True,
    )
    try:
        started = time.monotonic()
        ids, names = seed(settings, args.entities)
        print(
            f"seeded {len(ids):,} rows (one per entity) holding {len(ids) * len(names):,} values in "
            f"{time.monotonic() - started:.0f}s; server: "
            f"{args.workers} worker(s), loopback; load generator: a separate process",
            flush=True,
        )
        cassandra = cassandra_pid()
        waited, busy = settle(cassandra)
        print(
            f"Cassandra settled after the seeding in {waited:.0f}s (it used {busy:.2f} cores over the last second; "
            f"the runs start below {SETTLED_CORES} or after {SETTLE_MAX_S:.0f}s)",
            flush=True,
        )
        if args.log_sample > 0:
            ensure_topics(settings.kafka_bootstrap, [DEFAULT_TOPIC])  # so that the logged records reach Kafka
        print(f"serving log: {args.log_sample:.0%} of requests to the topic {DEFAULT_TOPIC}")
        print(
            f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share the 2 cores)"
        )
        print(LEGEND)
        print(HEADER)
        runs = [
            ("(a) 1 entity x 100 features", "a", "fixed", 1000.0, 32),
            ("(a) 1 entity x 100 features", "a", "saturate", 0.0, 8),
            ("(b) 100 entities x 100 features", "b", "fixed", 20.0, 8),
            ("(b) 100 entities x 100 features", "b", "saturate", 0.0, 2),
        ]
        token = None
        if args.auth != "off":
            from registry.access_store import AccessStore

            access = AccessStore(settings.definitions_db)
            token = access.issue("bench-scorer", "bench")
            access.grant("bench-fraud", "bench")
        with_request = args.request_feature == "on"
        sets = [(0, False, with_request), (args.cache_ttl_ms, False, with_request)]
        if args.auth == "on":
            sets = [(0, True, with_request), (args.cache_ttl_ms, True, with_request)]
        elif args.auth == "both":
            sets = [(0, False, with_request), (0, True, with_request)]
        if args.request_feature == "both":
            sets = [(0, args.auth == "on", False), (0, args.auth == "on", True)]
        saturated_b = 0.0
        invalid: list[str] = []  # the runs with wrong answers
        for cache_ttl, auth, asks_request in sets:
            if args.only == ("on" if cache_ttl == 0 else "off"):
                continue
            port = free_port()
            with server(
                settings, port=port, workers=args.workers, cache_ttl_ms=cache_ttl, profile=None, auth=auth
            ) as pid:
                if args.prime > 0:
                    primed = load(
                        port,
                        requests_for("a", port, ids, names, rng, 0.0, token if auth else None, with_request),
                        mode="saturate",
                        rate=0.0,
                        connections=8,
                        duration_s=args.prime,
                        warmup_s=0.0,
                        expect_present=expected_present("a", len(names), with_request),
                    )
                    print(
                        f"primed: (a) at saturation for {args.prime:g} s, {primed['ok_rate']:,.0f} successes/s, "
                        "not measured (a JVM's first seconds under load compile its read path)",
                        flush=True,
                    )
                    if verdict(primed):
                        print(f"  !!! priming: {verdict(primed)}", flush=True)
                        invalid.append("priming")
                for label, scenario, mode, rate, conns in runs:
                    zipf = args.zipf if cache_ttl else 0.0
                    repeats = args.rounds if (scenario, mode) == ("a", "fixed") else 1
                    rounds: list[list[float]] = []
                    with StallProbe() as probe:
                        for _ in range(repeats):
                            reqs = requests_for(
                                scenario, port, ids, names, rng, zipf, token if auth else None, asks_request
                            )
                            server0 = cpu_seconds(pid if args.workers == 1 else None)
                            cassandra0 = cpu_seconds(cassandra)
                            r = load(
                                port,
                                reqs,
                                mode=mode,
                                rate=rate,
                                connections=conns,
                                duration_s=args.duration,
                                warmup_s=args.warmup,
                                expect_present=expected_present(scenario, len(names), asks_request),
                                check_every=CHECK_EVERY[scenario],
                                return_samples=repeats > 1,
                            )
                            server1 = cpu_seconds(pid if args.workers == 1 else None)
                            cassandra1 = cpu_seconds(cassandra)
                            shown = label + (" auth" if auth else "") + (" +request" if asks_request else "")
                            cache = "off" if cache_ttl == 0 else f"{cache_ttl}ms" + ("/z" if args.zipf > 0 else "")
                            if not print_row(
                                shown,
                                cache,
                                r,
                                None if server0 is None or server1 is None else server1 - server0,
                                None if cassandra0 is None or cassandra1 is None else cassandra1 - cassandra0,
                            ):
                                invalid.append(f"{shown} {mode} cache {cache}")
                            rounds.append(r.get("samples_ms", []))
                    if repeats > 1:
                        print(f"  {rounds_summary(rate, rounds)}; meanwhile {probe.result().describe()}", flush=True)
                    if scenario == "b" and mode == "saturate":
                        saturated_b = r["ok_rate"]
                if not cache_ttl and args.overload > 0 and saturated_b:
                    from bench.serving_overload import overload_run

                    if not overload_run(
                        port,
                        requests_for("b", port, ids, names, rng),
                        saturated_b * args.overload,
                        args,
                        pid if args.workers == 1 else None,
                    ):
                        invalid.append("(b) overload")
                if cache_ttl:
                    print(
                        f"cache hit rate (/metrics): {cache_hit_rate(port)}; /z: entity ids Zipf(s={args.zipf}) "
                        f"over {len(ids)} entities (uncached runs: uniform)",
                        flush=True,
                    )
        sizes = args.catalog_sizes
        if sizes:
            from bench.serving_catalog import catalog_runs

            invalid += catalog_runs(settings, tmp, ids, names, sizes, args, rng, cassandra)
        print(
            f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; server us, cassandra: CPU "
            "microseconds per answered request; gen us: the load generator's"
        )
        if args.profile:
            out = tmp / "profile.txt"
            port = free_port()
            overloaded = args.profile_scenario == "overload" and saturated_b > 0
            with server(settings, port=port, workers=1, cache_ttl_ms=0, profile=out):
                if overloaded:
                    from bench.serving_overload import overload_run

                    overload_run(port, requests_for("b", port, ids, names, rng), saturated_b * args.overload, args)
                else:
                    load(
                        port,
                        requests_for(args.profile_scenario[0], port, ids, names, rng),
                        mode="saturate",
                        rate=0,
                        connections=8 if args.profile_scenario == "a" else 2,
                        duration_s=args.duration,
                        warmup_s=args.warmup,
                        expect_present=expected_present(args.profile_scenario[0], len(names)),
                        check_every=CHECK_EVERY[args.profile_scenario[0]],
                    )
            time.sleep(0.5)
            run = "(b) overloaded" if overloaded else f"saturation of ({args.profile_scenario[0]})"
            print(f"\nprofile of one server process at {run}, cache off ({out}):")
            print(out.read_text() if out.exists() else "(no profile written)")
        if invalid:
            print(
                f"\nINVALID: {len(invalid)} run(s) had answers without every feature asked present (not measured "
                f"reads): {'; '.join(invalid)}",
                file=sys.stderr,
                flush=True,
            )
            return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            drop_keyspace(settings)
        except Exception as exc:  # the error that ended the run, if any, follows; this one is said in one line
            print(f"could not drop keyspace {settings.cassandra_keyspace}: {exc}", file=sys.stderr, flush=True)
        else:
            print(f"dropped keyspace {settings.cassandra_keyspace}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
