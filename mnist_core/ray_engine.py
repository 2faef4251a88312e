"""Ray: trainings as Ray tasks, the checks that keep a cluster honest, and a local head for tests.

Two settings turn it on. `MNIST_RAY_ADDRESS` (a cluster's `host:port`, or `local` for a Ray that the
process needing it starts on this machine and that ends with it) sends sweeps to Ray Tune
(ray_tune.py). `MNIST_TRAIN_ENGINE=ray` (with an address) makes the scheduler's supervisor run each
training's trainer, `python -m mnist_core _train RUN`, as a Ray task on a worker instead of as its own
child (`run_trainer`); the queue, the slots and the run folder stay as they are, so the pages show a
Ray training exactly as a local one. The Ray driver is always a process the scheduler starts (a
supervisor, a sweep driver), never the Streamlit server: Ray ends a driver whose cluster goes away,
and the app only reads run folders. Before any work goes to Ray the driver checks that the address
answers (`ray.init` hangs on a refused port) and that every alive node sees the runs folder as this
machine does (`check_shared_storage`: a token file written here, read and answered by a task pinned to
each node), so a cluster without shared storage is a clear error at start, not runs that never
appear. A Ray run's status holds `engine: "ray"` and `driver_host`: its trainer's pid means nothing
here, so readers watch the driver instead (runs.read_status), and the driver records a worker's death
from Ray's error. Ray is imported inside functions only: the app itself never needs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import runs
from .runs import RunFolder

REPO = Path(__file__).resolve().parent.parent
ADDRESS_ENV = "MNIST_RAY_ADDRESS"
ENGINE_ENV = "MNIST_TRAIN_ENGINE"
TRAIN_ENGINES = ("local", "ray")
LOCAL = "local"
STOP_GRACE_S = 120.0  # a stopped trainer finishes its batch, saves and evaluates; then it is killed
# Environment the workers need, passed on when set here (runtime_env): where the code, the runs and
# the data are, and how the trainer should behave.
PASS_ENV = ("MNIST_DATA_DIR", "MNIST_OFFLINE", "RAY_AUTH_MODE")


class EngineError(RuntimeError):
    """Ray cannot be used as configured (bad setting, unreachable cluster, runs folder not shared)."""


def ray_address() -> str | None:
    """`MNIST_RAY_ADDRESS`, or None when Ray is not configured."""
    return os.environ.get(ADDRESS_ENV, "").strip() or None


def train_engine() -> str:
    """Where the Train page's trainings run: "local" (own processes, default) or "ray" (Ray tasks)."""
    value = os.environ.get(ENGINE_ENV, "").strip().lower() or "local"
    if value not in TRAIN_ENGINES:
        raise EngineError(f"{ENGINE_ENV}={value!r}: use one of {', '.join(TRAIN_ENGINES)}")
    return value


