"""What text, links and times may come in: the one guard for every name, note, link and zoned time.

PostgreSQL cannot store a NUL in text, and control characters in a name (an escape sequence, a
carriage return) forge lines in logs and exports and confuse whoever reads them later, so they are
refused where text comes in, with the field named — never left to fail in the database as a 500.
Free text (a description, a note) may keep its line breaks and tabs; a name keeps none.

The same checks serve two doors: the ``Annotated`` types below for request models (pydantic turns
their ``ValueError`` into a 422 naming the field) and ``check_text`` / ``check_http_url`` for domain
functions that are also reached without a model (Open311's form fields, the CLI).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from geoservice.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc: C0, DEL and C1
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Cc without \t \n \r
_BARE_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d*)?([eE][-+]?\d+)?\s*$")


class RequestBody(BaseModel):
    """A write route's body: a field it does not take (``status``, ``id`` …) is a 422, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be taken as text (a control character, named by code point), or None."""
    found = (_CONTROL_BUT_LAYOUT if multiline else _CONTROL).search(value)
    if found is None:
        return None
    kept = "; line breaks and tabs are kept in free text" if multiline else ""
    return f"contains the control character U+{ord(found.group()):04X} at position {found.start()}{kept}"


def check_text(name: str, value: str | None, *, multiline: bool = False) -> None:
    """Refuse ``value`` (InvalidInput naming ``name``) when it holds a control character."""
    if value is not None and (why := text_problem(value, multiline=multiline)) is not None:
        raise InvalidInput(f"{name} {why}", title="Invalid text")


def http_url_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute http(s) link (``javascript:``, ``data:``, relative …), or None."""
    if (why := text_problem(value)) is not None:
        return why
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        return f"is not a link ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "must be an absolute http:// or https:// link"
    return None


def check_http_url(name: str, value: str) -> None:
    """Refuse a link a browser would run or could not fetch; photos and media are shown to staff."""
    if (why := http_url_problem(value)) is not None:
        raise InvalidInput(f"{name} {why}", title="Invalid link")


def _single_line(value: str) -> str:
    if (why := text_problem(value)) is not None:
        raise ValueError(why)
    return value


def _free_text(value: str) -> str:
    if (why := text_problem(value, multiline=True)) is not None:
        raise ValueError(why)
    return value


def _http_url(value: str) -> str:
    if (why := http_url_problem(value)) is not None:
        raise ValueError(why)
    return value


def _not_a_number(value: Any) -> Any:
    """A zoned time is written out (RFC 3339); pydantic would read 1767225600 as Unix seconds in UTC."""
    if isinstance(value, int | float) or (isinstance(value, str) and _BARE_NUMBER.match(value)):
        raise ValueError("a time is written with its zone, e.g. 2026-11-24T09:30:00+08:00, not as a number")
    return value


# The same rules as JSON Schema patterns, published in the OpenAPI document only (the validators
# above check, and say why): a client generated from the document then knows what is refused.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
FREE_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"

Name = Annotated[str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": NAME_PATTERN})]
"""A name, code, key or any one-line text: no control characters at all."""

FreeText = Annotated[str, AfterValidator(_free_text), Field(json_schema_extra={"pattern": FREE_TEXT_PATTERN})]
"""A description or note: line breaks and tabs allowed, other control characters refused."""

# scheme, then a host (no brackets: urlsplit refuses a half IPv6 literal), then the rest; no control characters
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\[\]\x00-\x1f\x7f-\x9f]+([/?#][^\x00-\x1f\x7f-\x9f]*)?$"

HttpUrl = Annotated[str, AfterValidator(_http_url), Field(json_schema_extra={"pattern": HTTP_URL_PATTERN})]
"""An absolute http(s) link, kept as given (pydantic's own ``HttpUrl`` would rewrite it)."""

ZonedTime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A time in RFC 3339 form; routes that need the zone say so in their own words (a bare number is refused)."""

AwareTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""A time that must carry its zone, checked by the model."""
