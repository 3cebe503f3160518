"""``/v1/route/explain``: which department an event here would go to, and why each rule won or lost."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from geoservice.api.locate import Audience, answer_of, locate_router
from geoservice.api.problems import ProblemError
from geoservice.auth.policy import STAFF, policy
from geoservice.inputs import Name
from layers.crs import point_to_wgs84

router = APIRouter(prefix="/v1/route", tags=["routing"])


@router.get("/explain", **policy(STAFF))
def explain_route(
    request: Request,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    category: Annotated[Name, Query(min_length=1, max_length=80, description="category code, e.g. public_order.fight")],
    crs: Annotated[Name, Query(description="wgs84, cgcs2000, gcj02, bd09 or EPSG:n")] = "wgs84",
) -> dict[str, Any]:
    """Every candidate rule for this category and place, the winner first."""
    router_ = locate_router(request, None)
    if not any(category == r.category_code or category.startswith(r.category_code + ".") for r in router_.rules):
        known = sorted({r.category_code for r in router_.rules})
        raise ProblemError(422, "Unknown category", f"no routing rule knows {category!r}; known: {', '.join(known)}")
    x, y = point_to_wgs84(lon, lat, crs)
    location, verdicts = router_.explain(x, y, category)
    phone = request.app.state.operations.public_service_phone
    answer = answer_of(location, router_, {"lon": lon, "lat": lat, "crs": crs}, Audience(True, phone))
    if "error" in answer:
        raise ProblemError(**answer["error"])
    winner = next((v for v in verdicts if v.won), None)
    return {
        "location": answer,
        "department": winner.rule.department_code if winner else None,
        "rule_id": winner.rule.id if winner else None,
        "candidates": [
            {
                "rule_id": v.rule.id,
                "department": v.rule.department_code,
                "description": v.rule.description,
                "matched": v.matched,
                "won": v.won,
                "specificity": v.rule.specificity,
                "priority": v.rule.priority,
                "reasons": list(v.reasons),
            }  # fmt: skip
            for v in verdicts
        ],
    }
