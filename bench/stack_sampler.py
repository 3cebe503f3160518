"""A poor man's py-spy: serve an app under uvicorn in this process and sample every thread's stack.

The venv has neither py-spy nor pyinstrument, and cProfile sees only the thread it runs in (sync
endpoints run in anyio's worker threads). A daemon thread reads ``sys._current_frames()`` every
``--interval-ms`` and counts, per busy thread, the innermost frame and every frame on its stack;
on SIGUSR1 it prints the top self and cumulative entries. It holds the GIL while sampling, so it
slows the server a little: the shares are what it is for, not the rate.

Run: ``GEOSERVICE_DATABASE_URL=… python -m bench.stack_sampler geoservice.app:create_app --port 8000``
then put load on it (wrk); ``kill -USR2`` zeroes the counts after a warm-up, ``kill -USR1`` prints them
and stops the server.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import threading
import time
from types import FrameType

import uvicorn

IDLE = ("selectors.py", "threading.py:wait", "queue.py", "base_events.py:_run_once", "thread.py:_worker")


def _label(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("site-packages/", "/geoservice/", "/bench/", "/layers/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{code.co_name}"


class Sampler(threading.Thread):
    """Counts stack frames of every other thread at a fixed interval."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True, name="stack-sampler")
        self.interval_s = interval_s
        self.self_counts: collections.Counter[str] = collections.Counter()
        self.cumulative: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.running = True

    def run(self) -> None:
        me = threading.get_ident()
        while self.running:
            time.sleep(self.interval_s)
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                f: FrameType | None = frame
                while f is not None:
                    stack.append(_label(f))
                    f = f.f_back
                top = stack[0]
                if any(marker in top for marker in ("selectors.py", "threading.py:wait", "queue.py:get")):
                    continue  # an idle thread: not time a request spends
                self.samples += 1
                self.self_counts[top] += 1
                for label in set(stack):
                    self.cumulative[label] += 1

    def report(self, top: int) -> str:
        lines = [f"{self.samples} busy samples"]
        lines.append("-- self (innermost frame) --")
        for label, n in self.self_counts.most_common(top):
            lines.append(f"{100 * n / max(self.samples, 1):5.1f}%  {label}")
        lines.append("-- cumulative (on the stack) --")
        for label, n in self.cumulative.most_common(top * 3):
            lines.append(f"{100 * n / max(self.samples, 1):5.1f}%  {label}")
        return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    sampler = Sampler(args.interval_ms / 1000)
    config = uvicorn.Config(args.app, factory=True, host="127.0.0.1", port=args.port, access_log=False,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)

    def dump(*_: object) -> None:
        sampler.running = False
        text = sampler.report(args.top)
        if args.out == "-":
            print(text, flush=True)
        else:
            with open(args.out, "w") as out:
                out.write(text + "\n")
        server.should_exit = True

    def reset(*_: object) -> None:  # after the warm-up: count only the measured load
        sampler.self_counts.clear()
        sampler.cumulative.clear()
        sampler.samples = 0

    sampler.start()
    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, reset)
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
