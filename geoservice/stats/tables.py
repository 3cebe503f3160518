"""Tables of statistics as CSV: every table the stats API answers can be exported the same way."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence


def rows_csv(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """CSV with a header; nested dicts (index components) become ``name_key`` columns, nulls empty cells."""
    flat = [_flatten(r) for r in rows]
    header = list(columns)
    for row in flat:
        header += [c for c in row if c not in header]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def _flatten(row: dict) -> dict:
    out: dict = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out
