"""Stopping, deleting, renaming and resuming runs, each checked against who asks.

Every entry point (the pages, the CLI, a second app replica sharing the runs folder) goes through these
functions, so the rule of `identity.may_manage` holds whatever sends the request: a forged widget event
reaches the same refusal as a hidden button. New runs get their owner here too.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from . import classset, identity, runs, scheduler
from .config import TrainConfig
from .identity import Actor


def _info(run_dir: Path | runs.RunFolder) -> runs.RunInfo:
    run = runs.folder(run_dir)
    try:
        return runs.run_info(run)
    except (runs.RunError, OSError, ValueError) as e:
        return runs.damaged_info(run, str(e))


def stop(actor: Actor, run_dir: Path | runs.RunFolder) -> None:
    identity.require_manage(actor, _info(run_dir), "stop")
    scheduler.cancel(run_dir)


def delete(actor: Actor, run_dir: Path | runs.RunFolder) -> None:
    identity.require_manage(actor, _info(run_dir), "delete")
    runs.delete_run(run_dir)


def rename(actor: Actor, run_dir: Path | runs.RunFolder, new_name: str) -> Path:
    identity.require_manage(actor, _info(run_dir), "rename")
    return runs.rename_run(run_dir, new_name)


def resume(actor: Actor, run_dir: Path | runs.RunFolder) -> None:
    identity.require_manage(actor, _info(run_dir), "resume")
    scheduler.resume(run_dir)


def reset_class(actor: Actor, root: Path | None = None) -> Path:
    """The teacher's "reset the class": the lesson's runs (those with an owner; shared runs such as
    `pretrained` stay), the class set and the claimed names move into a dated archive folder in the
    classroom folder, nothing deleted. Runs still in progress are stopped first and stay where they are."""
    if not actor.teacher:
        raise identity.IdentityError("only the teacher can reset the class")
    root = Path(root) if root else runs.runs_root()
    dest = identity.classroom_dir(root) / "archive" / time.strftime("%Y%m%d-%H%M%S")
    (dest / "runs").mkdir(parents=True, exist_ok=False)
    for r in runs.list_runs(root):
        if r.owner is None or r.protected:
            continue
        if r.active:
            scheduler.cancel(r.path)
            continue
        shutil.move(str(r.path), str(dest / "runs" / r.name))
    classset.archive(actor, dest, root)
    names = identity.classroom_dir(root) / "names"
    if names.is_dir():
        shutil.move(str(names), str(dest / "names"))
    return dest


def start_sweep(actor: Actor, sweep: Any, name: str, **kw: Any) -> Any:
    """Start a hyperparameter sweep (sweeps.start_sweep). It queues many trainings at once, past any
    student's share of the queue: on a class server only the teacher starts sweeps."""
    from . import sweeps

    if not (actor.local or actor.teacher):
        raise identity.IdentityError("on a class server only the teacher starts sweeps (each one queues many "
                                     "trainings); ask your teacher, or train single runs on the Train page")
    return sweeps.start_sweep(sweep, name, owner=identity.owner_for_new_run(actor), **kw)


def stop_sweep(actor: Actor, folder: Any) -> None:
    from . import sweeps

    owner = sweeps.read_sweep_status(folder).get("owner")
    if not (actor.local or actor.teacher or (owner is not None and owner == actor.name)):
        raise identity.IdentityError("only the sweep's owner or the teacher may stop it")
    sweeps.stop_sweep(folder)


def submit(actor: Actor, config: TrainConfig, name: str, **kw: Any) -> Path:
    """Queue a training owned by `actor` (no owner for the local user of a laptop)."""
    return scheduler.submit(config, name, owner=identity.owner_for_new_run(actor), **kw)
