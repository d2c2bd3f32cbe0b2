"""The feature API in one process under a profiler: ``python -m bench.profiled OUT.txt --port P``.

Uses yappi when installed (CPU time of every thread, so the Cassandra driver's I/O thread is
included), else cProfile (the event-loop thread only). On SIGTERM it writes the CPU time by area
(driver, HTTP server, web framework, this project, ...) and the top functions by own time to OUT.txt.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import sys
import threading
from collections import defaultdict
from pathlib import Path

import uvicorn

from registry.core.settings import Settings
from serving.online.__main__ import _server_options, build

AREAS = [
    ("cassandra/", "cassandra driver (query, I/O thread, decoding)"),
    ("uvicorn/", "uvicorn + httptools (HTTP parsing, transport)"),
    ("starlette/", "starlette + fastapi (routing, request, response)"),
    ("fastapi/", "starlette + fastapi (routing, request, response)"),
    ("/serving/", "serving (plans, cache, vectors, routes)"),
    ("/registry/", "registry (timeline rule, catalog)"),
    ("asyncio/", "asyncio / event loop"),
    ("uvloop", "asyncio / event loop"),
    ("threading.py", "threads: locks, events"),
    ("prometheus_client/", "metrics"),
]


def _area(filename: str) -> str:
    for needle, area in AREAS:
        if needle in filename:
            return area
    return "other (builtins: orjson, datetime, ...)"


def _thread_cpu() -> list[tuple[str, float]]:
    """CPU seconds of each thread of this process (Linux /proc), named as Python knows them."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if seconds > 0:
            out.append((names.get(int(tid), f"native thread {tid}"), seconds))
    return sorted(out, key=lambda t: -t[1])


def _report(rows: list[tuple[str, str, int, float]], total: float, threads: list[tuple[str, float]]) -> str:
    """rows: (function, file, calls, own seconds)."""
    by_area: dict[str, float] = defaultdict(float)
    for _, filename, _, own in rows:
        by_area[_area(filename)] += own
    by_area["native code outside Python functions (libev loop, uvloop, C extensions)"] = max(
        0.0, total - sum(by_area.values())
    )
    out = io.StringIO()
    out.write("CPU time by thread (whole run, start-up included):\n")
    for name, seconds in threads:
        out.write(f"  {seconds:7.2f} s  {name}\n")
    out.write(f"\nCPU time profiled: {total:.2f} s\n\nby area (own time):\n")
    for area, seconds in sorted(by_area.items(), key=lambda kv: -kv[1]):
        out.write(f"  {seconds / total:6.1%}  {area}\n")
    out.write("\ntop functions by own time:\n")
    for name, filename, calls, own in sorted(rows, key=lambda r: -r[3])[:30]:
        short = filename.split("site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        out.write(f"  {own / total:6.1%} {calls:>9}  {name}  ({short})\n")
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiled")
    parser.add_argument("out", type=Path)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app, cluster = build(Settings.from_env(), dict(os.environ))
    try:
        import yappi
    except ImportError:
        yappi = None
    profiler = cProfile.Profile()
    if yappi is not None:
        yappi.set_clock_type("cpu")
        yappi.start()
    else:
        profiler.enable()
    # uvicorn re-raises the SIGTERM it caught once it has shut down; a no-op handler lets the report be written.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, **_server_options())
    finally:
        if yappi is not None:
            yappi.stop()
            stats = yappi.get_func_stats()
            rows = [(s.name, s.module, s.ncall, s.tsub) for s in stats]
            total = sum(t.ttot for t in yappi.get_thread_stats())
        else:
            profiler.disable()
            st = pstats.Stats(profiler)
            raw = st.stats  # type: ignore[attr-defined]
            rows = [(fn[2], fn[0], v[1], v[2]) for fn, v in raw.items()]
            total = sum(r[3] for r in rows)
        args.out.write_text(_report(rows, total or 1.0, _thread_cpu()))
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
