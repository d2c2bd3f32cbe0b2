"""What the serving bench sends: the request texts of its (a), (b) and (c) runs (raw HTTP/1.1, entity ids
uniform or Zipf-distributed, optionally with a bearer token and the request-time feature), how many features a
right answer holds as present, and one run of them through the load generator (``bench.loadgen``, a separate
process)."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
from typing import Any

from bench.serving_seed import ENTITY, REQUEST_FEATURE
from bench.serving_server import REPO


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
