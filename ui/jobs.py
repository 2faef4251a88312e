"""Background jobs with progress, one registry per server process (evaluation, t-SNE, export).

Work that takes seconds must not run in the script thread. `start(kind, key, work)` runs `work(job)` in
a daemon thread; the work reports through `job.report(fraction, stage)` (which raises `Cancelled` once
someone asked to cancel) and returns its result. Pages read `job.progress`, `job.stage`, `job.result`
and `job.error` from the script thread (a progress bar, or a fragment polling with `run_every`). No
`st.*` call ever happens in the worker. The registry is process-wide (`st.cache_resource`): a second
session asking for the same job attaches to it, a job keeps going if its page is left and is found
again on return, and the last finished jobs of each kind are kept as a cache of their results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st


class Cancelled(Exception):
    """Raised inside a job's work by `Job.report` once the job has been asked to stop."""


@dataclass
class Job:
    kind: str
    key: Hashable
    started: float = field(default_factory=time.time)
    progress: float = 0.0
    stage: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # whatever else the page shows (counts, sizes)
    result: Any = None
    error: BaseException | None = None
    finished: float | None = None
    cancel_requested: bool = False
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def succeeded(self) -> bool:
        return self.done and self.error is None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def report(self, fraction: float, stage: str | None = None, **info: Any) -> None:
        """Called by the work: how far it is. Raises Cancelled if the job was asked to stop."""
        if self.cancel_requested:
            raise Cancelled()
        self.progress = min(max(float(fraction), 0.0), 1.0)
        if stage is not None:
            self.stage = stage
        self.info.update(info)

    def cancel(self) -> None:
        self.cancel_requested = True

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


@dataclass
class _Registry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[tuple[str, Hashable], Job] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def find(kind: str, key: Hashable) -> Job | None:
    reg = _registry()
    with reg.lock:
        return reg.jobs.get((kind, key))


def start(kind: str, key: Hashable, work: Callable[[Job], Any], keep: int = 6) -> Job:
    """The job for (kind, key): the one running or succeeded if there is one, else a new one started
    now (a failed or cancelled job is started afresh). Keeps the last `keep` finished jobs of a kind."""
    reg = _registry()
    with reg.lock:
        job = reg.jobs.get((kind, key))
        if job is not None and (not job.done or job.succeeded):
            return job
        job = reg.jobs[(kind, key)] = Job(kind, key)
        finished = [k for k, j in reg.jobs.items() if k[0] == kind and j.done]
        for k in finished[:-keep] if len(finished) > keep else []:
            del reg.jobs[k]

    def run() -> None:
        try:
            job.result = work(job)
            job.progress = 1.0
        except BaseException as e:  # kept for the page: shown, or re-raised in the script thread
            job.error = e
        finally:
            job.finished = time.time()
            job._done.set()

    threading.Thread(target=run, name=f"{kind}-job", daemon=True).start()
    return job


def forget(kind: str, key: Hashable) -> None:
    reg = _registry()
    with reg.lock:
        reg.jobs.pop((kind, key), None)
