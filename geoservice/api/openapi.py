"""The OpenAPI document tells the truth about errors: every 4xx/5xx is an RFC 7807 problem.

FastAPI documents its own validation-error body (``application/json``) for 422; the app answers
``application/problem+json`` for every error instead (``geoservice.api.problems``). Clients generate
code from this document and schemathesis checks answers against it, so the document is patched
once, when first built: 422 and a ``4XX`` default point at the ``Problem`` schema.

Forms are described as they are read: a required form field sent empty counts as missing
(FastAPI reads an empty form value as absent), so it gets ``minLength: 1``, and an optional one
loses its ``null`` (a form cannot send one: the field is left out); an uploaded file is
``format: binary`` besides OpenAPI 3.1's ``contentMediaType``, which generators of multipart
requests (schemathesis among them) need to send a file rather than a text field.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from geoservice.api.problems import PROBLEM

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 7807 problem details; some problems add members (errors, nearest_grid, allowed, …)",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["title", "status", "detail"],
}


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with a builder that documents problems (cached like FastAPI's)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = PROBLEM_SCHEMA
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            _describe_forms(document)
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    if "422" in responses:
                        responses["422"] = problem_response("Invalid request: each field that is wrong, and why")
                    responses.setdefault("4XX", problem_response("A problem the caller can act on"))
                    responses.setdefault("5XX", problem_response("The service or its database is unavailable"))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _describe_forms(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for path in document.get("paths", {}).values():
        for operation in path.values():
            content = (operation.get("requestBody") or {}).get("content", {})
            for media_type in FORMS:
                ref = content.get(media_type, {}).get("schema", {}).get("$ref", "")
                form = schemas.get(ref.rsplit("/", 1)[-1])
                if form is None:
                    continue
                properties = form.get("properties", {})
                for field in properties.values():
                    # A form has no null: an optional field is left out, never sent as "null".
                    branches = field.get("anyOf")
                    if branches and {"type": "null"} in branches:
                        kept = [b for b in branches if b != {"type": "null"}]
                        del field["anyOf"]
                        field.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
                for name in form.get("required", []):
                    field = properties.get(name, {})
                    if field.get("type") == "string" and "contentMediaType" not in field:
                        field.setdefault("minLength", 1)
                _mark_files(form)


def _mark_files(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("contentMediaType") == "application/octet-stream":
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_files(value)
    elif isinstance(node, list):
        for value in node:
            _mark_files(value)
