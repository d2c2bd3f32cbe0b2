"""The serving bench's printed table: its header and legend, one row per load result (rate, percentiles,
errors, wrong answers, CPU per request) with an INVALID line for a run with wrong answers, and the one-line
summary of several rounds of one fixed-rate run."""

from __future__ import annotations

from typing import Any

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
