"""The ``geoservice`` executable's process: run one command, then leave without the interpreter's teardown.

When a command returns, its work is done: its files are closed, its transactions committed and its
lines printed, and the interpreter waits for its threads (a route's index offer) before any exit
handler runs. What CPython does after that, freeing every object of every imported module one at a
time, changes nothing anybody can see, and took 0.15-0.19 s of a million-point ``geoservice route`` on
the county (about 8 % of its 2.0-2.4 s, issue 23; bench/RESULTS.md, "The route command's end, ...").
So the last exit handler leaves with ``os._exit``, as Instagram's servers do ("Dismissing Python
Garbage Collection at Instagram", 2017), with the exit status the command gave.

Only the executable does this (``[project.scripts]`` in pyproject.toml). A command run in-process,
as the tests do with ``CliRunner``, ends as any Python call does.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable

_status = 1  # what the process says if the command never got to say anything (an exception escaped it)


def run(command: Callable[[], object]) -> None:
    """Run ``command`` (a click or typer app in standalone mode), and leave with its status."""
    global _status
    atexit.register(_leave)  # before the command imports anything that registers its own: so it runs last
    try:
        command()
    except SystemExit as done:
        _status = _status_of(done.code)
        raise
    _status = 0


def _status_of(code: object) -> int:
    """The status ``sys.exit(code)`` gives: 0 for None, the number itself, 1 for a message."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def _leave() -> None:
    logging.shutdown()  # its own exit handler was registered before ours, so it would not run
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, or a closed stream: nothing more to say
            pass
    os._exit(_status)
