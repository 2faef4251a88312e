"""mnist_core.sweep: sweep.json validation (one bad case per line, each with its message), the trials a
sweep gives (deterministic, the whole grid, inside the space), and ASHA decided exactly as Ray Tune's
ASHAScheduler decides on the same results."""

from __future__ import annotations

import itertools
import json
import random
from types import SimpleNamespace

import pytest

from mnist_core import runs
from mnist_core.config import ArchConfig, ConfigError, TrainConfig
from mnist_core.sweep import (
    MAX_TRIALS,
    METRICS,
    SPACE,
    SweepConfig,
    asha_rungs,
    asha_should_stop,
    load_sweep,
    trial_configs,
    trial_settings,
)

CUSTOM_BASE = {"arch": {"preset": "custom"}, "limit": 600, "epochs": 3}
FULL_SPACE = {
    "learning_rate": {"loguniform": [1e-4, 1e-2]},
    "batch_size": {"choices": [32, 64]},
    "filters": {"choices": [[16, 32], [32, 64, 64]]},
    "dropout": {"uniform": [0.1, 0.5]},
    "augment": {"choices": [False, True]},
    "lr_schedule": {"choices": ["constant", "cosine"]},
    "epochs": {"choices": [2, 4]},
}
GRID_SPACE = {"learning_rate": {"choices": [1e-3, 3e-3]}, "batch_size": {"choices": [32, 64, 128]},
              "augment": True, "epochs": {"choices": [2, 3]}}


def sweep(**kw) -> dict:
    d = {"base": CUSTOM_BASE, "space": {"batch_size": {"choices": [32, 64]}}, "method": "grid"}
    d.update(kw)
    return d


# (field the error names, words the message must contain, the sweep.json content)
BAD = [
    ("sweep.json", "JSON object", [1, 2]),
    ("trails", "not a sweep setting", sweep(trails=3)),
    ("base", "object", sweep(base=[1])),
    ("base.epochs", "from 1 to 500", sweep(base={"epochs": 0})),
    ("base.arch.kernel", "not an architecture setting", sweep(base={"arch": {"kernel": 3}})),
    ("space", "searches nothing", sweep(space={"batch_size": 32})),
    ("space", "object", sweep(space=[1])),
    ("space.momentum", "cannot be searched", sweep(space={"momentum": {"choices": [0.9]}})),
    ("space.batch_size", '{"choices": [32, 64]}', sweep(space={"batch_size": [32, 64]})),
    ("space.filters", "for choices write", sweep(space={"filters": [[16], [32]], "epochs": {"choices": [2, 3]}})),
    ("space.batch_size", "exactly one of", sweep(space={"batch_size": {"choices": [32], "uniform": [1, 2]}})),
    ("space.batch_size", "unknown kind", sweep(space={"batch_size": {"among": [32, 64]}})),
    ("space.batch_size", "must be a list", sweep(space={"batch_size": {"choices": 32}})),
    ("space.batch_size", "at least one choice", sweep(space={"batch_size": {"choices": []}})),
    ("space.batch_size", "twice", sweep(space={"batch_size": {"choices": [32, 32]}})),
    ("space.batch_size", "larger than the 540 training images", sweep(space={"batch_size": {"choices": [32, 1000]}})),
    ("space.batch_size", "cannot take a uniform range", sweep(space={"batch_size": {"uniform": [16, 64]}})),
    ("space.learning_rate", "a grid needs choices", sweep(space={"learning_rate": {"loguniform": [1e-4, 1e-2]}})),
    ("space.learning_rate", "cannot take a uniform range (it takes loguniform",
     sweep(method="random", trials=3, space={"learning_rate": {"uniform": [1e-4, 1e-2]}})),
    ("space.learning_rate", "needs [low, high]",
     sweep(method="random", trials=3, space={"learning_rate": {"loguniform": [1e-4]}})),
    ("space.learning_rate", "must be below high",
     sweep(method="random", trials=3, space={"learning_rate": {"loguniform": [1e-2, 1e-4]}})),
    ("space.learning_rate", "low above 0",
     sweep(method="random", trials=3, space={"learning_rate": {"loguniform": [0, 1e-2]}})),
    ("space.learning_rate", "at most 10",
     sweep(method="random", trials=3, space={"learning_rate": {"loguniform": [1e-3, 20]}})),
    ("space.dropout", "below 1", sweep(method="random", trials=3, space={"dropout": {"uniform": [0.1, 1.0]}})),
    ("space.filters", "builder; set base.arch.preset to \"custom\"",
     sweep(base={"limit": 600}, space={"filters": {"choices": [[16], [32]]}})),
    ("space.dropout", "'fast', whose layers are fixed",
     sweep(base={"arch": {"preset": "fast"}}, space={"dropout": {"choices": [0.1, 0.2]}})),
    ("space.filters", "512", sweep(space={"filters": {"choices": [[16], [1000]]}})),
    ("space.filters", "0 to 4", sweep(space={"filters": {"choices": [[16], [8, 8, 8, 8, 8]]}})),
    ("space.lr_schedule", "one of", sweep(space={"lr_schedule": {"choices": ["cosine", "exp"]}})),
    ("space.augment", "true or false", sweep(space={"augment": {"choices": [True, "no"]}})),
    ("space.epochs", "from 1 to 500", sweep(space={"epochs": {"choices": [2, 0]}})),
    ("space", "the grid has 60 combinations", sweep(space={"batch_size": {"choices": list(range(10, 70))}})),
    ("method", "one of random, grid", sweep(method="bayes")),
    ("trials", "from 1 to 50", sweep(method="random")),
    ("trials", "from 1 to 50", sweep(method="random", trials=MAX_TRIALS + 1)),
    ("trials", "leave trials out", sweep(trials=4)),
    ("seed", "2^31-1", sweep(seed=-1)),
    ("early_stopping", "asha, none", sweep(early_stopping="median")),
    ("asha", "object", sweep(asha=2)),
    ("asha.rungs", "not an ASHA setting", sweep(asha={"rungs": 3})),
    ("asha.metric", "one of", sweep(asha={"metric": "test_accuracy"})),
    ("asha.grace_period", "at least 1", sweep(asha={"grace_period": 0})),
    ("asha.grace_period", "below the largest epochs (3)", sweep(asha={"grace_period": 3})),
    ("asha.reduction_factor", "2 to 10", sweep(asha={"reduction_factor": 1})),
    ("asha.reduction_factor", "2 to 10", sweep(asha={"reduction_factor": 2.5})),
    ("asha.metric", "validation_split above 0", sweep(base={**CUSTOM_BASE, "validation_split": 0})),
    ("max_concurrent", "from 1 to 64", sweep(max_concurrent=0)),
]


