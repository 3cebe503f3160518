"""The report intake: ``POST /v1/events`` stores reports in batches, one transaction and one commit each.

Why: a report's own work is small (routing in process is microseconds), and what a report cost was
the database conversation around it: a pooled connection's ping, BEGIN, the routing lock, the
deadline lookup, the insert, two duplicate queries and a commit (an fsync) — eight round trips and
a thread-pool hop per report. Under load, reports arrive faster than that conversation ends, so
the intake lets them queue while a batch is being written and then writes every queued report
with the same eight round trips: one ``INSERT … SELECT FROM jsonb_to_recordset`` with their log
rows (``events.report.store_reports``), one deadline lookup, one duplicate search per caller's
scope, one commit. A lone report is a batch of one and waits for nothing.

Nothing about a report changes: it is checked on the event loop before it queues (a bad one never
waits); routed under the shared routing lock by the router in force once the lock is held, as a
single report is; stored with its ``report`` log row (whose trigger queues the notifications) and
first owner (trigger) in the same transaction; answered only after the commit. Idempotency holds:
a key already taken, or repeated within a batch, goes through the single-report path after the
batch commits, which finds the earlier report (same body: 200; different: 409). If a batch fails
as a whole (a database error), every report in it is tried again on its own, so one report's
problem is its own and nothing acknowledged was lost.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from geoservice.auth.scope import Scope, scope_of
from geoservice.auth.users import Principal
from geoservice.boundaries.versions import hold_routing
from geoservice.events.deadlines import deadline_hours_many
from geoservice.events.duplicates import DuplicateQuery, possible_duplicates, possible_duplicates_many
from geoservice.events.follow import issue_follow_token
from geoservice.events.report import (
    CheckedReport,
    PreparedReport,
    ReportRequest,
    prepare_report,
    report_one,
    store_reports,
)
from geoservice.routing.registry import RouterRegistry
from layers.models import Role

log = logging.getLogger(__name__)
_STOP = object()


@dataclass(frozen=True)
class Receipt:
    """What a report's answer is made of: the event, whether this call created it, and the receipt's extras."""

    event: dict[str, Any]
    created: bool
    extra: dict[str, Any]


@dataclass
class _Submission:
    request: ReportRequest
    checked: CheckedReport
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Receipt]

    def settle(self, outcome: Receipt | BaseException) -> None:
        """Hand the outcome to the waiting request on its event loop (it may have gone: then nobody waits)."""

        def _set() -> None:
            if self.future.done():
                return
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)

        try:
            self.loop.call_soon_threadsafe(_set)
        except RuntimeError:  # the loop is closed: the server stopped and nobody waits
            pass


def receipt_extras(
    session: Session, event: dict[str, Any], principal: Principal, secret: Callable[[], str], now: datetime
) -> dict[str, Any]:
    """A single report's extras: possible duplicates (the public: ids and distances), an anonymous follow token."""
    staff = principal.role != Role.public
    extra: dict[str, Any] = {
        "possible_duplicates": possible_duplicates(
            session, lon=event["lon"], lat=event["lat"], category_code=event["category_code"], now=now,
            scope=scope_of(principal) if staff else None, exclude_id=event["id"],
        )
    }  # fmt: skip
    if principal.anonymous:
        _follow(session, extra, event["id"], secret())
    return extra


def _follow(session: Session, extra: dict[str, Any], event_id: int, secret: str) -> None:
    extra["follow_token"] = issue_follow_token(session, event_id, secret)
    extra["follow_url"] = f"/v1/follow/{extra['follow_token']}"


