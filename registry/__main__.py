"""Run the schema registry: ``python -m registry [--host H] [--port P] [--db PATH]``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from registry.schema_api import create_schema_registry_app
from registry.schema_store import SchemaStore


def main() -> None:
    state = Path(os.environ.get("FS_STATE_DIR", Path(__file__).resolve().parent.parent / ".state"))
    parser = argparse.ArgumentParser(prog="python -m registry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FS_REGISTRY_PORT", "8081")))
    parser.add_argument("--db", type=Path, default=state / "registry" / "schemas.db")
    args = parser.parse_args()
    app = create_schema_registry_app(SchemaStore(args.db))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
