"""What happens after every script run, made cheap: Streamlit's Keras reset and its garbage collection.

After every script run, fragment reruns included, Streamlit (1.67, `script_runner._clean_problem_modules`)
calls `keras.backend.clear_session()` once Keras is imported, meant for scripts that build a new model
on every rerun. Here no page builds one (training runs in its own process), and the reset clears
TensorFlow's kernel cache, so the next prediction of a cached model recompiles its kernels: ~0.7 s
more per Draw stroke on the 2-core machine (p50 758 ms, 72 ms without; benchmarks/draw_latency.py).
`keep_keras_session` replaces that function with one that does the rest of its job (closing
matplotlib's figures) but leaves Keras alone. It is a private function of Streamlit: if a version
lacks it, nothing is patched and the only cost is the slower predictions.

Streamlit also calls `gc.collect(2)` (the `runner.postScriptGC` option), and clear_session collects
again. A full collection walks every object the process tracks: ~120,000 once streamlit,
plotly and pandas are imported (~70 ms of CPU on the 2-core machine), ~440,000 with TensorFlow and
Keras (~340 ms). So the Train page polling its run every few seconds, or a stroke on Draw, paid mostly
for walking module objects that live as long as the process. `schedule_freeze` takes them out of the
collector's sight with `gc.freeze()` after each big import (one collection first, so no garbage is
frozen); the collections after later runs walk only what sessions created since.

Frozen objects are still freed by reference counting. Only a reference cycle that was alive at a
freeze and dies later is never collected, which is why this freezes after big imports only (a few
times per process), never after every run. The collection before a freeze takes a few hundred ms, so
it runs a moment after the script run that triggered it, in a thread, not before that run ends.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

NEW_MODULES = 100  # freeze again after an import this large (scikit-learn ~300 modules, TensorFlow ~2,000)
DELAY_S = 1.0
_lock = threading.Lock()
_state = {"modules": 0, "pending": False}
_replaced: dict[str, Any] = {}  # Streamlit's own hook, once replaced (for the test)


def _freeze() -> None:
    with _lock:
        gc.collect()
        gc.freeze()
        _state.update(modules=len(sys.modules), pending=False)


def _close_matplotlib_figures() -> None:
    plt: Any = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:  # as Streamlit's own: never fail a run over it
            pass


def keep_keras_session() -> bool:
    """Stop Streamlit from resetting Keras after each script run; True if its hook was found (and replaced)."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:
        return False
    if not callable(getattr(script_runner, "_clean_problem_modules", None)):
        return False
    if script_runner._clean_problem_modules is not _close_matplotlib_figures:
        _replaced["hook"] = script_runner._clean_problem_modules
        script_runner._clean_problem_modules = _close_matplotlib_figures
    return True


def after_run() -> None:
    """Call at the end of each full script run (cheap): keeps the Keras session, and schedules a freeze
    after a big import."""
    keep_keras_session()
    schedule_freeze()


def schedule_freeze() -> None:
    """A freeze, a moment from now, if a big import happened since the last one; else nothing."""
    if _state["pending"] or len(sys.modules) - _state["modules"] < NEW_MODULES:
        return
    with _lock:
        if _state["pending"]:
            return
        _state["pending"] = True
    timer = threading.Timer(DELAY_S, _freeze)
    timer.daemon = True
    timer.start()
