"""Run the feature API: ``python -m serving [--host H] [--port P]``. Builds the clients, then serves."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from registry.definition_store import DefinitionStore
from registry.errors import FeatureStoreError
from registry.live import LiveCatalog
from registry.settings import Settings
from serving.app import create_app
from serving.online import OnlineReader
from sinks.factory import connect_cassandra


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m serving")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FS_API_PORT", "8000")))
    args = parser.parse_args()
    settings = Settings.from_env()
    try:
        live = LiveCatalog(DefinitionStore(settings.definitions_db))
        cluster, session = connect_cassandra(settings)
    except FeatureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not len(live.current()):
        print(f"warning: no feature definitions in {settings.definitions_db}; run `python -m registry.cli apply`",
              file=sys.stderr)  # fmt: skip
    app = create_app(live, OnlineReader(session, settings.cassandra_keyspace))
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
