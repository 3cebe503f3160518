"""``/v1/city-packs``: an admin uploads a zipped city pack; it is checked at once and loaded as a job.

A pack with faults is a 422 problem listing every one (``faults``) and starts nothing; a clean pack
answers 202 with the job, whose progress ``GET /v1/city-packs/jobs/{id}`` reports until it is done
(what was loaded) or failed (why; nothing was loaded).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from geoservice.auth.policy import allow, policy
from geoservice.auth.users import Principal
from geoservice.city.jobs import JobSettings, job_status, start_job, unpack
from layers.models import Role

router = APIRouter(prefix="/v1/city-packs", tags=["city packs"])
ADMINS = allow(Role.admin)
Admin = Annotated[Principal, Depends(ADMINS)]


@router.post("", status_code=202, **policy(ADMINS))
async def post_pack(
    request: Request,
    admin: Admin,
    pack: Annotated[UploadFile, File(description="the pack's directory, zipped (docs/city-pack.md)")],
    draft: Annotated[bool, Form(description="leave the boundaries as a draft")] = False,
) -> JSONResponse:
    """Check the pack now (every fault, or nothing started) and load it as a job."""
    state = request.app.state
    settings = JobSettings(state.routing_settings, state.boundary_settings, state.auth_settings.home.absolute())
    scratch = Path(tempfile.mkdtemp(prefix="city-pack-"))
    try:
        archive = scratch / "pack.zip"
        archive.write_bytes(await pack.read())
        directory = await run_in_threadpool(unpack, archive, scratch / "pack")
        job_id = await run_in_threadpool(start_job, state.engine, directory, scratch, admin.username, settings,
                                         draft=draft)  # fmt: skip
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)  # a started job owns (and removes) its scratch itself
        raise
    return JSONResponse({"job": job_id, "status": "running", "href": f"/v1/city-packs/jobs/{job_id}"}, status_code=202)


@router.get("/jobs/{job_id}", **policy(ADMINS))
def get_job(request: Request, job_id: Annotated[int, PathParam(ge=1)]) -> dict[str, Any]:
    """How far a pack's load is: its step, then what it loaded, or why it failed."""
    return job_status(request.app.state.engine, job_id)
