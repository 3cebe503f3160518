"""场所码: a QR code per key place, a printable sheet of them per community, and what a scan shows.

The code holds only a link to the place's page (``<base>/p/<code>``), so a printed sheet stays
right when the place's grid, worker or officer change: the page answers from the data in force.
QR codes are made with segno (error correction M: a sheet on a wall gets dirty), the sheet with
reportlab in A4, twelve codes a page, names in Chinese with the PDF standard CID font STSong-Light
(no font file to ship or embed).
"""

from __future__ import annotations

import io
from typing import Any

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas
from sqlalchemy import text
from sqlalchemy.orm import Session

from geoservice.errors import NotFound

CHINESE_FONT = "STSong-Light"
COLUMNS, ROWS = 3, 4
PLACE_COLUMNS = (
    "kp.code, kp.name, kp.type, kp.owner, kp.phone, kp.risk_level, kp.inspection_cycle_days, "
    "ST_X(ST_PointOnSurface(kp.geom)) AS lon, ST_Y(ST_PointOnSurface(kp.geom)) AS lat"
)
RISK_NAMES = {"low": "低", "medium": "中", "high": "高"}


def place_url(base_url: str, code: str) -> str:
    """The link a place's code holds."""
    return f"{base_url.rstrip('/')}/p/{code}"


def place_of(session: Session, code: str) -> dict[str, Any]:
    """A key place by code, with the point its page and reports use (a point on its surface)."""
    row = session.execute(text(f"SELECT {PLACE_COLUMNS} FROM key_places kp WHERE kp.code = :code"),
                          {"code": code}).first()  # fmt: skip
    if row is None:
        raise NotFound(f"there is no key place {code!r}", title="No such place")
    return dict(row._mapping)


def places_in_community(session: Session, version_id: int, community_code: str) -> list[dict[str, Any]]:
    """The key places whose point lies in a grid of the community (version in force), by code."""
    rows = session.execute(
        text(
            f"SELECT {PLACE_COLUMNS} FROM key_places kp WHERE EXISTS (SELECT 1 FROM grids g "
            "WHERE g.version_id = :version AND g.community_code = :community "
            "AND ST_Covers(g.geom, ST_PointOnSurface(kp.geom))) ORDER BY kp.code"
        ),
        {"version": version_id, "community": community_code},
    )
    return [dict(r._mapping) for r in rows]


def qr_png(url: str, scale: int = 8) -> bytes:
    """The QR code of ``url`` as a PNG (black on white, a quiet zone of four modules)."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def sheet_pdf(title: str, places: list[dict[str, Any]], base_url: str) -> bytes:
    """An A4 sheet (as many pages as needed) of the places' codes: QR, name, code, link, to cut and post."""
    if CHINESE_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CHINESE_FONT))
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, pageCompression=1)
    pdf.setTitle(title)
    width, height = A4
    margin, header = 12 * mm, 18 * mm
    cell_w, cell_h = (width - 2 * margin) / COLUMNS, (height - 2 * margin - header) / ROWS
    per_page = COLUMNS * ROWS
    pages = max(1, -(-len(places) // per_page))
    for page in range(pages):
        pdf.setFont(CHINESE_FONT, 14)
        pdf.drawString(margin, height - margin - 8 * mm, f"{title} 场所码  第 {page + 1}/{pages} 页")
        for k, place in enumerate(places[page * per_page:(page + 1) * per_page]):
            column, row = k % COLUMNS, k // COLUMNS
            x = margin + column * cell_w
            y = height - margin - header - (row + 1) * cell_h
            url = place_url(base_url, place["code"])
            side = min(cell_w, cell_h) - 22 * mm
            pdf.drawImage(ImageReader(io.BytesIO(qr_png(url, 4))), x + (cell_w - side) / 2, y + 16 * mm, side, side)
            pdf.setFont(CHINESE_FONT, 10)
            pdf.drawCentredString(x + cell_w / 2, y + 11 * mm, str(place["name"])[:24])
            pdf.setFont("Helvetica", 6.5)
            pdf.drawCentredString(x + cell_w / 2, y + 7 * mm, str(place["code"]))
            pdf.drawCentredString(x + cell_w / 2, y + 4 * mm, url[:70])
            pdf.setStrokeGray(0.8)
            pdf.rect(x + 1 * mm, y + 1 * mm, cell_w - 2 * mm, cell_h - 2 * mm)  # where to cut
        pdf.showPage()
    pdf.save()
    return out.getvalue()