class ReportIntake:
    """Queues checked reports and stores them in batches from ``writers`` threads of its own."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        routers: RouterRegistry,
        secret: Callable[[], str],
        *,
        writers: int = 1,
        max_batch: int = 64,
    ) -> None:
        self.sessions = sessions
        self.routers = routers
        self.secret = secret
        self.writers = writers
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []

    # --- the request's side (event loop) -------------------------------------------------------------
    async def submit(self, request: ReportRequest) -> Receipt:
        """Check, queue and wait for the report's commit; raises what a single report would (422, 409, 503…)."""
        checked = request.checked(datetime.now(UTC))  # a bad report is refused here, never queued
        if not self._threads:
            self.start()
        loop = asyncio.get_running_loop()
        submission = _Submission(request, checked, loop, loop.create_future())
        self._queue.put(submission)
        return await submission.future

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer threads (idempotent)."""
        if self._threads:
            return
        for k in range(self.writers):
            thread = threading.Thread(target=self._run, name=f"report-intake-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Store what is queued, then stop the writers (blocking: call it from a thread)."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    # --- the writers' side ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = [first], False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Submission]) -> None:
        try:
            alone = self._write_batch(batch)
        except OperationalError as exc:  # the database away or restarting: one line, not a traceback per batch
            log.warning("a batch of %d reports failed (%s); trying each on its own", len(batch),
                        str(exc).splitlines()[0])  # fmt: skip
            alone = batch
        except Exception:  # one report's row the database refused, or a bug: each report on its own tells
            log.exception("a batch of %d reports failed; trying each on its own", len(batch))
            alone = batch
        for submission in alone:
            submission.settle(self._write_one(submission))

    def _write_one(self, submission: _Submission) -> Receipt | BaseException:
        """The single-report path: its own transaction; a repeated key finds the earlier report."""
        request = submission.request
        try:
            with self.sessions() as session, session.begin():
                hold_routing(session)  # under the routing lock until the report commits
                router = self.routers.current()
                now = datetime.now(UTC)
                event, created = report_one(session, router, request, now)
                extra = receipt_extras(session, event, request.actor, self.secret, now)
            return Receipt(event, created, extra)
        except Exception as exc:
            return exc

    def _write_batch(self, batch: list[_Submission]) -> list[_Submission]:
        """Store the batch in one transaction and settle what it decided; the reports left for ``_write_one``."""
        alone: list[_Submission] = []
        first: dict[str, _Submission] = {}
        for submission in batch:
            if submission.checked.key in first:  # the same key twice in a batch: the second finds the first
                alone.append(submission)
            else:
                first[submission.checked.key] = submission
        refused: list[tuple[_Submission, BaseException]] = []
        stored: list[tuple[_Submission, dict[str, Any]]] = []
        with self.sessions() as session, session.begin():
            hold_routing(session)  # the router is read once the lock is held, as for a single report
            router = self.routers.current()
            now = datetime.now(UTC)
            pairs = {(s.request.category_code, s.request.priority) for s in first.values()}
            hours = deadline_hours_many(session, pairs)
            prepared: list[tuple[_Submission, PreparedReport]] = []
            for submission in first.values():
                request = submission.request
                try:
                    hours_of = hours.get((request.category_code, request.priority))
                    report = prepare_report(request, submission.checked, router, hours_of, now, session=session)
                    prepared.append((submission, report))
                except Exception as exc:  # this report's problem (unknown category, outside every grid)
                    refused.append((submission, exc))
            events = store_reports(session, [p for _, p in prepared]) if prepared else {}
            for submission, report in prepared:
                if report.key in events:
                    stored.append((submission, events[report.key]))
                else:  # the key was taken before: the single path reads that report
                    alone.append(submission)
            extras = self._extras(session, stored, now)
        for (submission, event), extra in zip(stored, extras, strict=True):
            submission.settle(Receipt(event, True, extra))
        for submission, exc in refused:
            submission.settle(exc)
        return alone

    def _extras(
        self, session: Session, stored: list[tuple[_Submission, dict[str, Any]]], now: datetime
    ) -> list[dict[str, Any]]:
        """Every stored report's receipt extras: one duplicate search per caller's scope, then follow tokens."""
        ids = sorted(event["id"] for _, event in stored)
        groups: dict[Scope | None, list[int]] = {}
        for k, (submission, _) in enumerate(stored):
            actor = submission.request.actor
            groups.setdefault(scope_of(actor) if actor.role != Role.public else None, []).append(k)
        extras: list[dict[str, Any]] = [{} for _ in stored]
        for scope, members in groups.items():
            queries = []
            for k in members:
                event = stored[k][1]
                later = tuple(i for i in ids if i > event["id"])
                queries.append(
                    DuplicateQuery(event["lon"], event["lat"], event["category_code"], now, event["id"], later)
                )
            for k, found in zip(members, possible_duplicates_many(session, queries, scope), strict=True):
                extras[k]["possible_duplicates"] = found
        secret: str | None = None
        for k, (submission, event) in enumerate(stored):
            if submission.request.actor.anonymous:
                secret = secret or self.secret()
                _follow(session, extras[k], event["id"], secret)
        return extras
