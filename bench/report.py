"""Tables for the console (rich) and for ``bench/RESULTS.md`` (Markdown), from one description.

A benchmark module returns ``Table`` objects; this module neither measures nor judges, it only
lays out what it is given, so every suite (router today, tiles later) prints the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from bench.machine import Machine

COLUMNS = ("benchmark", "method", "result", "ratio", "target", "verdict")
VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red"}


@dataclass
class Table:
    """One table: rows of ``COLUMNS`` cells, then numbered notes."""

    title: str
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, benchmark: str, method: str, result: str, ratio: str = "", target: str = "", verdict: str = ""
    ) -> None:
        self.rows.append((benchmark, method, result, ratio, target, verdict))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_machine(console: Console, machine: Machine) -> None:
    table = RichTable(title="machine", show_header=False, title_justify="left")
    for label, value in machine.rows:
        table.add_row(label, escape(value))
    console.print(table)


def print_table(console: Console, table: Table) -> None:
    rich = RichTable(title=table.title, title_justify="left", show_lines=False)
    for name in COLUMNS:
        rich.add_column(name, overflow="fold", justify="right" if name in ("result", "ratio") else "left")
    grouped = _grouped(table.rows)
    for k, cells in enumerate(grouped):
        cells = [escape(c) for c in cells]
        if cells[5] in VERDICT_STYLE:
            cells[5] = f"[{VERDICT_STYLE[cells[5]]}]{cells[5]}[/]"
        last_of_group = k + 1 < len(grouped) and grouped[k + 1][0] != ""
        rich.add_row(*cells, end_section=last_of_group)
    console.print(rich)
    for k, note in enumerate(table.notes, 1):
        console.print(f"  [dim]({k}) {escape(note)}[/]", highlight=False)
    console.print()


def markdown(tables: list[Table], machine: Machine, command: str, started: datetime, minutes: float) -> str:
    """The whole of RESULTS.md."""
    out = [
        "# Benchmark results",
        "",
        f"Run on {started:%Y-%m-%d %H:%M %Z} ({minutes:.1f} min), with:",
        "",
        "```",
        command,
        "```",
        "",
        "Overwritten by every full run (`--quick` runs do not write it). Ratios are the router's speed",
        "over the other method's, measured side by side in the same run.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {label} | {_md(value)} |" for label, value in machine.rows),
        "",
    ]
    for table in tables:
        out += [f"## {table.title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in _grouped(table.rows)]
        out += [""] + [f"{k}. {_md(note)}" for k, note in enumerate(table.notes, 1)] + [""]
    return "\n".join(out)


def write_results(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _grouped(rows: list[tuple[str, ...]]) -> list[list[str]]:
    """Rows with the benchmark name only where it changes: groups read at a glance."""
    out, previous = [], None
    for row in rows:
        cells = list(row)
        cells[0], previous = ("" if cells[0] == previous else cells[0]), cells[0]
        out.append(cells)
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
