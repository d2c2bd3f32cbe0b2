"""HTTP front of the schema store, in the REST dialect that Confluent's clients speak."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from registry.schema_store import InvalidSchemaError, SchemaNotFoundError, SchemaStore

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_BODY_BYTES = 1 << 20


def _reply(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return _reply({"error_code": code, "message": message}, status)


async def _schema_from(request: Request) -> str | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, 41301, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(422, 42201, "request body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        return _error(422, 42201, "request body needs a string field `schema`")
    if body.get("schemaType", "AVRO") != "AVRO":
        return _error(422, 42201, f"schemaType {body['schemaType']!r} is not supported; only AVRO")
    return str(body["schema"])


def create_schema_registry_app(store: SchemaStore) -> FastAPI:
    app = FastAPI(title="feature-store schema registry", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        return _reply({"status": "ok"})

    @app.get("/subjects")
    def subjects() -> JSONResponse:
        return _reply(store.subjects())

    @app.get("/subjects/{subject}/versions")
    def versions(subject: str) -> JSONResponse:
        try:
            return _reply(store.versions(subject))
        except SchemaNotFoundError as exc:
            return _error(404, 40401, str(exc))

    @app.get("/subjects/{subject}/versions/{version}")
    def version(subject: str, version: str) -> JSONResponse:
        if version != "latest" and not version.lstrip("-").isdigit():
            return _error(422, 42202, f"version {version!r} is not a number or 'latest'")
        try:
            found = store.version(subject, version)
        except SchemaNotFoundError as exc:
            code = 40401 if "subject" in str(exc) and "version" not in str(exc) else 40402
            return _error(404, code, str(exc))
        return _reply({"subject": subject, "version": found.version, "id": found.id, "schema": found.schema})

    @app.post("/subjects/{subject}/versions")
    async def register(subject: str, request: Request) -> JSONResponse:
        schema = await _schema_from(request)
        if isinstance(schema, JSONResponse):
            return schema
        try:
            registered = store.register(subject, schema)
        except InvalidSchemaError as exc:
            return _error(422, 42201, str(exc))
        return _reply({"id": registered.id})

    @app.post("/subjects/{subject}")
    async def lookup(subject: str, request: Request) -> JSONResponse:
        schema = await _schema_from(request)
        if isinstance(schema, JSONResponse):
            return schema
        try:
            found = store.lookup(subject, schema)
        except InvalidSchemaError as exc:
            return _error(422, 42201, str(exc))
        except SchemaNotFoundError as exc:
            return _error(404, 40403, str(exc))
        return _reply({"subject": subject, "version": found.version, "id": found.id, "schema": found.schema})

    @app.get("/schemas/ids/{schema_id}")
    def by_id(schema_id: int) -> JSONResponse:
        try:
            return _reply({"schema": store.by_id(schema_id)})
        except SchemaNotFoundError as exc:
            return _error(404, 40403, str(exc))

    return app
