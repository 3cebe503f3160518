"""场所码 over HTTP: a place's QR code, a community's printable sheet, and the page a scan opens.

The page (``/p/{code}``) is public — whoever scans a code on a wall — and shows what the place is,
where it is (grid, community, station) and who is responsible, with a form to report a problem
there (the anonymous public may report, rate-limited, as at ``POST /v1/events``). The place's grid
worker, signed in to the phone app on the same phone, is also offered "record an inspection here"
(the page asks ``/v1/me/places/{code}`` with the app's token; the server page itself stays public). The QR code and
the sheet are for staff; a sheet only for a community in the caller's region.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.api.deps import SessionDep
from geoservice.api.locate import Audience, answer_of, locate_router
from geoservice.auth.policy import EVERYONE, allow, policy
from geoservice.auth.scope import region_scope
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import NoVersionInForce, current_version_id
from geoservice.errors import NotFound
from geoservice.field.place_codes import RISK_NAMES, place_of, place_url, places_in_community, qr_png, sheet_pdf
from geoservice.field.settings import PlaceCodeSettings
from layers.models import Role

router = APIRouter(tags=["place codes"])

ANYONE = allow(EVERYONE)
PRINTERS = allow(Role.admin, Role.supervisor, Role.dispatcher, Role.grid_worker)
PLACE_CODE = Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.\-]+$", description="key place code")
COMMUNITY = Path(pattern=r"^[0-9]{12}$", description="community code")


def _settings(request: Request) -> PlaceCodeSettings:
    return request.app.state.place_code_settings


def _base_url(request: Request) -> str:
    return _settings(request).base_url or str(request.base_url).rstrip("/")


@router.get("/v1/places/{code}/qr.png", response_class=Response, responses={200: {"content": {"image/png": {}}}},
            **policy(PRINTERS))  # fmt: skip
def get_place_qr(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(PRINTERS)],
    code: Annotated[str, PLACE_CODE],
) -> Response:  # fmt: skip
    """The place's QR code: a link to its page."""
    place = place_of(session, code)
    return Response(qr_png(place_url(_base_url(request), place["code"])), media_type="image/png")


@router.get("/v1/place-codes/{community_code}.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}}, **policy(PRINTERS))  # fmt: skip
def get_place_sheet(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(PRINTERS)],
    community_code: Annotated[str, COMMUNITY],
) -> Response:  # fmt: skip
    """A printable A4 sheet of the QR codes of every key place in a community of your region."""
    version = _version(session)
    prefix = region_scope(principal)
    name = session.execute(
        text("SELECT name FROM regions WHERE version_id = :v AND code = :c AND level::text = 'community'"),
        {"v": version, "c": community_code},
    ).scalar()
    outside = prefix is not None and not (community_code.startswith(prefix) or prefix.startswith(community_code))
    if name is None or outside:
        raise NotFound(f"there is no community {community_code} in your region", title="No such community")
    places = places_in_community(session, version, community_code)
    pdf = sheet_pdf(str(name), places, _base_url(request))
    headers = {"Content-Disposition": f'attachment; filename="place-codes-{community_code}.pdf"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


@router.get("/p/{code}", response_class=HTMLResponse, **policy(ANYONE))
def get_place_page(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(ANYONE)],
    code: Annotated[str, PLACE_CODE],
) -> HTMLResponse:  # fmt: skip
    """The page a scanned code opens: what, where, who is responsible, and "report a problem here"."""
    place = place_of(session, code)
    router_ = locate_router(request, None)
    staff = principal.role != Role.public or _settings(request).page_shows_team
    audience = Audience(staff, request.app.state.operations.public_service_phone)
    where = answer_of(router_.locate(place["lon"], place["lat"]), router_, {}, audience)
    categories = session.execute(
        text("SELECT c.code, c.name, p.name AS parent FROM categories c JOIN categories p ON p.code = c.parent_code "
             "ORDER BY p.code, c.code")
    ).all()  # fmt: skip
    return HTMLResponse(_page(place, where, categories))


def _version(session: Session) -> int:
    version = current_version_id(session)
    if version is None:
        raise NoVersionInForce("no boundary version is in force yet: publish one first")
    return version


def _page(place: dict[str, Any], where: dict[str, Any], categories: list[Any]) -> str:
    e = html.escape
    grid = where.get("grid") or {}
    rows = [
        ("类型", place["type"]),
        ("风险等级", RISK_NAMES.get(place["risk_level"] or "", "—")),
        ("所在网格", grid.get("name", "—")),
        ("社区", (where.get("community") or {}).get("name", "—")),
        ("派出所", (where.get("station") or {}).get("name", "—")),
        ("网格员", "、".join(grid.get("workers") or []) or "—"),
        ("民警", grid.get("officer") or "—"),
        ("服务电话", where.get("service_phone", "")),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    options = "".join(f'<option value="{e(c.code)}">{e(c.parent)} · {e(c.name)}</option>' for c in categories)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(place["name"])} · 场所码</title>
<style>body{{font-family:sans-serif;margin:1em;max-width:40em}}th{{text-align:left;padding-right:1em;color:#555}}
select,textarea,button{{width:100%;font-size:1em;margin:.3em 0}}#result{{margin-top:.5em}}
.button{{display:block;text-align:center;background:#b71c1c;color:#fff;padding:.5em;border-radius:4px;text-decoration:none}}</style></head>
<body><h1 id="name">{e(place["name"])}</h1>
<table id="facts">{table}</table>
<h2>在此报告问题</h2>
<form id="report" data-lon="{place["lon"]}" data-lat="{place["lat"]}">
<select name="category" required>{options}</select>
<textarea name="description" rows="3" maxlength="2000" placeholder="请描述问题" required></textarea>
<button type="submit">提交</button></form><div id="result" role="status"></div>
<section id="inspect" hidden><h2>场所巡查</h2><p id="inspect-due"></p>
<a id="inspect-link" class="button" href="/m?place={e(place["code"])}">在此记录巡查</a></section>
<script>
// The place's grid worker, signed in to the phone app (/m) on this phone, may record an inspection here.
(async () => {{
  const token = localStorage.getItem("m.token");
  if (!token) return;
  try {{
    const r = await fetch("/v1/me/places/" + encodeURIComponent({json.dumps(place["code"])}),
                          {{headers: {{Authorization: "Bearer " + token}}}});
    if (!r.ok) return;
    const a = await r.json();
    if (!a.responsible || !a.inspection) return;
    const due = a.inspection.due_at ? new Date(a.inspection.due_at).toLocaleString("zh-CN",
      {{timeZone: "Asia/Shanghai", dateStyle: "short", timeStyle: "short"}}) : "从未巡查";
    document.getElementById("inspect-due").textContent = a.inspection.duty_name + " · 到期 " + due;
    document.getElementById("inspect").hidden = false;
  }} catch (err) {{ /* offline or signed out: the page stays the public one */ }}
}})();
document.getElementById("report").addEventListener("submit", async (ev) => {{
  ev.preventDefault();
  const f = ev.target, out = document.getElementById("result");
  const body = {{lon: Number(f.dataset.lon), lat: Number(f.dataset.lat), category: f.category.value,
                description: f.description.value, source: "public",
                idempotency_key: "place-" + Date.now() + "-" + Math.random().toString(36).slice(2)}};
  const r = await fetch("/v1/events", {{method: "POST", headers: {{"Content-Type": "application/json"}},
                                        body: JSON.stringify(body)}});
  const a = await r.json();
  out.textContent = r.ok ? "已提交，编号 " + a.id : "未能提交：" + (a.detail || r.status);
}});
</script></body></html>"""