# --- connecting -----------------------------------------------------------------------------------
def check_reachable(address: str, timeout: float = 3.0) -> None:
    """EngineError unless `host:port` accepts a connection: `ray.init` on a refused port hangs for
    minutes instead of failing."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EngineError(f"{ADDRESS_ENV}={address!r} is not host:port (the head's GCS address, e.g. "
                          f"10.0.0.5:6379) or {LOCAL!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise EngineError(f"cannot reach the Ray cluster at {address} ({ADDRESS_ENV}): "
                          f"{e.strerror or e}; is `ray start --head` running there?") from None


def worker_env(root: Path) -> dict[str, str]:
    """The environment of Ray workers for this app: its code on PYTHONPATH, the runs folder, and the
    settings of PASS_ENV that are set here."""
    env = {"PYTHONPATH": str(REPO), "MNIST_RUNS_DIR": str(Path(root).resolve()), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONUNBUFFERED": "1"}
    env.update({k: os.environ[k] for k in PASS_ENV if os.environ.get(k)})
    return env


def connect(address: str, root: Path, num_cpus: int | None = None) -> Any:
    """`ray.init` for a driver of this app; returns the `ray` module. `local` starts a Ray on this
    machine for this process only (no token auth: nothing else talks to it). EngineError when Ray is
    missing or the cluster does not answer."""
    try:
        import ray
    except ImportError:
        raise EngineError("Ray is not installed here: pip install 'ray[tune]' (see docs/sweeps.md)") from None
    kw: dict[str, Any] = dict(runtime_env={"env_vars": worker_env(root)}, log_to_driver=False,
                              logging_level="WARNING", configure_logging=True)
    if address == LOCAL:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kw["runtime_env"]["env_vars"]["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"]
        ray.init(address=LOCAL, include_dashboard=False, num_cpus=num_cpus,
                 object_store_memory=200_000_000, **kw)
        return ray
    check_reachable(address)
    try:
        ray.init(address=address, **kw)
    except ConnectionError as e:
        raise EngineError(f"the Ray cluster at {address} refused this driver ({e}); if the cluster uses "
                          "token authentication give RAY_AUTH_TOKEN, or start the head and the app with "
                          "RAY_AUTH_MODE=disabled") from None
    return ray


# --- is the runs folder shared? ----------------------------------------------------------------------
def _storage_probe(folder: str, name: str, token: str) -> dict[str, Any]:
    """On a node: read the token file the driver wrote and answer beside it."""
    path = os.path.join(folder, name)
    try:
        with open(path) as f:
            seen = f.read()
    except OSError as e:
        return {"ok": False, "why": f"cannot read {path} ({e.strerror})"}
    if seen != token:
        return {"ok": False, "why": f"{path} holds another machine's file: a different folder under the same path"}
    try:
        with open(path + ".reply", "w") as f:
            f.write(token)
    except OSError as e:
        return {"ok": False, "why": f"cannot write in {folder} ({e.strerror})"}
    return {"ok": True, "why": ""}


def storage_problems(folder: Path, timeout: float = 60.0) -> list[str]:
    """For every alive Ray node that does not share `folder` with this machine, why not (empty: all
    share it). Needs `connect` first."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder = Path(folder).resolve()
    name, token = f".ray-storage-check-{uuid.uuid4().hex}", uuid.uuid4().hex
    path = folder / name
    runs.atomic_write_bytes(path, token.encode())
    probe = ray.remote(num_cpus=0, max_retries=0)(_storage_probe)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(folder), name, token) for n in nodes]
        problems = []
        for n, ref in zip(nodes, refs, strict=True):
            where = f"node {n.get('NodeManagerAddress', '?')} ({n['NodeID'][:8]})"
            try:
                res = ray.get(ref, timeout=timeout)
            except Exception as e:  # noqa: BLE001 - any failure of the probe is the node's problem to report
                problems.append(f"{where}: the check did not answer ({type(e).__name__})")
                continue
            if not res["ok"]:
                problems.append(f"{where}: {res['why']}")
            elif not Path(str(path) + ".reply").exists():
                problems.append(f"{where}: this machine does not see the file the node wrote")
        return problems
    finally:
        for p in (path, Path(str(path) + ".reply")):
            p.unlink(missing_ok=True)


def check_shared_storage(folder: Path, timeout: float = 60.0) -> None:
    """EngineError naming the nodes that do not share the runs folder `folder` with this machine."""
    problems = storage_problems(folder, timeout)
    if problems:
        raise EngineError(f"the runs folder {Path(folder).resolve()} is not shared with every Ray node: "
                          + "; ".join(problems) + ". Put it on storage every node mounts at the same path "
                          "(NFS or equivalent) and set MNIST_RUNS_DIR to it (docs/sweeps.md)")


def describe_failure(e: BaseException) -> str:
    """A Ray error as one line for a run's status."""
    import ray.exceptions as rex

    if isinstance(e, rex.RayTaskError) and e.cause is not None and not isinstance(e.cause, rex.RayError):
        return f"{type(e.cause).__name__}: {str(e.cause).strip().splitlines()[0][:300] if str(e.cause) else ''}"
    first = (str(e).strip().splitlines() or [""])[0][:300]
    if isinstance(e, (rex.WorkerCrashedError, rex.NodeDiedError, rex.ActorDiedError, rex.LocalRayletDiedError)):
        return f"the Ray worker running the trainer died ({type(e).__name__}: {first})"
    return f"{type(e).__name__}: {first}"