@pytest.mark.parametrize("field,words,doc", BAD, ids=[f"{i}-{f}" for i, (f, _, _) in enumerate(BAD)])
def test_bad_sweeps_name_the_field(field, words, doc):
    with pytest.raises(ConfigError) as e:
        SweepConfig.from_json(json.dumps(doc))
    assert e.value.field == field
    assert words in str(e.value)


def test_good_sweeps_pass_where_asha_or_validation_is_not_needed():
    # ASHA off: a grace period is irrelevant and no validation split is needed for it.
    SweepConfig.from_dict(sweep(early_stopping="none", asha={"grace_period": 3},
                                base={**CUSTOM_BASE, "validation_split": 0}))
    SweepConfig.from_dict(sweep(asha={"metric": "loss"}, base={**CUSTOM_BASE, "validation_split": 0}))


def test_json_round_trip_and_file(tmp_path):
    s = SweepConfig.from_dict({"base": CUSTOM_BASE, "space": FULL_SPACE, "method": "random", "trials": 6,
                               "seed": 3, "asha": {"metric": "val_loss", "reduction_factor": 3},
                               "max_concurrent": 2})
    assert SweepConfig.from_json(s.to_json()) == s
    path = tmp_path / "sweep.json"
    path.write_text(s.to_json())
    assert load_sweep(path) == s
    with pytest.raises(ConfigError, match="cannot be read") as e:
        load_sweep(tmp_path / "missing.json")
    assert e.value.field == "sweep.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigError, match="not valid JSON") as e:
        load_sweep(path)
    assert e.value.field == "sweep.json"


def test_every_searchable_setting_reaches_the_trial_config():
    # Each SPACE entry must change the TrainConfig field it names (and only through the table).
    values = {"learning_rate": 0.0123, "batch_size": 16, "filters": (8, 16, 24), "dropout": 0.25,
              "augment": True, "lr_schedule": "step", "epochs": 7}
    assert set(values) == set(SPACE)
    for name, v in values.items():
        s = SweepConfig.from_dict(sweep(early_stopping="none", space={name: {"choices": [v]}}))
        (cfg,) = trial_configs(s)
        target = cfg.arch if SPACE[name].path[0] == "arch" else cfg
        assert getattr(target, SPACE[name].path[-1]) == v


