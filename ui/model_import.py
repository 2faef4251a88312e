"""The "Import model" control shown under the Train page's runs table.

Checks live in `mnist_core.model_import`; here we pass the uploaded bytes and report what it said. The
check runs where the user is looking, under a spinner (the first import also starts TensorFlow, which
takes a few seconds). A refusal is shown at once and changes nothing. After a success the page reruns,
so the runs table above and the sidebar's model picker include the new run, and the message is shown
once with a button that makes it the current model (through a button callback: by the time the import
finishes the sidebar's picker is already drawn, so its value cannot be set from here). The uploader's
own size limit matches the core limit, so an oversized file is refused by the browser before upload.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mnist_core import limits, runs
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
    return runs.suggest_name(Path(filename).stem, fallback="imported")


def render() -> None:
    """The Import model expander: uploader, run name, Import button, and the outcome."""
    # A keyed, state-tracking expander keeps its open/closed state across reruns (an unkeyed one whose
    # arguments change is redrawn collapsed under the user), and lets us open it to show an outcome.
    done = st.session_state.pop(f"{KEY}_done", None)
    if done:
        st.session_state[f"{KEY}_box"] = True
    with st.expander("Import model", icon=":material/upload_file:", key=f"{KEY}_box", on_change="rerun"):
        st.caption(f"A Keras 3 `.keras` file (at most {MAX_MB} MB) of an MNIST classifier: input 28×28×1, "
                   f"10 classes, standard Keras layers only, at most {limits.count(limits.MAX_PARAMS)} "
                   "parameters. Its size is checked before it is loaded, and it is loaded in safe mode, so "
                   "files with custom code (Lambda layers) are refused. Legacy `.h5` files are not accepted.")
        up = st.file_uploader("Model file", type=["keras"], max_upload_size=MAX_MB, key=_uploader_key())
        st.text_input("Name for the imported run", key=f"{KEY}_name", max_chars=runs.MAX_NAME,
                      placeholder=suggested_name(up.name) if up is not None else "defaults to the file name",
                      help="Letters, digits, - and _; it must not be taken by another run.")
        clicked = st.button("Import", key=f"{KEY}_go", icon=":material/upload:", disabled=up is None)
        if done:
            msg, name = done
            st.success(msg)
            st.button(f"Use {name} now", key=f"{KEY}_use", icon=":material/check:",
                      on_click=state.set_current_run, args=(name,))
        if clicked and up is not None:
            _import(up)


def _import(up) -> None:
    from mnist_core.model_import import import_model

    name = (st.session_state.get(f"{KEY}_name") or "").strip() or suggested_name(up.name)
    try:
        with st.spinner(f"Checking {up.name}…"):
            run_dir = import_model(up.getvalue(), name, filename=up.name)
    except (ModelError, runs.RunError) as e:
        st.error(f"Not imported: {e}")
        return
    except OSError as e:  # disk full, read-only runs folder: import_model has removed its temp folder
        st.error(f"Not imported: could not write the run folder ({e})")
        return
    st.session_state[f"{KEY}_n"] = st.session_state.get(f"{KEY}_n", 0) + 1
    st.session_state[f"{KEY}_done"] = (f"Imported {up.name} as run **{run_dir.name}**.", run_dir.name)
    del st.session_state[f"{KEY}_name"]  # widget state cannot be assigned after the widget; drop it instead
    st.rerun()
