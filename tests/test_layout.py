"""The layout's import rules, checked on the source: no module imports a package upstream of it.

The top-level packages point one way (``geoservice`` → ``etl``, ``tiles``, ``webmap`` → ``layers``),
and inside ``geoservice`` each room may use only the rooms listed before it in ``ROOMS`` (or
itself). docs/DESIGN.md's "Where things live" draws the same order; a new module that breaks it
fails here with the offending import named.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]

# What each top-level package may import of ours (besides itself).
TOP_LEVEL = {
    "layers": set(),
    "etl": {"layers"},
    "tiles": {"layers"},
    "webmap": {"layers"},
    "geoservice": {"layers", "etl", "tiles", "webmap"},
}

# The rooms of ``geoservice``, lowest first; a module may import its own room or an earlier one.
# ``boundaries.versions`` (which version is in force) sits below the router, which reads it; the
# rest of ``boundaries`` (drafts, validation, impact, publishing) builds routers, so it sits above.
ROOMS: list[tuple[str, ...]] = [
    ("settings", "errors", "inputs"),
    ("infra",),
    ("auth",),
    ("boundaries.versions", "boundaries.units", "boundaries.geometry", "boundaries.settings"),
    ("routing",),
    ("boundaries",),
    ("events", "coverage", "open311", "notifications"),
    ("stats", "forces"),
    ("media",),
    ("field",),
    ("city",),
    ("api",),
    ("app",),
    ("cli",),
]


def _modules(package: str) -> list[tuple[str, Path]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's scripts are loaded by path, not imported
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found.append((dotted, path))
    return found


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _room(dotted: str) -> int | None:
    rest = dotted.removeprefix("geoservice.")
    best: tuple[int, int] | None = None
    for rank, room in enumerate(ROOMS):
        for prefix in room:
            if (rest == prefix or rest.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    return None if best is None else best[0]


def test_top_level_packages_import_only_downstream():
    wrong = []
    for package, allowed in TOP_LEVEL.items():
        for module, path in _modules(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in TOP_LEVEL and top != package and top not in allowed:
                    wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_every_geoservice_module_has_a_room():
    homeless = [m for m, _ in _modules("geoservice") if m != "geoservice" and _room(m) is None]
    assert not homeless, f"add these to ROOMS (and to docs/DESIGN.md): {homeless}"


def test_geoservice_rooms_import_only_earlier_rooms():
    wrong = []
    for module, path in _modules("geoservice"):
        mine = _room(module)
        for name in _imports(path):
            if not name.startswith("geoservice."):
                continue
            theirs = _room(name) if _room(name) is not None else _room(name.rsplit(".", 1)[0])
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{module} ({'/'.join(ROOMS[mine])}) imports {name} ({'/'.join(ROOMS[theirs])})")
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_an_upstream_import(tmp_path):
    # The checker itself: a domain module importing the API must be reported.
    module = tmp_path / "bad.py"
    module.write_text("from geoservice.api.problems import ProblemError\n", encoding="utf-8")
    assert _imports(module) == ["geoservice.api.problems.ProblemError"]
    assert _room("geoservice.api.problems.ProblemError") > _room("geoservice.events.report")