def test_filters_choice_builds_the_custom_network_with_one_block_per_number():
    s = SweepConfig.from_dict(sweep(space={"filters": {"choices": [[16], [16, 32, 48]]}}))
    for cfg, filters in zip(trial_configs(s), [(16,), (16, 32, 48)], strict=True):
        # Reference: the custom architecture asked for directly, with the base's other knobs.
        base_arch = TrainConfig.from_dict(CUSTOM_BASE).arch
        want = ArchConfig(preset="custom", conv_blocks=len(filters), filters=filters,
                          kernel_size=base_arch.kernel_size, batch_norm=base_arch.batch_norm,
                          dropout=base_arch.dropout, dense_units=base_arch.dense_units)
        assert cfg.arch == want
        assert cfg.arch.layers == want.layers


def test_grid_is_the_cartesian_product():
    s = SweepConfig.from_dict({"base": {"limit": 600}, "space": GRID_SPACE, "method": "grid"})
    got = [(c.learning_rate, c.batch_size, c.augment, c.epochs) for c in trial_configs(s)]
    want = [(lr, bs, True, ep) for lr in (1e-3, 3e-3) for bs in (32, 64, 128) for ep in (2, 3)]
    assert sorted(got) == sorted(want) and len(got) == s.n_trials == 12
    assert s.max_epochs == 3


