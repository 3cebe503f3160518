"""``/metrics``: Prometheus exposition of request counts and latencies, the router version and events by state.

Open to every caller, like ``/healthz``: it holds totals only — no personal data, no figure per
region — and Prometheus scrapers carry no user token. Restrict it at the reverse proxy if even city
totals must stay inside.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from geoservice.auth.policy import EVERYONE, policy

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, **policy(EVERYONE))
def metrics(request: Request) -> Response:
    """Every metric of this worker, in Prometheus' text format."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
