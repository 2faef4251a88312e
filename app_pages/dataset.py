"""Dataset: what MNIST is, before any model exists. Where the data comes from, a browsable grid of the
images with any one enlarged to its pixel values, class balance, mean digits, pixel intensities, and a
2-D map (PCA, t-SNE) of a sample. Numpy, scikit-learn and plotly only: this page never starts
TensorFlow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core import classset, plots
from mnist_core.data import DataError
from ui import dataset_view as dv
from ui import jobs, loaders

SPLIT_NAMES = {"train": "training", "test": "test"}
GRID_SIZES = {5: "5 × 5", 10: "10 × 10", 15: "15 × 15"}
EMB_SIZES = [300, 500, 1000, 2000, 3000]
PERPLEXITIES = [5, 10, 30, 50]

st.title("Dataset")
st.markdown(
    "MNIST is a collection of **handwritten digits**: small grayscale pictures, each labelled with the "
    "digit 0–9 that the writer meant. A network learns from the *training* images and is graded on the "
    "*test* images, which it never sees while learning."
)

try:
    src = loaders.data_source()
    ds = loaders.dataset()
except DataError as e:
    st.error(f"The data could not be read: {e}")
    st.info("Fix or unset `MNIST_DATA_DIR` (see *Use another data source* on this page) and reload.")
    st.stop()
key = ds.source.key

# --- the data source ----------------------------------------------------------------------------
c1, c2, c3, c4 = st.columns([1.5, 1, 1, 1.3])
c1.metric("Data source", src.title,
          help=src.label)
c2.metric("Training images", f"{src.n_train:,}")
c3.metric("Test images", f"{src.n_test:,}")
h, w = ds.x_train.shape[1:]
c4.metric("Image size", f"{h} × {w} pixels", help=f"{h * w} numbers per image, each 0 (black) … 255 (white ink)")
st.caption(f"Read from `{src.path}`. Each image: {h}×{w} = {h * w} grey levels from 0 (background) to 255 "
           "(ink), plus its label.")
with st.expander("Use another data source"):
    st.markdown(
        "The app looks for MNIST in this order:\n"
        "1. **A data directory** given by the `MNIST_DATA_DIR` environment variable, holding the four "
        "original IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, "
        "`t10k-labels-idx1-ubyte`, gzipped or not) or a Keras-style `mnist.npz`.\n"
        "2. **The Keras cache** `~/.keras/datasets/mnist.npz` (the full 60,000 + 10,000 images), downloaded "
        "there when the machine is online and `MNIST_OFFLINE` is not set.\n"
        "3. **The bundled sample** shipped with the app, so it works offline on a fresh machine.\n\n"
        "To switch, set the variable and restart the app:"
    )
    st.code("MNIST_DATA_DIR=/path/to/mnist streamlit run app.py", language="bash")

# --- browse -------------------------------------------------------------------------------------
st.subheader("Browse the images")


def _reset_browse() -> None:
    st.session_state["ds_page"] = 1
    st.session_state.pop("ds_index", None)  # the enlarged image becomes the first of the new grid


def _new_sample() -> None:
    st.session_state["ds_seed"] = int(st.session_state.get("ds_seed", 0)) + 1
    _reset_browse()


def _pick_tile() -> None:
    picked = dv.selected_indices("ds_grid")
    if picked:
        st.session_state["ds_index"] = picked[0]


# Keys that callbacks write get their defaults here, not as widget arguments (Streamlit warns on both).
for _k, _v in (("ds_split", "train"), ("ds_seed", 0), ("ds_page", 1), ("ds_emb_split", "train")):
    st.session_state.setdefault(_k, _v)

ctl = st.columns([1.2, 4, 1.2])
split = ctl[0].segmented_control("Split", list(SPLIT_NAMES), key="ds_split", required=True,
                                 format_func=lambda s: SPLIT_NAMES[s].capitalize(), on_change=_reset_browse)
digits = ctl[1].pills("Digits (none selected = all)", list(range(10)), selection_mode="multi", key="ds_digits",
                      on_change=_reset_browse)
grid_n = ctl[2].selectbox("Grid", list(GRID_SIZES), index=1, format_func=GRID_SIZES.get, key="ds_grid_n",
                          on_change=_reset_browse)
ctl = st.columns([1, 1.2, 1.3, 1.5, 3], vertical_alignment="bottom")
shuffled = ctl[0].toggle("Shuffle", value=True, key="ds_shuffle", on_change=_reset_browse,
                         help="Off: the images in file order.")
seed = ctl[1].number_input("Seed", min_value=0, step=1, key="ds_seed", disabled=not shuffled,
                           on_change=_reset_browse)
ctl[2].button("New sample", key="ds_new", on_click=_new_sample, icon=":material/shuffle:",
              disabled=not shuffled, help="Draw another random grid (seed + 1).")
page_slot, labels_slot = ctl[3], ctl[4]

x_split, y_split = dv.split_arrays(split)
digits_t = tuple(sorted(int(d) for d in digits or ()))
order = dv.browse_indices(key, split, digits_t, int(seed) if shuffled else None)
per_page = grid_n * grid_n
n_pages = max(1, -(-len(order) // per_page))
if st.session_state.get("ds_page", 1) > n_pages:
    st.session_state["ds_page"] = n_pages

page_no = page_slot.number_input(f"Page (of {n_pages:,})", min_value=1, max_value=n_pages, step=1, key="ds_page")
show_labels = labels_slot.toggle("Show each image's label", value=True, key="ds_show_labels")

left, right = st.columns(2, gap="large")  # the enlarged image zooms to the ink: half the width is room enough
with left:
    shown = order[(page_no - 1) * per_page: page_no * per_page]
    which = "all digits" if not digits_t else "digit" + ("s " if len(digits_t) > 1 else " ") + \
        ", ".join(map(str, digits_t))
    if len(shown) == 0:
        st.warning(f"There are no images of {which} in the {SPLIT_NAMES[split]} set.")
    else:
        fig = plots.dataset_grid(x_split[shown], shown, y_split[shown], cols=grid_n, show_labels=show_labels,
                                 height=480)
        st.plotly_chart(fig, key="ds_grid", on_select=_pick_tile, selection_mode="points",
                        config={"displayModeBar": False})
        st.caption(f"Images {(page_no - 1) * per_page + 1:,}–{(page_no - 1) * per_page + len(shown):,} of "
                   f"{len(order):,} ({which}, {SPLIT_NAMES[split]} set, "
                   f"{'shuffled with seed ' + str(seed) if shuffled else 'file order'}). "
                   "Hover a tile for its number and label; click it to enlarge it.")
        with st.expander("The numbers behind this grid"):
            st.dataframe(pd.DataFrame({"row": np.arange(len(shown)) // grid_n + 1,
                                       "column": np.arange(len(shown)) % grid_n + 1,
                                       "image #": shown, "label": y_split[shown]}),
                         hide_index=True, key="ds_grid_table", height=240)

with right:
    if len(shown) and not 0 <= st.session_state.get("ds_index", -1) < len(y_split):
        st.session_state["ds_index"] = int(shown[0])
    idx = st.number_input(f"Image # in the {SPLIT_NAMES[split]} set", min_value=0, max_value=len(y_split) - 1,
                          step=1, key="ds_index", help="Or click a tile in the grid.")
    show_values = st.toggle("Write the pixel values in", value=True, key="ds_values",
                            help="Zooms in on the ink so that the numbers are large enough to read.")
    img = x_split[idx]
    st.plotly_chart(plots.image(img, title=f"Image #{idx:,}: label {y_split[idx]}", show_values=show_values,
                                height=520, zoom_to_ink=show_values), key="ds_big")
    ink = img > 0
    rows, cols = plots.ink_box(img)
    zoom = (f" Shown: rows {rows[0]}–{rows[-1]} and columns {cols[0]}–{cols[-1]} of {h}×{w}, round the ink; "
            "every pixel outside them (and every blank cell) is 0." if show_values and ink.any() else "")
    st.caption(f"What the network receives: {img.size} numbers. {ink.sum()} of them ({ink.mean():.0%}) are "
               f"ink (> 0); the brightest is {img.max()}. The label {y_split[idx]} is the answer it must learn."
               + zoom)

# --- statistics ---------------------------------------------------------------------------------
st.subheader("How many of each digit?")
counts = dv.class_counts(key)
c_left, c_right = st.columns([3, 2])
with c_left:
    as_counts = st.toggle("Show counts instead of percentages", key="ds_counts")
    st.plotly_chart(plots.class_distribution({"train": ds.y_train, "test": ds.y_test}, percent=not as_counts),
                    key="ds_classes")
with c_right:
    share = counts["train"] / max(1, counts["train"].sum())
    st.dataframe(pd.DataFrame({"digit": range(10), "train": counts["train"], "test": counts["test"],
                               "train %": np.round(share * 100, 1)}),
                 hide_index=True, key="ds_counts_table", height=420)
if counts["train"].min() == counts["train"].max():
    balance = (f"Every digit has exactly {counts['train'][0]:,} training images ({share[0]:.1%}): this set is "
               "balanced by construction")
else:
    balance = (f"Most common in training: **{share.argmax()}** ({share.max():.1%}); least common: "
               f"**{share.argmin()}** ({share.min():.1%}). The classes are roughly balanced")
st.caption(balance + ", so plain accuracy is a fair score, and a model that always guessed one digit would get "
           "only about 10% right.")

st.subheader("What does the average digit look like?")
st.plotly_chart(plots.mean_digit_images(dv.mean_images(key, "train"), counts["train"]), key="ds_means")
st.caption("Each picture is the pixel-by-pixel average of every training image of that digit. Sharp "
           "strokes mean people write that digit consistently; blurry ones mean lots of variety in how it "
           "is written.")

st.subheader("Pixel intensities")
hists = dv.pixel_histograms(key)
log_y = st.toggle("Logarithmic scale", value=True, key="ds_log")
st.plotly_chart(plots.pixel_intensity_histogram(hists, log_y=log_y), key="ds_hist")
train_h = hists["train"] / hists["train"].sum()
st.caption(f"{train_h[0]:.1%} of all training pixels are pure background (0) and {train_h[250:].sum():.1%} "
           "are full-strength ink (250–255); everything else is the anti-aliased edge of a stroke. Networks "
           "are fed these values divided by 255, i.e. between 0 and 1.")

# --- 2-D map ------------------------------------------------------------------------------------
st.subheader("A map of the digits")
st.markdown(
    "Each image is a point in a 784-dimensional space (one axis per pixel). These maps squash that space "
    "to 2-D so we can look at it. **PCA** keeps the two directions along which the images vary most; "
    "**t-SNE** instead keeps images that look alike close together. **Drag a box** over some points to see "
    "their images (the lasso is in the chart's toolbar, on its right when you hover it), or click one point."
)


def _pick_points(chart_key: str) -> None:
    st.session_state["ds_emb_pick"] = dv.selected_indices(chart_key)


def _enlarge(index: int) -> None:
    st.session_state["ds_split"] = st.session_state["ds_emb_split"]
    st.session_state["ds_index"] = index


ec = st.columns(4)
emb_split = ec[0].segmented_control("Split", list(SPLIT_NAMES), key="ds_emb_split", required=True,
                                    format_func=lambda s: SPLIT_NAMES[s].capitalize(),
                                    on_change=lambda: st.session_state.pop("ds_emb_pick", None))
emb_n = ec[1].select_slider("Points", EMB_SIZES, value=1000, key="ds_emb_n",
                            on_change=lambda: st.session_state.pop("ds_emb_pick", None))
emb_seed = ec[2].number_input("Sample seed", min_value=0, value=0, step=1, key="ds_emb_seed",
                              on_change=lambda: st.session_state.pop("ds_emb_pick", None))
perplexity = ec[3].select_slider("t-SNE perplexity", PERPLEXITIES, value=30, key="ds_perplexity",
                                 help="Roughly how many neighbours each point tries to keep close.")
emb_split = emb_split or "train"
x_emb, y_emb = dv.split_arrays(emb_split)
emb_idx, pca_xy, ratio = dv.pca(key, emb_split, int(emb_n), int(emb_seed))

m_left, m_right = st.columns(2, gap="medium")
with m_left:
    st.plotly_chart(plots.embedding_scatter(pca_xy, y_emb[emb_idx], emb_idx, title=f"PCA of {len(emb_idx):,} images",
                                            axis_titles=(f"PC 1 ({ratio[0]:.1%} of the variance)",
                                                         f"PC 2 ({ratio[1]:.1%})")),
                    key="ds_pca", on_select=lambda: _pick_points("ds_pca"))
with m_right:
    args = (key, emb_split, int(emb_n), int(emb_seed), int(perplexity))
    job = dv.tsne_job(*args)
    if job is not None and job.succeeded:
        st.plotly_chart(plots.embedding_scatter(job.result, y_emb[emb_idx], emb_idx,
                                                title=f"t-SNE of the same {len(emb_idx):,} images "
                                                      f"(perplexity {perplexity})"),
                        key="ds_tsne", on_select=lambda: _pick_points("ds_tsne"))
        st.caption(f"Computed in {job.elapsed:.0f} s; kept for the next visit.")
    elif job is not None and not job.done:
        @st.fragment(run_every=1.0)
        def _tsne_progress() -> None:
            if job.done:
                st.rerun()  # redraw the whole page with the finished map
            st.progress(job.progress, text=dv.describe_tsne(job))
            if st.button("Cancel", key="ds_tsne_cancel"):
                job.cancel()

        st.markdown("#### t-SNE")
        _tsne_progress()
    else:
        st.markdown("#### t-SNE")
        if job is not None and job.error is not None:
            st.warning("The last t-SNE run was cancelled." if isinstance(job.error, jobs.Cancelled)
                       else f"t-SNE failed: {type(job.error).__name__}: {job.error}")
        st.info(f"t-SNE takes from a few seconds to a minute or more for {int(emb_n):,} points. It runs in the "
                "background: the rest of the page stays usable, and the result is kept for the next visit.")
        st.button("Compute t-SNE", key="ds_tsne_go", type="primary", icon=":material/scatter_plot:",
                  on_click=lambda: dv.start_tsne(*args))

picked = [i for i in st.session_state.get("ds_emb_pick", []) if 0 <= i < len(y_emb)]
if picked:
    if len(picked) == 1:
        i = picked[0]
        p1, p2 = st.columns([1, 3])
        p1.plotly_chart(plots.image(x_emb[i], title=f"Image #{i:,}: label {y_emb[i]}", height=260), key="ds_pick_img")
        p2.markdown(f"Selected **image #{i:,}** of the {SPLIT_NAMES[emb_split]} set, labelled **{y_emb[i]}**.")
        p2.button("Enlarge it in the browser above", key="ds_pick_enlarge", on_click=_enlarge, args=(i,))
    else:
        labs = y_emb[picked]
        tally = ", ".join(f"{c} × {d}" for d, c in sorted(zip(*np.unique(labs, return_counts=True), strict=True),
                                                        key=lambda t: -t[1]))
        st.markdown(f"**{len(picked):,} images selected**: {tally}." +
                    (" Showing the first 60." if len(picked) > 60 else ""))
        sel = np.array(picked[:60])
        st.plotly_chart(plots.dataset_grid(x_emb[sel], sel, y_emb[sel], cols=15, show_labels=True,
                                           height=max(120, 70 * (-(-len(sel) // 15)))),
                        key="ds_pick_grid", config={"displayModeBar": False})

# --- the class's own handwriting ------------------------------------------------------------------
st.subheader("Our handwriting: the class set")
class_set = classset.load()  # (not ui.classroom_view: it imports scikit-learn's metrics, seconds on a cold server)
if not len(class_set):
    st.info("Nobody has added a drawing yet. On the Draw page, draw a digit and press **Add to the class set**: "
            "the drawings collect here, and the class can train on them and score every model on them.")
else:
    held = class_set.holdout
    c1, c2, c3 = st.columns(3)
    c1.metric("Drawings", f"{len(class_set):,}")
    c2.metric("Contributors", f"{len(set(class_set.contributors)):,}")
    c3.metric("Held out for scoring", f"{int(held.sum()):,}",
              help="Never used for training: the Leaderboard and Evaluate score models on these.")
    per_digit = np.bincount(class_set.labels, minlength=10)
    st.caption("Per digit: " + ", ".join(f"{d}: {n}" for d, n in enumerate(per_digit)))
    newest = np.arange(len(class_set))[::-1][:150]
    st.plotly_chart(plots.dataset_grid(class_set.images[newest], newest, class_set.labels[newest], cols=15,
                                       show_labels=True, height=max(140, 70 * (-(-len(newest) // 15)))),
                    key="ds_classset", config={"displayModeBar": False})
    st.caption("The newest 150 drawings, each with the digit its author meant. The command line exports them all: "
               "`python -m mnist_core classset --export DIR` (IDX files, or `--format npz`).")