# --- a training as a Ray task ---------------------------------------------------------------------
def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """The trainer dies with the Ray worker that runs it (Linux), so a killed worker leaves no trainer
    writing to a run that its driver has already marked failed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _trainer_task(run_path: str) -> dict[str, Any]:
    """On a Ray worker: the trainer for `run_path` as a child process, waited for by polling. A
    graceful `ray.cancel` raises KeyboardInterrupt here between polls (a blocking wait would not see
    it); the trainer is then asked to stop as Stop does (SIGTERM: after its batch, saving the model)."""
    run = runs.folder(run_path)
    env = {**os.environ, "MNIST_RUNS_DIR": str(run.path.parent)}
    with open(run.log, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "mnist_core", "_train", str(run.path)], cwd=REPO, env=env,
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 preexec_fn=_die_with_parent)
    try:
        while child.poll() is None:
            time.sleep(0.2)
        return {"code": child.returncode, "host": socket.gethostname(), "pid": child.pid}
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_trainer(run: RunFolder, poll_s: float = 0.5) -> int:
    """The supervisor's Ray path (scheduler.supervise, with a slot held): run the trainer as a Ray task
    (one CPU, never retried: a retry would train the run folder twice), forward Stop to it (the
    stop.request file on shared storage, and `ray.cancel`), and record in the run's status what the
    trainer could not: a worker or node that died, a cancel before it started, a cluster that cannot be
    used. Returns the trainer's exit code (1 for a Ray failure, 130 for a cancel)."""
    runs.set_status(run, "queued", engine="ray", driver_host=socket.gethostname())

    def on_signal(signum: int, frame: Any) -> None:  # the supervisor asked to stop: as the Stop button
        runs.request_stop(run)

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    try:
        address = ray_address()
        if address is None:
            raise EngineError(f"{ENGINE_ENV}=ray needs {ADDRESS_ENV} (a Ray cluster's host:port, or {LOCAL})")
        ray = connect(address, run.path.parent)
        check_shared_storage(run.path.parent)
    except EngineError as e:
        runs.set_status(run, "failed", error=str(e), pid=None, finished=time.time())
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    import ray.exceptions as rex

    code, why = 1, None
    try:
        ref = ray.remote(num_cpus=1, max_retries=0)(_trainer_task).remote(str(run.path))
        cancelled_at = None
        while not ray.wait([ref], timeout=poll_s)[0]:
            if not runs.stop_requested(run):
                continue
            if cancelled_at is None:
                ray.cancel(ref)  # waiting for a CPU: gone at once; training: the task stops the trainer
                cancelled_at = time.monotonic()
            elif time.monotonic() - cancelled_at > STOP_GRACE_S + 30:
                ray.cancel(ref, force=True)
        code = int(ray.get(ref)["code"])
    except rex.TaskCancelledError:
        code = 130
    except rex.RayError as e:
        why = describe_failure(e)
    finally:
        ray.shutdown()
    state = runs.read_json(run.status).get("state")
    if state in runs.ACTIVE:  # the trainer did not record an end (never started, or died with its worker)
        if why is None and runs.stop_requested(run) and state == "queued":
            runs.set_status(run, "stopped", error="cancelled before training started", pid=None,
                            finished=time.time())
        else:
            from .scheduler import _exit_reason

            runs.set_status(run, "failed", error=why or _exit_reason(code, None, run), pid=None, exit_code=code,
                            finished=time.time())
    return code


# --- a real single-machine head ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalHead:
    """A real Ray head on this machine (`ray start --head --block`, in its own session, no dashboard,
    token auth off, a small object store): for the tests, the benchmarks and a one-machine trial of
    the cluster recipe. `start()` returns its address; `stop()` ends this head and only it."""

    def __init__(self, num_cpus: int = 2, object_store_bytes: int = 200_000_000):
        self.num_cpus, self.object_store_bytes = num_cpus, object_store_bytes
        self.proc: subprocess.Popen | None = None
        self.address: str | None = None
        self.tmp: str | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 120.0) -> str:
        os.environ["RAY_AUTH_MODE"] = "disabled"  # the head and every driver started from here agree
        port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="rayh_", dir="/tmp")  # Ray's socket paths must stay < 108 chars
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               f"--num-cpus={self.num_cpus}", "--include-dashboard=false", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1", f"--temp-dir={self.tmp}",
               f"--object-store-memory={self.object_store_bytes}", f"--ray-client-server-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        ready = threading.Event()

        def read() -> None:  # keeps the pipe drained for the head's whole life
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if "Ray runtime started" in line:
                    ready.set()
            ready.set()  # ended

        threading.Thread(target=read, daemon=True).start()
        ready.wait(timeout)
        if self.proc.poll() is not None or not any("Ray runtime started" in s for s in self.output):
            self.stop()
            raise EngineError("ray start --head failed:\n" + "".join(self.output[-30:]))
        self.address = f"127.0.0.1:{port}"
        return self.address

    def stop(self) -> None:
        try:
            import ray

            ray.shutdown()  # first: Ray ends a driver whose head disappears
        except ImportError:
            pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # --block: `ray start` stops this head's processes, and only those
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LocalHead:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
