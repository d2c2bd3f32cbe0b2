"""Two ``python -m registry.schema_registry`` server processes sharing one SQLite file: ids and versions stay unique and
gap-free under concurrent registration, compatibility holds across processes, and a restart keeps it all.

Needs no Kafka or Cassandra (so no ``integration`` marker): each server binds a free loopback port
(``--port 0``) and announces it on its first stdout line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.schema_registry.store import normalize

REPO = Path(__file__).resolve().parent.parent.parent
HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


class Server:
    """One registry process on a free port; ``url`` is where it listens."""

    def __init__(self, db: Path, log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "registry.schema_registry", "--host", "127.0.0.1", "--port", "0", "--db", str(db)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()  # "listening on http://127.0.0.1:PORT"
        if not line.startswith("listening on "):
            self.stop()
            pytest.fail(f"registry did not start: {line!r}; see {log}")
        self.url = line.removeprefix("listening on ")
        self.http = httpx.Client(base_url=self.url, headers=HEADERS, timeout=30)
        for _ in range(200):
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"registry at {self.url} never became healthy; see {log}")

    def stop(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[Path], Server]]:
    started: list[Server] = []

    def start(db: Path) -> Server:
        server = Server(db, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def schema_for(i: int) -> str:
    """Distinct schemas that are all mutually compatible: one defaulted field each."""
    return json.dumps({"type": "record", "name": "Event", "fields": [{"name": f"f{i}", "type": "long", "default": 0}]})


def subject_for(i: int) -> str:
    return f"events-{'even' if i % 2 == 0 else 'odd'}-value"


def register_all(server: Server, indices: list[int], barrier: threading.Barrier, out: dict[int, Any]) -> None:
    barrier.wait(timeout=30)
    for i in indices:
        response = server.http.post(f"/subjects/{subject_for(i)}/versions", json={"schema": schema_for(i)})
        out[i] = response.json() if response.status_code == 200 else response.text


def test_two_processes_share_one_store(tmp_path: Path, start_server: Callable[[Path], Server]) -> None:
    db = tmp_path / "shared" / "schemas.db"
    a, b = start_server(db), start_server(db)
    assert a.url != b.url

    results: dict[int, Any] = {}
    barrier = threading.Barrier(2)
    workers = [
        threading.Thread(target=register_all, args=(a, list(range(0, 25)), barrier, results)),
        threading.Thread(target=register_all, args=(b, list(range(25, 50)), barrier, results)),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert sorted(results) == list(range(50))
    ids = {i: r["id"] for i, r in results.items()}
    assert sorted(ids.values()) == list(range(1, 51))  # unique, and no id burnt

    def snapshot(server: Server) -> dict[str, list[tuple[int, int]]]:
        out = {}
        for subject in server.http.get("/subjects").json():
            versions = server.http.get(f"/subjects/{subject}/versions").json()
            out[subject] = [(v, server.http.get(f"/subjects/{subject}/versions/{v}").json()["id"]) for v in versions]
        return out

    seen = snapshot(a)
    assert seen == snapshot(b)
    for subject in ("events-even-value", "events-odd-value"):
        assert [v for v, _ in seen[subject]] == list(range(1, 26))  # gap-free per subject
        assert sorted(schema_id for _, schema_id in seen[subject]) == sorted(
            ids[i] for i in range(50) if subject_for(i) == subject
        )
    for i in (0, 17, 49):
        assert b.http.get(f"/schemas/ids/{ids[i]}").json() == {"schema": normalize(schema_for(i))}

    # a restart of either process (and of both) loses nothing
    a.stop()
    b.stop()
    again = start_server(db)
    assert snapshot(again) == seen
    assert again.http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert again.http.post("/subjects/events-even-value/versions", json={"schema": schema_for(50)}).json() == {"id": 51}


def _post(server: Server, subject: str, schema: str, barrier: threading.Barrier, statuses: list[int]) -> None:
    barrier.wait(timeout=30)
    statuses.append(server.http.post(f"/subjects/{subject}/versions", json={"schema": schema}).status_code)


def test_two_processes_cannot_both_extend_a_subject_incompatibly(
    tmp_path: Path, start_server: Callable[[Path], Server]
) -> None:
    """Each candidate is compatible with v1 but not with the other; exactly one may win each race."""
    db = tmp_path / "schemas.db"
    a, b = start_server(db), start_server(db)

    def record(*fields: dict[str, Any]) -> str:
        return json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, *fields]})

    as_string = record({"name": "b", "type": "string", "default": ""})
    as_int = record({"name": "b", "type": "int", "default": 0})
    outcomes: list[list[int]] = []
    for race in range(8):
        subject = f"race-{race}"
        assert a.http.post(f"/subjects/{subject}/versions", json={"schema": record()}).status_code == 200
        barrier = threading.Barrier(2)
        statuses: list[int] = []
        racers = [
            threading.Thread(target=_post, args=(server, subject, schema, barrier, statuses))
            for server, schema in ((a, as_string), (b, as_int))
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join(timeout=60)
        outcomes.append(sorted(statuses))
        assert a.http.get(f"/subjects/{subject}/versions").json() == [1, 2]
    assert outcomes == [[200, 409]] * 8
