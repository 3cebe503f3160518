"""Service attributes (GeoReport v2 service definitions): what a category asks of a reporter.

A category may carry a list of attribute definitions (``categories.attributes``, loaded from the
``attributes`` column of the city pack's ``categories.csv`` as JSON), e.g. 占道经营's "什么物品"
as a single-value list. Each definition is GeoReport's: ``code``, ``datatype`` (string, number,
datetime, text, singlevaluelist, multivaluelist), ``required``, ``description``, ``order``,
``datatype_description``, ``variable`` and, for lists, ``values`` of ``{key, name}``. Services with
attributes are listed with ``metadata: true`` and their definition is served; a POST's
``attribute[code]`` answers are checked here against the definition and stored with the event.
Pure functions: the checks raise ``AttributeProblem`` with a sentence naming the attribute.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LISTS = ("singlevaluelist", "multivaluelist")
MAX_ANSWER = 2000


class AttributeProblem(ValueError):
    """A definition or an answer that cannot be used; the message names the attribute."""


def checked_definitions(raw: Any) -> list[dict[str, Any]]:
    """A category's definitions, completed with GeoReport's defaults, or ``AttributeProblem``."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise AttributeProblem("attributes must be a JSON list of definitions")
    seen: set[str] = set()
    definitions = []
    for k, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise AttributeProblem(f"attribute {k} is not an object")
        code = item.get("code")
        if not isinstance(code, str) or not code.strip() or len(code) > 80 or not code.replace("_", "").isalnum():
            raise AttributeProblem(f"attribute {k}: code must be letters, digits and _ (at most 80)")
        if code in seen:
            raise AttributeProblem(f"attribute {code!r} is defined twice")
        seen.add(code)
        datatype = item.get("datatype", "string")
        if datatype not in DATATYPES:
            raise AttributeProblem(f"attribute {code!r}: datatype must be one of {', '.join(DATATYPES)}")
        values = item.get("values") or []
        if datatype in LISTS and not values:
            raise AttributeProblem(f"attribute {code!r}: a {datatype} needs values [{{key, name}}, …]")
        if not all(isinstance(v, dict) and str(v.get("key", "")).strip() and v.get("name") for v in values):
            raise AttributeProblem(f"attribute {code!r}: every value needs a key and a name")
        definitions.append({
            "variable": bool(item.get("variable", True)),
            "code": code,
            "datatype": datatype,
            "required": bool(item.get("required", False)),
            "datatype_description": item.get("datatype_description"),
            "order": int(item.get("order", k)),
            "description": str(item.get("description") or code),
            "values": [{"key": str(v["key"]), "name": str(v["name"])} for v in values] if datatype in LISTS else [],
        })  # fmt: skip
    return sorted(definitions, key=lambda d: d["order"])


def checked_answers(definitions: list[dict[str, Any]], given: dict[str, list[str]]) -> dict[str, Any]:
    """The reporter's answers (``attribute[code]`` → its values) as stored: typed, complete, or a problem."""
    by_code = {d["code"]: d for d in definitions}
    unknown = sorted(set(given) - set(by_code))
    if unknown:
        known = ", ".join(by_code) or "none"
        raise AttributeProblem(f"attribute {', '.join(unknown)} is not an attribute of this service; it has: {known}")
    answers: dict[str, Any] = {}
    for code, definition in by_code.items():
        values = [v.strip() for v in given.get(code, []) if v.strip()]
        if not values:
            if definition["required"] and definition["variable"]:
                raise AttributeProblem(f"attribute[{code}] ({definition['description']}) is required")
            continue
        answers[code] = _answer(definition, values)
    return answers


def _answer(definition: dict[str, Any], values: list[str]) -> Any:
    code, datatype = definition["code"], definition["datatype"]
    if any(len(v) > MAX_ANSWER or any(ord(c) < 32 and c not in "\t\n\r" for c in v) for v in values):
        raise AttributeProblem(f"attribute[{code}] is longer than {MAX_ANSWER} characters or holds control characters")
    if datatype == "multivaluelist":
        keys = {v["key"] for v in definition["values"]}
        wrong = [v for v in values if v not in keys]
        if wrong:
            raise AttributeProblem(f"attribute[{code}]: {', '.join(wrong)} not among {', '.join(sorted(keys))}")
        return sorted(set(values))
    if len(values) > 1:
        raise AttributeProblem(f"attribute[{code}] takes one value, not {len(values)}")
    value = values[0]
    if datatype == "singlevaluelist":
        keys = [v["key"] for v in definition["values"]]
        if value not in keys:
            raise AttributeProblem(f"attribute[{code}]: {value!r} is not among {', '.join(keys)}")
        return value
    if datatype == "number":
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise AttributeProblem(f"attribute[{code}] must be a number, not {value!r}")
        return number
    if datatype == "datetime":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
        except ValueError:
            raise AttributeProblem(f"attribute[{code}] must be an ISO 8601 time, not {value!r}") from None
    return value
