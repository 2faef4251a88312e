"""The Export panel of the Train and Evaluate pages: pick formats, export in the background, compare.

`render(run_dir, key_prefix)` draws a format picker (every format by default), an Export button, and
the checked exports of this model version side by side (`mnist_core.export.table_rows`) with one
download button each (a SavedModel folder as a .zip). The work (`export.export_formats`: conversion,
then each export run through its own runtime on the test set) is a background job (ui/jobs.py) keyed
on the run, its model file's version and the data; a fragment polls its progress and redraws the page
once when it ends. Exports live in `<run folder>/export/` with their reports (`export.json`), so the
table is read from disk on every visit and nothing is exported twice for an unchanged model file.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from mnist_core import export, runs
from mnist_core.data import Dataset

from . import jobs, loaders

KIND = "export"
POLL_S = 1.0


def _key(run: runs.RunFolder, dataset: Dataset) -> tuple[str, int, str, int]:
    return str(run.path.resolve()), run.model_stamp(), dataset.source.key, len(dataset.y_test)


def _start(run: runs.RunFolder, dataset: Dataset, fmts: list[str]) -> None:
    """Button callback: export the chosen formats that are not exported yet, in a background job."""
    key = _key(run, dataset)
    job = jobs.find(KIND, key)
    if job is not None and not job.done:
        return  # already exporting this model (another session's click, or a double click)
    jobs.forget(KIND, key)  # a finished job would be handed back as it is; this is a new request
    jobs.start(KIND, key, lambda j: export.export_formats(run.path, fmts, export.export_dir(run), dataset,
                                                          reuse=True, progress=j.report))


def _progress(job: jobs.Job) -> None:
    if job.done:
        st.rerun()  # redraw the whole panel once, with the table read from disk
    st.progress(job.progress, text=f"Exporting: {job.stage or 'starting'}… ({job.elapsed:.0f} s)")


def _table(run: runs.RunFolder, reports: list[export.ExportReport], key_prefix: str) -> None:
    st.dataframe(export.table_rows(reports), hide_index=True, key=f"{key_prefix}_export_table", column_config={
        "size (bytes)": st.column_config.NumberColumn(format="localized"),
        "test acc": st.column_config.NumberColumn(format="%.4f"),
        "Keras acc": st.column_config.NumberColumn(format="%.4f"),
        "argmax agreement": st.column_config.NumberColumn(format="percent"),
        "max |Δp|": st.column_config.NumberColumn(format="%.2e", help="Largest difference of any class "
                                                  "probability from the Keras model's, over the test set"),
    })
    n = reports[0].n_images
    st.caption(f"Each file was loaded by its own runtime ({', '.join(sorted({r.runtime for r in reports}))}) and "
               f"run on {n:,} test images right after it was written; agreement and Δp compare it with the "
               "Keras model on the same images.")
    cols = st.columns(len(reports))
    for col, r in zip(cols, reports, strict=True):
        f = export.FORMATS[r.format]
        if f.is_dir:
            data, name, mime = partial(export.zip_directory, r.path), f"{run.name}-{r.path.name}.zip", "application/zip"
        else:
            data, name, mime = r.path.read_bytes, f"{run.name}-{r.path.name}", "application/octet-stream"
        col.download_button(name, data=data, file_name=name, mime=mime, on_click="ignore", icon=":material/download:",
                            key=f"{key_prefix}_export_dl_{r.format}", help=f.description)


def render(run_dir: Path, key_prefix: str) -> None:
    """The export panel for the run in `run_dir`; widget keys start with `key_prefix`."""
    run = runs.folder(run_dir)
    if not run.model_stamp():
        st.info(f"{run.name} has no model file to export.")
        return
    dataset = loaders.dataset()
    done = export.cached_reports(export.export_dir(run), run.model_stamp(), dataset)
    fmts = st.multiselect(
        "Formats", list(export.FORMATS), default=list(export.FORMATS), key=f"{key_prefix}_export_formats",
        format_func=lambda n: export.FORMATS[n].title,
        help="\n".join(f"- **{f.title}**: {f.description}" for f in export.FORMATS.values()))
    job = jobs.find(KIND, _key(run, dataset))
    running = job is not None and not job.done
    todo = [n for n in fmts if n not in done]
    st.button("Export", key=f"{key_prefix}_export_go", type="primary", icon=":material/ios_share:",
              disabled=running or not todo, on_click=_start, args=(run, dataset, todo),
              help="Writes the files in the run folder's export/ and checks each one on the test set"
                   if todo else "The chosen formats are exported and checked for this version of the model.")
    if running:
        st.fragment(partial(_progress, job), run_every=POLL_S)()
        return  # the table is drawn once, when the whole export has ended (the fragment reruns the page)
    if job is not None and job.error is not None:
        st.error(f"Export failed: {job.error}" if isinstance(job.error, (export.ExportError, ValueError, OSError))
                 else f"Export failed: {type(job.error).__name__}: {job.error}")
    shown = [done[n] for n in fmts if n in done]
    if shown:
        _table(run, shown, key_prefix)
