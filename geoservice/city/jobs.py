"""A city pack uploaded as a zip: unpacked safely, checked at once, then loaded as a job with progress.

The check runs while the uploader waits (it writes nothing and names every fault); the load runs
in a thread of the process, in its own one transaction, and reports each step to ``pack_jobs`` in
short transactions of their own, so any worker can answer "how far is it" and a failed load leaves
only its job row behind.
"""

from __future__ import annotations

import json
import shutil
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

from geoservice.boundaries.settings import BoundarySettings
from geoservice.errors import InvalidInput, NotFound
from geoservice.infra.database import transaction
from geoservice.settings import RoutingSettings

if TYPE_CHECKING:
    from geoservice.city.load import PackLoad

# city.load and city.pack (geopandas, pandas, pyogrio) are imported by the functions that check and load a
# pack: every server worker imports this module for the upload routes, few ever receive a pack.

MAX_UNPACKED_BYTES = 2 * 1024**3  # a zip bomb stops here; a real city's pack is a few hundred MB at most


@dataclass(frozen=True)
class JobSettings:
    """What a job needs from the app's settings (built once at the edge)."""

    routing: RoutingSettings
    boundaries: BoundarySettings
    home: Path  # one-time passwords go here, mode 0600


def unpack(archive: Path, destination: Path) -> Path:
    """Extract a zipped pack; the directory holding city.toml. Paths leaving ``destination`` are refused."""
    from geoservice.city.pack import CITY_FILE

    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for member in members:
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise InvalidInput(
                        f"the zip holds {member.filename!r}, a path outside the pack; nothing was loaded"
                    )
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise InvalidInput("the zip unpacks to more than 2 GiB; nothing was loaded")
            zipped.extractall(destination)
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"not a zip file: {exc}") from exc
    found = sorted(destination.rglob(CITY_FILE), key=lambda p: len(p.parts))
    if not found:
        raise InvalidInput("the zip holds no city.toml; a pack is a directory with city.toml and one file per layer")
    return found[0].parent


def start_job(engine: Engine, directory: Path, scratch: Path, actor: str, settings: JobSettings, *, draft: bool) -> int:
    """Check the unpacked pack (PackRejected, nothing started, when it has faults), then load it in a thread.

    ``scratch`` (the unpacked upload) belongs to the job from here on and is removed when it ends.
    """
    from geoservice.city.load import PackRejected, check_directory

    _, checked = check_directory(directory, settings.boundaries)
    if not checked.ok:
        raise PackRejected(checked.faults)
    with transaction(engine) as session:
        job_id = session.execute(
            text("INSERT INTO pack_jobs (actor, step) VALUES (:a, 'checked; loading') RETURNING id"), {"a": actor}
        ).scalar_one()
    worker = threading.Thread(
        target=_run, args=(engine, job_id, directory, scratch, settings, draft), name=f"pack-job-{job_id}", daemon=True
    )
    worker.start()
    return job_id


def job_status(engine: Engine, job_id: int) -> dict[str, Any]:
    """A job's progress, or what it loaded, or why it failed."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT id, actor, status, step, steps_done, result, error, created_at, finished_at "
                "FROM pack_jobs WHERE id = :i"
            ),
            {"i": job_id},
        ).first()
    if row is None:
        raise NotFound(f"no city pack job {job_id}")
    return dict(row._mapping)


def _run(engine: Engine, job_id: int, directory: Path, scratch: Path, settings: JobSettings, draft: bool) -> None:
    def step(description: str) -> None:  # each step in a transaction of its own: visible at once
        _update(
            engine, job_id, "UPDATE pack_jobs SET step = :s, steps_done = steps_done + 1 WHERE id = :i", s=description
        )

    from geoservice.city.load import PackRejected, load_pack

    try:
        report = load_pack(
            engine, directory, routing=settings.routing, boundaries=settings.boundaries, draft=draft, step=step,
            passwords_file=settings.home / f"one-time-passwords-job-{job_id}.tsv",
        )  # fmt: skip
    except PackRejected as exc:
        _finish(engine, job_id, "failed", {"faults": [str(f) for f in exc.faults]}, str(exc))
    except Exception as exc:  # the job row is the only place left to say what went wrong
        _finish(engine, job_id, "failed", {}, (str(exc).strip().splitlines() or [type(exc).__name__])[0])
    else:
        _finish(engine, job_id, "done", _result(report), None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _result(report: PackLoad) -> dict[str, Any]:
    return {
        "city": report.city.name, "adcode": report.city.adcode, "version": report.version,
        "published": report.published, "counts": report.counts, "one_time_passwords": report.one_time_passwords,
        "passwords_file": str(report.passwords_file) if report.passwords_file else None,
        "repairs": [str(r) for r in report.repairs],
    }  # fmt: skip


def _finish(engine: Engine, job_id: int, status: str, result: dict[str, Any], error: str | None) -> None:
    _update(
        engine, job_id,
        "UPDATE pack_jobs SET status = :st, result = CAST(:r AS jsonb), error = :e, finished_at = now(), "
        "step = :step WHERE id = :i",
        st=status, step=status, r=json.dumps(result, ensure_ascii=False), e=error,
    )  # fmt: skip


def _update(engine: Engine, job_id: int, sql: str, **values: object) -> None:
    with transaction(engine) as session:
        session.execute(text(sql), {"i": job_id, **values})
