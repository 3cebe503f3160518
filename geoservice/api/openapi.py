"""The OpenAPI document tells the truth about errors: every 4xx/5xx is an RFC 7807 problem.

FastAPI documents its own validation-error body (``application/json``) for 422; the app answers
``application/problem+json`` for every error instead (``geoservice.api.problems``). Clients generate
code from this document and schemathesis checks answers against it, so the document is patched
once, when first built: 422 and a ``4XX`` default point at the ``Problem`` schema.
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
