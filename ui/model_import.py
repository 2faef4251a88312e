"""The "Import model" control shown under the Train page's runs table.

The work happens in the Import button's `on_click` callback, which Streamlit runs before the script:
the runs table and the sidebar's model picker drawn afterwards in the same run already include the new
run, without an extra rerun. The outcome is kept in session state and shown by `render`. Checks live in
`mnist_core.model_import`; here we only pass the uploaded bytes and report what it said. The uploader's
own size limit matches the core limit, so an oversized file is refused by the browser before upload.
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from mnist_core import runs
from mnist_core.inference import ModelError
from mnist_core.model_import import MAX_IMPORT_BYTES

from . import state

KEY = "import_model"
MAX_MB = MAX_IMPORT_BYTES // 2**20


def _uploader_key() -> str:
    # Bumping the counter gives a fresh, empty uploader after a successful import.
    return f"{KEY}_file_{st.session_state.get(f'{KEY}_n', 0)}"


def suggested_name(filename: str) -> str:
    """A run name from an uploaded file's name: its stem, made folder-safe, or "imported"."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(filename).stem).strip("-_")[: runs.MAX_NAME]
    return stem or "imported"


def _do_import() -> None:
    from mnist_core.model_import import import_model  # imports nothing heavy until used

    up = st.session_state.get(_uploader_key())
    if up is None:
        st.session_state[f"{KEY}_result"] = ("error", "Choose a .keras file first.")
        return
    name = (st.session_state.get(f"{KEY}_name") or "").strip() or suggested_name(up.name)
    try:
        run_dir = import_model(up.getvalue(), name, filename=up.name)
    except (ModelError, runs.RunError) as e:
        st.session_state[f"{KEY}_result"] = ("error", f"Not imported: {e}")
        return
    except OSError as e:  # disk full, read-only runs folder: nothing was kept (import_model cleans up)
        st.session_state[f"{KEY}_result"] = ("error", f"Not imported: could not write the run folder ({e})")
        return
    state.set_current_run(run_dir.name)
    st.session_state[f"{KEY}_n"] = st.session_state.get(f"{KEY}_n", 0) + 1
    st.session_state[f"{KEY}_name"] = ""
    st.session_state[f"{KEY}_result"] = (
        "success", f"Imported {up.name} as run **{run_dir.name}**; it is now the current model.")


def render() -> None:
    """The Import model expander: uploader, run name, Import button, and the last outcome."""
    result = st.session_state.get(f"{KEY}_result")
    with st.expander("Import model", icon=":material/upload_file:", expanded=result is not None):
        st.caption(f"A Keras 3 `.keras` file (at most {MAX_MB} MB) of an MNIST classifier: input 28×28×1, "
                   "10 classes, standard Keras layers only. It is loaded in safe mode, so files with custom "
                   "code (Lambda layers) are refused. Legacy `.h5` files are not accepted.")
        up = st.file_uploader("Model file", type=["keras"], max_upload_size=MAX_MB, key=_uploader_key())
        st.text_input("Run name", key=f"{KEY}_name", max_chars=runs.MAX_NAME,
                      placeholder=suggested_name(up.name) if up is not None else "defaults to the file name",
                      help="Letters, digits, - and _; it must not be taken by another run.")
        st.button("Import", key=f"{KEY}_go", icon=":material/upload:", on_click=_do_import, disabled=up is None)
        if result is not None:
            kind, msg = result
            (st.success if kind == "success" else st.error)(msg)
            st.session_state.pop(f"{KEY}_result", None)  # shown once
