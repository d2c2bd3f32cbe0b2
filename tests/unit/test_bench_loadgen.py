"""The serving bench's load generator (bench/loadgen.py): what counts as a success, how timeouts enter the
percentiles, and nearest-rank percentiles at the sizes where rounding used to pick the wrong rank. Against a
tiny loopback server in the test's own event loop: no service needed."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from bench import loadgen, serving_catalog, serving_requests, serving_table
from bench.loadgen import Spec, percentile, rank


def _answer(present: int, missing: int = 0, status: str = "200 OK") -> bytes:
    features = {f"bench_count_{i:03d}": {"value": i, "status": "present"} for i in range(present)}
    features |= {f"bench_sum_{i:03d}": {"value": None, "status": "missing"} for i in range(missing)}
    body = json.dumps({"entity_id": "u000001", "features": features}).encode()
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


async def _serve_and_load(
    answer: bytes, spec_doc: dict[str, Any], silent_every: int = 0, hang_up_every: int = 0
) -> dict[str, Any]:
    """Run the load generator against a server answering every request with ``answer`` (and leaving every
    ``silent_every``-th request unanswered, and closing the connection on every ``hang_up_every``-th, if set)."""
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                seen += 1
                if silent_every and seen % silent_every == 0:
                    await asyncio.sleep(3600)
                if hang_up_every and seen % hang_up_every == 0:
                    return
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = f"GET /v1/features/user/u000001?names=x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    doc = {"host": "127.0.0.1", "port": port, "requests": [request], "warmup_s": 0.05, "duration_s": 0.4, **spec_doc}
    try:
        return await loadgen.run(Spec.from_json(doc))
    finally:
        server.close()


def _load(answer: bytes, silent_every: int = 0, hang_up_every: int = 0, **spec: Any) -> dict[str, Any]:
    return asyncio.run(_serve_and_load(answer, spec, silent_every, hang_up_every))


@pytest.mark.parametrize("mode", ["fixed", "saturate"])
def test_answers_with_every_feature_present_are_successes(mode: str) -> None:
    r = _load(_answer(100), mode=mode, rate=200, connections=4, expect_present=100)
    assert r["ok"] > 10 and r["bad"] == 0 and r["checked"] == r["ok"] == r["completed"]
    assert r["ok_rate"] > 0 and r["samples"] == r["ok"] and not r["errors"]
    assert r["mean_response_bytes"] == len(_answer(100))
    assert serving_table.verdict(r) == ""


@pytest.mark.parametrize("mode", ["fixed", "saturate"])
def test_a_200_answer_with_missing_features_is_bad_and_not_a_success(mode: str) -> None:
    """An unseeded id (every feature missing) or a partly missing answer: 200, yet not a measured read."""
    for answer in (_answer(0, missing=100), _answer(99, missing=1)):
        r = _load(answer, mode=mode, rate=200, connections=4, expect_present=100)
        assert r["completed"] > 10
        assert r["bad"] == r["checked"] == r["completed"] and r["ok"] == 0 and r["ok_rate"] == 0
        assert math.isnan(r["p50_ms"]) and r["samples"] == 0
        assert "expected" in r["bad_example"]
        assert serving_table.verdict(r).startswith("INVALID: ")


def test_every_nth_answer_is_checked_when_asked() -> None:
    r = _load(_answer(0, missing=100), mode="fixed", rate=200, connections=4, expect_present=100, check_every=10)
    assert 0 < r["bad"] == r["checked"] < r["completed"]
    assert r["checked"] == math.ceil(r["completed"] / 10)


def test_without_an_expectation_every_200_is_a_success() -> None:
    r = _load(_answer(0, missing=100), mode="fixed", rate=200, connections=4)
    assert r["ok"] == r["completed"] > 10 and r["checked"] == 0 and r["bad"] == 0


def test_non_200_answers_are_errors_not_successes_and_not_in_the_percentiles() -> None:
    r = _load(_answer(0, status="503 Service Unavailable"), mode="fixed", rate=200, connections=4, expect_present=1)
    assert r["ok"] == 0 and r["ok_rate"] == 0 and r["errors"]["http_503"] == r["completed"] > 10
    assert r["answered_rate"] > 0 and r["samples"] == 0 and r["all_p50_ms"] < 1000


def test_a_timed_out_request_is_in_the_tail_at_its_timeout() -> None:
    """Requests the server never answers count at the timeout, so they stay in p99 instead of vanishing."""
    r = _load(_answer(1), silent_every=20, mode="fixed", rate=200, connections=64, expect_present=1, timeout_s=0.3)
    assert r["timeouts"] > 0 and r["errors"].get("TimeoutError", 0) + r["errors"].get("unfinished", 0) == r["timeouts"]
    assert r["samples"] == r["ok"] + r["timeouts"]
    assert r["p99_ms"] == pytest.approx(300.0)  # more than 1 % timed out: the p99 is the timeout
    assert r["p50_ms"] < 300


def test_a_connection_closed_before_its_answer_is_an_error_and_the_open_loop_goes_on() -> None:
    """The server hangs up on every 7th request: each is a ``ConnectionError``, never a success or a sample, and
    the other connections carry the rest of the run."""
    r = _load(_answer(1), hang_up_every=7, mode="fixed", rate=200, connections=64, expect_present=1)
    assert r["errors"].get("ConnectionError", 0) > 0 and r["timeouts"] == 0
    assert r["ok"] == r["completed"] == r["samples"] > 10


def test_samples_are_returned_to_pool_rounds() -> None:
    r = _load(_answer(1), mode="fixed", rate=200, connections=4, expect_present=1, return_samples=True)
    assert len(r["samples_ms"]) == r["samples"] and r["samples_ms"] == sorted(r["samples_ms"])


def test_a_body_split_across_reads_is_counted_whole() -> None:
    conn = loadgen._Conn()

    class Transport:
        def write(self, data: bytes) -> None:
            pass

    async def go() -> tuple[int, int, int]:
        conn.transport = Transport()  # type: ignore[assignment]
        future = conn.request(b"GET / HTTP/1.1\r\n\r\n", check=True)
        answer = _answer(7, missing=3)
        for i in range(0, len(answer), 13):
            conn.data_received(answer[i : i + 13])
        return await future

    status, size, present = asyncio.run(go())
    assert (status, present) == (200, 7) and size == len(_answer(7, missing=3))


@pytest.mark.parametrize(
    ("n", "q", "expected_rank", "is_max"),
    [
        (1, 0.5, 1, True),
        (1, 0.99, 1, True),
        (2, 0.5, 1, False),
        (3, 0.5, 2, False),
        (99, 0.99, 99, True),  # ceil(98.01): too few for a p99
        (100, 0.99, 99, False),  # round(99.5) picked rank 100, the maximum
        (100, 0.999, 100, True),
        (101, 0.99, 100, False),
        (200, 0.99, 198, False),
        (999, 0.999, 999, True),
        (1000, 0.999, 999, False),
        (1001, 0.999, 1000, False),
        (2500, 0.99, 2475, False),
        (10000, 0.999, 9990, False),
    ],
)
def test_percentiles_are_nearest_rank_and_say_when_they_are_the_maximum(
    n: int, q: float, expected_rank: int, is_max: bool
) -> None:
    assert rank(n, q) == expected_rank == math.ceil(round(q * n, 9))
    values = [float(v) for v in range(1, n + 1)]
    assert percentile(values, q) == (float(expected_rank), is_max)


def test_percentile_of_no_samples_is_nan() -> None:
    value, is_max = percentile([], 0.99)
    assert math.isnan(value) and not is_max


def test_the_bench_expects_every_feature_asked_of_every_entity_asked() -> None:
    assert serving_requests.expected_present("a", 100) == 100
    assert serving_requests.expected_present("a", 100, request_feature=True) == 101
    assert serving_requests.expected_present("b", 100) == 10_000
    assert serving_requests.expected_present("b", 100, request_feature=True) == 10_100
    assert serving_requests.expected_present("c", 10) == 10


def _result(**changes: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "target_rate": 1000.0,
        "ok_rate": 998.0,
        "samples": 100,
        "p50_ms": 1.0,
        "p50_is_max": False,
        "p99_ms": 4.0,
        "p99_is_max": False,
        "p999_ms": 9.0,
        "p999_is_max": True,
        "errors": {},
        "bad": 0,
        "checked": 100,
        "bad_example": "",
        "answered": 100,
        "mean_response_bytes": 15_300.0,
        "generator_cpu_us_per_request": 120.0,
    }
    return r | changes


def test_a_row_says_max_where_the_sample_is_too_small_and_invalid_when_answers_were_wrong(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert serving_table.print_row("(a) 1 entity x 100 features", "off", _result(), None, None)
    out = capsys.readouterr().out
    assert "max 9.00" in out and " 4.00 " in out and "15.3" in out and "INVALID" not in out
    wrong = _result(bad=3, bad_example='0 "present" in a 200 answer, 100 expected')
    assert not serving_table.print_row("(a) 1 entity x 100 features", "off", wrong, None, None)
    out = capsys.readouterr().out
    assert "INVALID: 3 of 100 answers checked were wrong" in out


def test_catalog_rounds_are_pooled_per_size() -> None:
    """(c)'s rounds of one size make one row: percentiles over every round's samples, counts summed, a wrong answer
    in any round keeps the row invalid."""
    low = _result(ok=100, samples_ms=[1.0] * 100, errors={"http_503": 1}, checked=100)
    high = _result(ok=100, samples_ms=[1.0] * 97 + [50.0] * 3, bad=2, checked=100, bad_example="2 wrong")
    r = serving_catalog.pooled([low, high])
    assert r["samples"] == 200 and r["answered"] == 200 and r["checked"] == 200
    assert r["p50_ms"] == 1.0 and r["p99_ms"] == 50.0  # 3 of 200 slow: the 198th of 200 is one of them
    assert serving_catalog.pooled([low, low])["p99_ms"] == 1.0
    assert r["errors"] == {"http_503": 1} and r["bad"] == 2 and r["bad_example"] == "2 wrong"
    assert r["mean_response_bytes"] == 15_300.0 and not serving_table.verdict(serving_catalog.pooled([low]))
