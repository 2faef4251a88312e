"""The app inside Community Cloud's memory: `streamlit run app.py`, and the trainers it starts, inside a
fresh memory cgroup of 2.7 GB, 1.5 GB and 1 GB (Cloud gives an app between 690 MB and 2.7 GB; recent
deploys report about 1 GB), driven by a real Chromium that stays outside the limit, as a user's does.

For each limit, in one server: Home, Dataset, Draw (a digit drawn on the pad and read), Evaluate (the
test-set predictions of the pretrained model, computed by the server: its cache is not copied), and
Train: the default preset from the form (`--quick`: the Classroom demo button, 3,000 images and 3
epochs; full: the preset's own settings on all the training images, with 1 epoch). Where the form
refuses the training as too big, the benchmark also queues it behind the form's back (a queued record
the server starts on the next page run, as it starts any queued run) to see what the refusal saved the
user from. Then a training no limit here can hold (tests/core/test_oom.py's), queued the same way: the
kernel's OOM killer must stop its trainer and the Train page say so. Last, a new visitor (a fresh
browser context) must get the Home page.

After each step: what the page showed (its alerts and exceptions, Streamlit's "Connection error", found
in the DOM), the cgroup's peak during the step (`memory.max_usage_in_bytes`, reset per step) and what it
holds after (anonymous pages, mapped files, the working set), the server's RSS split into anonymous and
file-backed pages and its peak (VmHWM), and any other process left in the cgroup. Per training: the
trainer's peak RSS (anonymous + file) and the cgroup's anonymous + mapped pages before and at the peak
(the usage figure also counts page cache the kernel reclaims at the limit, so at 2.7 GB it mostly shows
how much cache there was room for). Per limit: the cgroup's peak, the server's and the trainer's peak
RSS and the OOM kills the cgroup counted.

The libraries are charged as in a fresh container: a file's pages are charged to the cgroup that first
reads them, and on a shared machine TensorFlow's were read long ago by someone else; so the server runs
on private copies of the shared libraries of the app's requirements (see `PrivateLibraries`;
`--shared-libraries` skips that and is optimistic by ~400 MB). Only libpython and the system's libraries
(~15 MB) stay shared.

Runs as root where the memory cgroup is writable (cgroup v1 `memory.limit_in_bytes`, with
`memory.memsw.limit_in_bytes` so nothing swaps; v2 `memory.max` with `memory.swap.max` 0: written for,
not run on these v1 machines); the cgroup is created under this process's own and removed afterwards.

    python benchmarks/cloud_memory.py [--quick] [--json] [--limits 2.7,1.5,1] [--no-bypass] [--no-too-big]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

from mnist_core import runs  # noqa: E402
from tests.core.test_oom import BIG, CgroupError, MemoryCgroup, cgroup_name  # noqa: E402
from tests.e2e.conftest import no_exception, wait_idle  # noqa: E402
from tests.e2e.test_draw import canvas_origin, one, settled, stroke  # noqa: E402
from tests.e2e.test_train import set_number  # noqa: E402

MB = 2**20
GB = 2**30
LIMITS = {"2.7 GB": int(2.7 * GB), "1.5 GB": int(1.5 * GB), "1 GB": 1 * GB}
PAGES = ("Home", "Dataset", "Draw", "Evaluate", "Train")
TOO_BIG = "Too big, queued anyway"
STEPS = (*PAGES, "Train, refusal bypassed", TOO_BIG, "New visitor")  # the table's columns
STEP_TIMEOUT_MS = 240_000  # a step under memory pressure may crawl (the kernel evicts library pages)
TRAIN_TIMEOUT_S = {True: 420, False: 1500}


# --- the libraries, charged to the cgroup as in a fresh container ------------------------------------
# A page of a file is charged to the cgroup that first read it. On a shared machine TensorFlow's ~400 MB
# of library pages were read long ago by someone else, so a new cgroup would map them for free, and a
# 1 GB limit would hold as much as ~1.4 GB does on Cloud, where the container reads them itself. So the
# server runs on private copies of the app's shared libraries (a user site, PYTHONUSERBASE, which Python
# puts before the system's site-packages), dropped from the page cache before each server starts.
_SHARED_LIB = re.compile(r"\.so(\.[0-9]+)*$")


def _requirements() -> list[str]:
    names = []
    for line in (common.ROOT / "requirements.txt").read_text().splitlines():
        name = re.split(r"[<>=!~\[;#\s]", line.strip(), maxsplit=1)[0]
        if name:
            names.append(name)
    return names


def _with_libraries() -> set[str]:
    """The top-level entries of site-packages holding a shared library of the app's requirements or
    anything they require (the `.libs` folders of vendored libraries included)."""
    import importlib.metadata as md

    todo, seen_dists, tops = _requirements(), set(), set()
    while todo:
        name = re.split(r"[<>=!~\[;(\s]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen_dists:
            continue
        seen_dists.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
        for f in dist.files or []:
            if _SHARED_LIB.search(f.name) and f.parts[0] != "..":
                tops.add(f.parts[0])
    return tops


class PrivateLibraries:
    """A user site with the app's packages: shared libraries copied (new files, new page-cache pages),
    everything else hard-linked (Python reads it, it does not map it)."""

    def __init__(self, dest: Path, log: Any = print):
        import site
        import sysconfig

        self.base = dest
        purelib = Path(sysconfig.get_paths()["purelib"])
        self.site = Path(site.getusersitepackages().replace(site.getuserbase(), str(dest), 1))
        self.copies: list[Path] = []
        t0 = time.perf_counter()
        for top in sorted(_with_libraries()):
            src = purelib / top
            files = [src] if src.is_file() else [Path(d) / f for d, _, fs in os.walk(src) for f in fs]
            for f in files:
                out = self.site / f.relative_to(purelib)
                out.parent.mkdir(parents=True, exist_ok=True)
                if _SHARED_LIB.search(f.name):
                    shutil.copyfile(f, out)
                    self.copies.append(out)
                else:
                    try:
                        os.link(f, out)
                    except OSError:
                        shutil.copyfile(f, out)
        self.bytes = sum(p.stat().st_size for p in self.copies)
        log(f"private copies of {len(self.copies)} shared libraries ({self.bytes / MB:,.0f} MB) in "
            f"{time.perf_counter() - t0:.0f} s")

    def drop_cache(self) -> None:
        """Forget their pages, so the next process to map them reads (and is charged for) them again."""
        for p in self.copies:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    @contextmanager
    def used(self) -> Iterator[None]:
        """Processes started meanwhile (and their children) load the copies."""
        old = os.environ.get("PYTHONUSERBASE")
        os.environ["PYTHONUSERBASE"] = str(self.base)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("PYTHONUSERBASE", None)
            else:
                os.environ["PYTHONUSERBASE"] = old

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# --- what the user saw --------------------------------------------------------------------------
CONNECTION_LOST = ("Connection error", "Is Streamlit still running", "Oh no")
ALERTS_JS = """() => Array.from(document.querySelectorAll("[data-testid='stAlert'], [data-testid='stException']"))
  .map(e => e.innerText.replace(/\\s+/g, ' ').trim()).filter(t => t)"""


def seen(page: Any) -> list[str]:
    """The messages on the page: Streamlit's alerts and exception boxes, and its connection-lost
    dialog (or Cloud's "Oh no" page)."""
    out: list[str] = []
    with suppress(Exception):
        out += page.evaluate(ALERTS_JS)
    with suppress(Exception):
        body = page.inner_text("body", timeout=2000)
        out += [f"[{s}]" for s in CONNECTION_LOST if s in body]
    return list(dict.fromkeys(out))


def _short(msgs: list[str], width: int = 160) -> list[str]:
    return [m if len(m) <= width else m[:width - 1] + "…" for m in msgs]


# --- one limit --------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    outcome: str = "not reached"  # ok | refused | failed | out of memory | server lost | timed out | error
    detail: str = ""
    seen: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cgroup_mb: float = 0.0  # what the cgroup holds after the step
    cgroup_peak_mb: float = 0.0  # the most it held during the step
    cgroup_anon_mb: float = 0.0  # of what it holds after the step: process memory
    cgroup_mapped_mb: float = 0.0  # file pages mapped (libraries in use)
    cgroup_cache_mb: float = 0.0  # all file pages (the page cache: read files, libraries), mostly reclaimable
    working_set_mb: float = 0.0  # what it holds less the inactive page cache (what limits.py calls used)
    server_rss_mb: float = 0.0
    server_hwm_mb: float = 0.0  # the server's peak RSS so far (VmHWM)
    others: list[str] = field(default_factory=list)  # other processes in the cgroup after the step, and their RSS
    server_anon_mb: float = 0.0
    server_file_mb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _cmdline(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    return " ".join(a.decode(errors="replace") for a in args[1:4]) or f"pid {pid}"


def _status_mb(pid: int, key: str) -> float:
    return common._proc_kb_field_mb(f"/proc/{pid}/status", key)


class TrainingSampler:
    """Every 0.2 s while a training runs: the summed RSS of the server's descendants (supervisor,
    trainer), split into anonymous and file-backed pages, and the cgroup's anonymous plus mapped-file
    pages (what it cannot give back without killing or thrashing; its usage also counts page cache the
    kernel reclaims at the limit). Peaks of each."""

    def __init__(self, server_pid: int, cg: MemoryCgroup):
        self.server_pid, self.cg = server_pid, cg
        self.rss_mb = self.anon_mb = self.file_mb = self.cgroup_in_use_mb = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def in_use_mb(self) -> float:
        v2 = self.cg.v2
        return (self.cg.stat("anon" if v2 else "total_rss") + self.cg.stat("file_mapped" if v2 else "total_mapped_file")) / MB

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = common.children(self.server_pid)
            self.rss_mb = max(self.rss_mb, sum(common.rss_mb(p) for p in pids))
            self.anon_mb = max(self.anon_mb, sum(_status_mb(p, "RssAnon:") for p in pids))
            self.file_mb = max(self.file_mb, sum(_status_mb(p, "RssFile:") for p in pids))
            self.cgroup_in_use_mb = max(self.cgroup_in_use_mb, self.in_use_mb())
            self._stop.wait(0.2)

    def __enter__(self) -> TrainingSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()


class Session:
    """One limit: a cgroup, the server inside it, a browser page outside it, and the steps' records."""

    def __init__(self, b: Any, limit: int, tmp: Path, data: Path, quick: bool, libs: PrivateLibraries | None,
                 log: Any):
        self.b, self.limit, self.tmp, self.data, self.quick, self.log = b, limit, tmp, data, quick, log
        self.runs_dir = tmp / "runs"
        self.runs_dir.mkdir(parents=True)
        # The pretrained model without its evaluation cache: Evaluate computes the predictions itself.
        shutil.copytree(common.ROOT / "models" / "pretrained", self.runs_dir / runs.PRETRAINED,
                        ignore=shutil.ignore_patterns("evaluation"))
        self.cg = MemoryCgroup(limit, cgroup_name(f"cloud{limit // MB}"))
        if libs is not None:
            libs.drop_cache()
        with libs.used() if libs else nullcontext(), self.cg.inside():
            self.server = common.Server(self.runs_dir, data, tmp / "server.log")
        self.pid = self.server.proc.pid
        self.server_hwm_mb = 0.0
        self.trainings: list[dict[str, float]] = []
        self.steps: list[Step] = []
        self.page = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        self.page.set_default_timeout(STEP_TIMEOUT_MS)

    def alive(self) -> bool:
        return self.server.proc.poll() is None

    def _measure(self, s: Step) -> None:
        if self.alive():
            self.server_hwm_mb = max(self.server_hwm_mb, _status_mb(self.pid, "VmHWM:"))
            s.server_rss_mb = _status_mb(self.pid, "VmRSS:")
            s.server_hwm_mb = self.server_hwm_mb
            s.server_anon_mb = _status_mb(self.pid, "RssAnon:")
            s.server_file_mb = _status_mb(self.pid, "RssFile:") + _status_mb(self.pid, "RssShmem:")
        s.others = [f"{_cmdline(p)} ({common.rss_mb(p):,.0f} MB)" for p in self.cg.pids() if p != self.pid]
        s.cgroup_mb = self.cg.usage / MB
        s.cgroup_peak_mb = self.cg.peak / MB
        v2 = self.cg.v2
        s.cgroup_anon_mb = self.cg.stat("anon" if v2 else "total_rss") / MB
        s.cgroup_mapped_mb = self.cg.stat("file_mapped" if v2 else "total_mapped_file") / MB
        s.cgroup_cache_mb = self.cg.stat("file" if v2 else "total_cache") / MB
        s.working_set_mb = s.cgroup_mb - self.cg.stat("inactive_file" if v2 else "total_inactive_file") / MB

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        s = Step(name)
        self.steps.append(s)
        self.cg.reset_peak()
        t0 = time.perf_counter()
        kills = self.cg.oom_kills
        try:
            yield s
            if s.outcome == "not reached":
                s.outcome = "ok"
        except Exception as e:  # a step that cannot finish is a finding, not the end of the benchmark
            s.outcome, s.detail = ("timed out" if "Timeout" in type(e).__name__ else "error"), str(e)[:300]
        s.seconds = time.perf_counter() - t0
        if not self.alive():
            s.outcome = "server lost"
            s.detail = (f"the server exited ({self.server.proc.returncode}; "
                        f"{self.cg.oom_kills - kills} OOM kill(s) in the cgroup during this step)")
            self._wait_for_connection_lost()
        elif self.cg.oom_kills > kills and s.outcome not in ("out of memory",):
            s.detail = (s.detail + "; " if s.detail else "") + f"{self.cg.oom_kills - kills} OOM kill(s) in the cgroup"
        s.seen = _short(seen(self.page))
        self._measure(s)
        self.log(f"  {name}: {s.outcome} {s.detail} ({s.seconds:.0f} s, cgroup peak {s.cgroup_peak_mb:.0f} MB, "
                 f"server RSS {s.server_rss_mb:.0f} MB) {s.seen}")

    def _wait_for_connection_lost(self, timeout_s: float = 45) -> None:
        """What a user sees after the server died: Streamlit retries for a while, then says so."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not any(m.startswith("[") for m in seen(self.page)):
            self.page.wait_for_timeout(1000)

    def nav(self, title: str) -> None:
        """Go to a page through the sidebar, as a user does (a deep link as a session's first request
        gets Streamlit's folder navigation; tests/e2e/test_evaluate.py)."""
        self.page.locator("[data-testid='stSidebarNav'] a", has_text=title).click()
        self.page.wait_for_url(f"**/{title.lower()}")
        wait_idle(self.page, STEP_TIMEOUT_MS)

    # --- the pages ----------------------------------------------------------------------------
    def home(self) -> None:
        with self.step("Home") as s:
            self.server.wait_healthy(120)
            self.page.goto(self.server.url)
            wait_idle(self.page, STEP_TIMEOUT_MS)
            self.page.get_by_role("heading", name="mnist-studio").wait_for()
            no_exception(self.page)
            s.detail = "pretrained model shown" if self.page.get_by_text("Current model: pretrained").count() else ""

    def dataset(self) -> None:
        with self.step("Dataset") as s:
            self.nav("Dataset")
            self.page.get_by_role("heading", name="A map of the digits").wait_for()
            self.page.locator("[data-testid='stPlotlyChart']").nth(3).wait_for()
            no_exception(self.page)
            s.detail = f"{self.page.locator('[data-testid=stPlotlyChart]').count()} charts"

    def draw(self) -> None:
        with self.step("Draw") as s:
            self.nav("Draw")
            stroke(self.page, one(*canvas_origin(self.page)))
            settled(self.page)
            no_exception(self.page)
            s.detail = f"read the drawn 1 as {self.page.locator('[data-digit]').get_attribute('data-digit')}"

    def evaluate(self) -> None:
        with self.step("Evaluate") as s:
            self.nav("Evaluate")
            metric = self.page.locator("[data-testid='stMetric']", has_text="Test accuracy")
            metric.wait_for()
            no_exception(self.page)
            s.detail = "test accuracy " + metric.locator("[data-testid='stMetricValue']").inner_text()

    def train(self, bypass: bool) -> None:
        main = self.page.locator("[data-testid='stMain']")
        with self.step("Train") as s:
            self.nav("Train")
            main.get_by_test_id("stMetricValue").get_by_text("93,322").wait_for()  # the default preset's size
            if self.quick:
                main.get_by_role("button", name=re.compile("Classroom demo")).click()
                # Start only once the form shows the demo's values: a click sends the widget values the
                # browser shows, which would undo the demo's if its rerun had not redrawn them yet.
                epochs = self.page.get_by_label("Epochs", exact=True)
                deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
                while epochs.input_value() != "1" and time.monotonic() < deadline:
                    self.page.wait_for_timeout(200)
                wait_idle(self.page, STEP_TIMEOUT_MS)
            else:
                set_number(self.page, "Epochs", 1)
            start = main.get_by_role("button", name=re.compile("Start training"))
            if start.is_disabled():
                s.outcome = "refused"
                s.detail = "the form refused it before starting (Start disabled)"
            else:
                known = self._run_names()
                start.click()
                self._follow_training(s, known)
        if s.outcome == "refused" and bypass and self.alive():
            self.train_bypassed()

    def train_bypassed(self) -> None:
        """The refused training queued anyway (a record the server's next page run dispatches)."""
        from mnist_core.config import preset_config

        with self.step("Train, refusal bypassed") as s:
            cfg = preset_config("classic", **(dict(limit=2000, epochs=1) if self.quick else dict(epochs=1)))
            known = self._run_names()
            runs.create_run(cfg, "bypassed", root=self.runs_dir, data_dir=str(self.data), pid=None)
            self.page.reload()  # a full script run lists the runs folder and starts the queued record
            wait_idle(self.page, STEP_TIMEOUT_MS)
            self._follow_training(s, known)

    def train_too_big(self) -> None:
        """A training no limit here can hold (tests/core/test_oom.py's), queued behind the form's back:
        the kernel's OOM killer must stop its trainer, the Train page say so, the server live on."""
        with self.step(TOO_BIG) as s:
            self.nav("Train")
            known = self._run_names()
            runs.create_run(dataclasses.replace(BIG, limit=600), "too-big", root=self.runs_dir,
                            data_dir=str(self.data), pid=None)
            self.page.reload()
            wait_idle(self.page, STEP_TIMEOUT_MS)
            self._follow_training(s, known)

    def _run_names(self) -> set[str]:
        return {r.name for r in runs.list_runs(self.runs_dir)}

    def _follow_training(self, s: Step, known: set[str]) -> None:
        """Wait for the watched run to end; its panel's heading and message say how."""
        deadline = time.monotonic() + TRAIN_TIMEOUT_S[self.quick]
        state = None
        sampler = TrainingSampler(self.pid, self.cg)
        before = sampler.in_use_mb()
        with sampler:
            while time.monotonic() < deadline and self.alive():
                # The new run (a folder being created is listed as damaged until its config is written).
                new = [r for r in runs.list_runs(self.runs_dir) if r.name not in known and not r.damaged]
                if new and not new[0].active:
                    state = new[0]
                    break
                self.page.wait_for_timeout(1000)
        self.trainings.append(dict(step=s.name, trainer_peak_rss_mb=sampler.rss_mb, trainer_peak_anon_mb=sampler.anon_mb,
                                   trainer_peak_file_mb=sampler.file_mb, cgroup_in_use_before_mb=before,
                                   cgroup_in_use_peak_mb=sampler.cgroup_in_use_mb))
        if state is None:
            if self.alive():
                s.outcome, s.detail = "timed out", f"the training did not end in {TRAIN_TIMEOUT_S[self.quick]} s"
            return
        # Let the live panel show the ended run (its fragment polls every 1.5 s).
        with suppress(Exception):
            self.page.locator("[data-testid='stMain'] h4", has_text=state.state).first.wait_for(timeout=30_000)
            wait_idle(self.page, 30_000)
        # The trainer records the end, then takes a few seconds to exit (TensorFlow's teardown).
        t_end = time.monotonic()
        while common.children(self.pid) and time.monotonic() - t_end < 60:
            time.sleep(0.2)
        exited = f"; its processes exited {time.monotonic() - t_end:.0f} s after" if self.alive() else ""
        err = state.error or ""
        s.outcome = ("ok" if state.state == "finished" else
                     "out of memory" if err.startswith("out of memory") else state.state)
        m = state.metrics or {}
        s.detail = (f"run {state.state}" + (f", test accuracy {m['test_accuracy']:.2%}" if "test_accuracy" in m else "")
                    + (f", {m['train_seconds']:.0f} s of training" if "train_seconds" in m else "")
                    + (f": {err}" if err else "") + exited)

    def still_serving(self) -> None:
        """A new visitor (a fresh browser context: a new session) gets the Home page."""
        with self.step("New visitor") as s:
            if not self.alive():
                raise RuntimeError("the server is gone")
            self.page.context.close()
            self.page = self.b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            self.page.set_default_timeout(STEP_TIMEOUT_MS)
            self.page.goto(self.server.url)
            wait_idle(self.page, STEP_TIMEOUT_MS)
            self.page.get_by_role("heading", name="mnist-studio").wait_for()
            no_exception(self.page)
            s.detail = "Home served to a new session"

    def close(self) -> dict[str, Any]:
        s = {"steps": [st.as_dict() for st in self.steps]}
        if self.alive():
            self.server_hwm_mb = max(self.server_hwm_mb, _status_mb(self.pid, "VmHWM:"))
        usual = [st for st in self.steps if st.name != TOO_BIG]  # the too-big step fills any limit
        default = [t for t in self.trainings if t["step"] != TOO_BIG]
        s.update(limit_mb=round(self.limit / MB), server_peak_rss_mb=round(self.server_hwm_mb, 1),
                 trainer_peak_rss_mb=round(max((t["trainer_peak_rss_mb"] for t in default), default=0), 1),
                 training_in_use_peak_mb=round(max((t["cgroup_in_use_peak_mb"] for t in default), default=0), 1),
                 trainings=[{k: round(v, 1) if isinstance(v, float) else v for k, v in t.items()}
                            for t in self.trainings],
                 cgroup_peak_mb=round(max((st.cgroup_peak_mb for st in usual), default=0), 1),
                 oom_kills=self.cg.oom_kills, server_alive=self.alive())
        with suppress(Exception):
            self.page.context.close()
        self.server.stop()
        self.cg.close()
        return s


def run_limit(b: Any, label: str, limit: int, quick: bool, bypass: bool, too_big: bool,
              libs: PrivateLibraries | None, log: Any = print) -> dict[str, Any]:
    log(f"-- limit {label} ({limit // MB} MB)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_cloud_"))
    sess = Session(b, limit, tmp, common.data_dir(), quick, libs, log)
    try:
        sess.home()
        for name in PAGES[1:]:
            if not sess.alive():
                break
            if name == "Train":
                sess.train(bypass)
                if sess.alive() and too_big:
                    sess.train_too_big()
            else:
                getattr(sess, name.lower())()
        sess.still_serving()
    finally:
        out = sess.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run(quick: bool = False, limit_labels: list[str] | None = None, bypass: bool = True, too_big: bool = True,
        private_libs: bool = True, log: Any = print) -> dict[str, Any]:
    chosen = {k: LIMITS[k] for k in (limit_labels or LIMITS)}
    out: dict[str, Any] = {"machine": common.machine(), "date": common.today(), "quick": quick,
                           "training": "Classroom demo (3,000 images, 3 epochs)" if quick else
                           "classic preset defaults, 1 epoch, all training images",
                           "libraries": "private copies (charged to the cgroup)" if private_libs else
                           "shared with the machine (charged elsewhere: optimistic)", "limits": {}}
    libs = PrivateLibraries(Path(tempfile.mkdtemp(prefix="bench_cloud_libs_")), log) if private_libs else None
    try:
        with common.browser() as b:
            for label, limit in chosen.items():
                out["limits"][label] = run_limit(b, label, limit, quick, bypass, too_big, libs, log)
    finally:
        if libs is not None:
            libs.close()
    return out


# --- the table ----------------------------------------------------------------------------------
def print_report(res: dict[str, Any]) -> None:
    print(f"\n== the app in a memory cgroup ({res['machine']}; {res['date']}) ==")
    print(f"training: {res['training']}; libraries: {res['libraries']}")
    names = [n for n in STEPS if any(s["name"] == n for r in res["limits"].values() for s in r["steps"])]
    head = ["limit", *names, "cgroup peak*", "in use, training*", "server peak RSS", "trainer peak RSS*", "OOM kills"]
    rows = []
    for label, r in res["limits"].items():
        by = {s["name"]: s for s in r["steps"]}
        figures = (r["cgroup_peak_mb"], r["training_in_use_peak_mb"], r["server_peak_rss_mb"], r["trainer_peak_rss_mb"])
        rows.append([label, *[by[n]["outcome"] if n in by else "-" for n in names],
                     *[f"{v:,.0f} MB" for v in figures], str(r["oom_kills"])])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"* without the {TOO_BIG!r} step (it fills any limit); in use: the cgroup's anonymous + mapped-file "
          "pages at the default training's peak; the trainer: the default training's")
    print("\nper step: the cgroup's peak during it; after it: the cgroup (working set = less inactive page cache;"
          " anon; mapped files), the server's RSS (anon + file); what the page showed")
    for label, r in res["limits"].items():
        print(f"[{label}]")
        for s in r["steps"]:
            print(f"  {s['name']:<24} {s['outcome']:<14} peak {s['cgroup_peak_mb']:>6,.0f}  after {s['cgroup_mb']:>6,.0f}"
                  f" (ws {s['working_set_mb']:,.0f}, anon {s['cgroup_anon_mb']:,.0f}, mapped {s['cgroup_mapped_mb']:,.0f})"
                  f"  server {s['server_rss_mb']:>4,.0f} ({s['server_anon_mb']:,.0f} + {s['server_file_mb']:,.0f}),"
                  f" peak {s['server_hwm_mb']:,.0f} MB"
                  f"  {s['seconds']:>4.0f} s  {s['detail']}")
            for m in s["seen"]:
                print(f"      saw: {m}")
            if s["others"]:
                print(f"      also in the cgroup: {'; '.join(s['others'])}")
        for t in r.get("trainings", []):
            print(f"  {t['step']}: trainer peak RSS {t['trainer_peak_rss_mb']:,.0f} MB (anon {t['trainer_peak_anon_mb']:,.0f},"
                  f" file {t['trainer_peak_file_mb']:,.0f}); cgroup anon + mapped {t['cgroup_in_use_before_mb']:,.0f} MB"
                  f" before, peak {t['cgroup_in_use_peak_mb']:,.0f} MB")
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="train with the Classroom demo button (3,000 images, 3 epochs)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--limits", default=",".join(k.split()[0] for k in LIMITS),
                    help="which limits, in GB: any of 2.7,1.5,1")
    ap.add_argument("--no-bypass", action="store_true", help="do not queue a training the form refused")
    ap.add_argument("--no-too-big", action="store_true", help="do not queue a training too big for any limit")
    ap.add_argument("--shared-libraries", action="store_true",
                    help="no private library copies (faster; the libraries' pages are then not charged to the cgroup)")
    a = ap.parse_args()
    labels = [f"{x.strip()} GB" for x in a.limits.split(",")]
    unknown = [x for x in labels if x not in LIMITS]
    if unknown:
        ap.error(f"unknown limit(s) {unknown}; choose from {', '.join(LIMITS)}")
    try:
        res = run(a.quick, labels, bypass=not a.no_bypass, too_big=not a.no_too_big,
                  private_libs=not a.shared_libraries,
                  log=lambda m: print(m, file=sys.stderr, flush=True))
    except CgroupError as e:
        print(f"cannot run: {e} (needs root and a writable memory cgroup)", file=sys.stderr)
        return 2
    print_report(res)
    if a.json:
        print(common.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
