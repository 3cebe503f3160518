"""Which machine and which software produced the figures: printed first and kept in RESULTS.md.

Benchmark numbers are meaningless without it: a core count, a GEOS version or a PostgreSQL major
can each move a ratio more than any change in our code.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import psycopg
import shapely

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Machine:
    """Hardware, OS and library versions, as (label, value) rows."""

    rows: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, str]:
        return dict(self.rows)


def describe(conninfo: str) -> Machine:
    """Everything worth knowing about this run's machine; ``conninfo`` is any bench database."""
    with psycopg.connect(conninfo) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        full = conn.execute("SELECT postgis_full_version()").fetchone()[0]
    postgis = _field(full, "POSTGIS")
    rows = (
        ("CPU", _cpu()),
        ("cores", f"{os.cpu_count()} logical"),
        ("RAM", _ram()),
        ("OS", f"{_os_name()}, kernel {platform.release()}"),
        ("Python", platform.python_version()),
        ("PostgreSQL", pg),
        ("PostGIS", f"{postgis} (GEOS {_field(full, 'GEOS')}, PROJ {_field(full, 'PROJ')})"),
        ("shapely", f"{shapely.__version__} (GEOS {shapely.geos_version_string})"),
        ("geopandas", _version("geopandas")),
        ("numpy / scipy / pyproj", " / ".join(_version(p) for p in ("numpy", "scipy", "pyproj"))),
        ("FastAPI / uvicorn", f"{_version('fastapi')} / {_version('uvicorn')} ({_uvicorn_stack()})"),
        ("wrk", _wrk()),
        ("code", f"commit {_git()}"),
    )
    return Machine(rows)


def _cpu() -> str:
    text = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)
    virtual = " (virtual machine)" if re.search(r"^flags\s*:.*\bhypervisor\b", text, re.M) else ""
    name = model.group(1).strip() if model else platform.processor() or "unknown"
    return f"{name} @ {float(mhz.group(1)) / 1000:.2f} GHz{virtual}" if mhz else name + virtual


def _ram() -> str:
    found = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return f"{int(found.group(1)) / 1024**2:.1f} GiB" if found else "unknown"


def _os_name() -> str:
    found = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.M)
    return found.group(1) if found else platform.system()


def _field(full: str, name: str) -> str:
    found = re.search(rf'\b{name}="([^"]+)"', full)
    return found.group(1).split()[0] if found else "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _uvicorn_stack() -> str:
    """What uvicorn's ``auto`` settings pick: httptools and uvloop when installed, else h11 and asyncio."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http}, {loop}"


def _git() -> str:
    """The commit measured, and whether the tree had changes (read-only: no index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=10)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=REPO, env=env, timeout=10)  # fmt: skip
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def _wrk() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return "not installed"
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