def test_grid_at_the_limit_is_accepted():
    n = MAX_TRIALS  # 50 = 2 x 25
    s = SweepConfig.from_dict(sweep(early_stopping="none", space={
        "augment": {"choices": [False, True]}, "batch_size": {"choices": list(range(8, 8 + n // 2))}}))
    settings = trial_settings(s)
    assert len(settings) == n
    assert len({json.dumps(x, sort_keys=True) for x in settings}) == n  # every combination once
    assert set(itertools.product([False, True], range(8, 8 + n // 2))) == \
        {(x["augment"], x["batch_size"]) for x in settings}


def test_random_trials_are_deterministic_and_inside_the_space():
    doc = {"base": CUSTOM_BASE, "space": FULL_SPACE, "method": "random", "trials": MAX_TRIALS, "seed": 7}
    a = trial_configs(SweepConfig.from_dict(doc))
    assert a == trial_configs(SweepConfig.from_dict(doc))  # same seed, same trials
    assert a != trial_configs(SweepConfig.from_dict({**doc, "seed": 8}))
    assert len(a) == MAX_TRIALS
    for c in a:
        assert 1e-4 <= c.learning_rate <= 1e-2 and 0.1 <= c.arch.dropout <= 0.5
        assert c.batch_size in (32, 64) and c.arch.filters in ((16, 32), (32, 64, 64))
        assert c.augment in (False, True) and c.lr_schedule in ("constant", "cosine") and c.epochs in (2, 4)
        assert c.seed == TrainConfig.from_dict(CUSTOM_BASE).seed and c.limit == 600
    # loguniform spreads over decades: each of the two decades gets a fair share of 50 draws (a draw
    # lands in either with probability 1/2, so fewer than 12 in one would happen once in ~10^4 seeds).
    low = sum(c.learning_rate < 1e-3 for c in a)
    assert 12 <= low <= MAX_TRIALS - 12
    # every choice is drawn
    assert {c.arch.filters for c in a} == {(16, 32), (32, 64, 64)} and {c.epochs for c in a} == {2, 4}


def test_metrics_are_history_columns():
    assert set(METRICS) <= set(runs.HISTORY_FIELDS)


def test_asha_rungs():
    assert asha_rungs(4, 1, 2) == (1, 2)
    assert asha_rungs(8, 1, 2) == (1, 2, 4)
    assert asha_rungs(10, 1, 3) == (1, 3, 9)
    assert asha_rungs(9, 1, 3) == (1, 3)
    assert asha_rungs(5, 2, 2) == (2, 4)
    assert asha_rungs(2, 2, 2) == ()


def test_asha_rule_by_hand():
    # Reduction factor 2: stop below the median of the trials already at the rung.
    others = [[0.5, 0.6, 0.7, 0.8], [0.3, 0.4]]  # median at epoch 1: 0.4, at epoch 2: 0.5
    kw = dict(max_t=4, grace_period=1, reduction_factor=2)
    assert asha_should_stop([0.39], others, **kw)
    assert not asha_should_stop([0.41], others, **kw)
    assert not asha_should_stop([0.41, 0.49, 0.1], others, **kw)  # epoch 3 is no rung
    assert asha_should_stop([0.41, 0.49], others, **kw)
    assert not asha_should_stop([0.1], [], **kw)  # the first at a rung goes on
    assert not asha_should_stop([0.1, 0.1, 0.1, 0.1], others, **kw)  # max_t: finished, not stopped
    assert asha_should_stop([0.41], others, mode="min", **kw)  # for a loss, lower is better
    assert not asha_should_stop([float("nan")], others, **kw)
    assert not asha_should_stop([0.1], [[float("nan")]], **kw)


def _ray_decisions(case: dict) -> list[tuple[str, int, bool]]:
    """Feed Ray Tune's real ASHAScheduler the reports of `case`, in their interleaved order; return
    (trial, epoch, stopped) for every report it saw. A stopped trial reports no more, as in Tune."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    sched = ASHAScheduler(time_attr="training_iteration", metric="m", mode=case["mode"], max_t=case["max_t"],
                          grace_period=case["grace"], reduction_factor=case["rf"])
    # The scheduler reads only `trial_id` from a trial (and ignores the controller).
    trials = {tid: SimpleNamespace(trial_id=tid) for tid in case["curves"]}
    for t in trials.values():
        sched.on_trial_add(None, t)
    done, out, last = set(), [], {}
    for tid in case["order"]:
        if tid in done:
            continue
        epoch = len([x for x in out if x[0] == tid]) + 1
        result = {"training_iteration": epoch, "m": case["curves"][tid][epoch - 1]}
        last[tid] = result
        action = sched.on_trial_result(None, trials[tid], result)
        stopped = action == TrialScheduler.STOP and epoch < case["max_t"]
        out.append((tid, epoch, stopped))
        if action == TrialScheduler.STOP or epoch == len(case["curves"][tid]):
            sched.on_trial_complete(None, trials[tid], last[tid])  # Tune's stop_trial does this
            done.add(tid)
    return out


def _ours(case: dict, reports: list[tuple[str, int, bool]]) -> list[tuple[str, int, bool]]:
    """The same reports decided by asha_should_stop, each trial seeing the others as they stood."""
    hist: dict[str, list[float]] = {tid: [] for tid in case["curves"]}
    out = []
    for tid, epoch, _ in reports:
        hist[tid].append(case["curves"][tid][epoch - 1])
        others = [h for k, h in hist.items() if k != tid]
        out.append((tid, epoch, asha_should_stop(hist[tid], others, max_t=case["max_t"],
                                                 grace_period=case["grace"], reduction_factor=case["rf"],
                                                 mode=case["mode"])))
    return out


def _random_case(rng: random.Random) -> dict:
    rf, grace = rng.choice([2, 3, 4]), rng.choice([1, 1, 2])
    max_t = rng.randint(grace + 1, 12)
    n = rng.randint(2, 12)
    curves = {}
    for i in range(n):
        epochs = max_t if rng.random() < 0.8 else rng.randint(1, max_t)  # some trials are shorter
        level = rng.random()
        curve = [round(level + 0.05 * k + rng.gauss(0, 0.05), 3) for k in range(epochs)]
        if rng.random() < 0.1:
            curve[rng.randrange(epochs)] = float("nan")
        if rng.random() < 0.2 and epochs > 1:
            curve[1] = curve[0]  # ties
        curves[f"t{i}"] = curve
    # Interleaving: `concurrency` trials run at once, reporting in random order, as on a Ray cluster.
    concurrency = rng.choice([1, 2, 3, n])
    order, pending, running = [], list(curves), []
    left = {tid: len(c) for tid, c in curves.items()}
    while pending or running:
        while pending and len(running) < concurrency:
            running.append(pending.pop(0))
        tid = rng.choice(running)
        order.append(tid)
        left[tid] -= 1
        if left[tid] == 0:
            running.remove(tid)
    # `order` over-counts trials that ASHA stops; _ray_decisions skips their later turns.
    return {"curves": curves, "order": order, "max_t": max_t, "grace": grace, "rf": rf,
            "mode": rng.choice(["max", "max", "min"])}


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # Ray's own quantile of NaNs only
def test_asha_decides_as_ray_tune_asha_scheduler():
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install 'ray[tune]')")
    rng = random.Random(2018)
    n_stops = 0
    for i in range(300):
        case = _random_case(rng)
        ray_reports = _ray_decisions(case)
        assert _ours(case, ray_reports) == ray_reports, f"case {i}: {case}"
        n_stops += sum(s for _, _, s in ray_reports)
    assert n_stops > 100  # the comparison covered many stops, not only trials that go on


def test_scheduler_settings_match_the_rule():
    s = SweepConfig.from_dict(sweep(space={"epochs": {"choices": [2, 6]}}, asha={"reduction_factor": 3}))
    assert s.scheduler_settings() == {"time_attr": "training_iteration", "metric": "val_accuracy", "mode": "max",
                                      "max_t": 6, "grace_period": 1, "reduction_factor": 3}
    assert s.should_stop([0.1], [[0.5], [0.6]]) and not s.should_stop([0.7], [[0.5], [0.6]])
    off = SweepConfig.from_dict(sweep(early_stopping="none"))
    assert off.scheduler_settings() is None and not off.should_stop([0.1], [[0.5], [0.6]])
