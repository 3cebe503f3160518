"""GeoReport v2's two formats: the same lists of records as JSON or as XML (the spec's default).

Every resource is a list of flat records (a service, a request, a receipt, an error) with one
nested list at most (a definition's attributes and their values, a receipt's possible duplicates).
XML wraps the list in the spec's root element and each record in its element
(``<service_requests><request>…``, ``<errors><error>…``); a nested list's items take the
singular of its name. ``None`` is an empty element, booleans are ``true``/``false``, as the
spec's examples write them. Pure functions: the route decides the root and the status.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

JSON = "application/json"
XML = "text/xml"  # the GeoReport examples' type; clients also accept application/xml
FORMATS = ("xml", "json")
ROOTS = {  # resource → (root element, record element)
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}
SINGULAR = {"attributes": "attribute", "values": "value", "possible_duplicates": "possible_duplicate"}


def media_type(fmt: str) -> str:
    """The Content-Type of a format."""
    return XML if fmt == "xml" else JSON


def render(records: list[dict[str, Any]] | dict[str, Any], fmt: str, resource: str) -> bytes:
    """``records`` in ``fmt``; ``resource`` names the XML root (a dict is a single-root document)."""
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, default=str).encode()
    if isinstance(records, dict):  # a service definition: one record is the document
        root = ElementTree.Element(resource)
        _fill(root, records)
    else:
        root_name, item_name = ROOTS[resource]
        root = ElementTree.Element(root_name)
        for record in records:
            _fill(ElementTree.SubElement(root, item_name), record)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _fill(element: ElementTree.Element, record: dict[str, Any]) -> None:
    for name, value in record.items():
        child = ElementTree.SubElement(element, name)
        if isinstance(value, list):
            item_name = SINGULAR.get(name, "item")
            for item in value:
                if isinstance(item, dict):
                    _fill(ElementTree.SubElement(child, item_name), item)
                else:
                    ElementTree.SubElement(child, item_name).text = _text(item)
        elif isinstance(value, dict):
            _fill(child, value)
        else:
            child.text = _text(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
