"""Draw: draw (or upload) a digit, see the current model's prediction while you draw, what it sees, and why.

A stroke reruns one fragment and nothing else: the pad and the prediction first (streamed to the browser
as soon as they are made), then the explanations, computed once per distinct finished drawing. The
title, the current run (a listing of the runs folder) and the sidebar run only when the whole page runs.
"""

import streamlit as st

from mnist_core import explain
from mnist_core.inference import ModelError
from mnist_core.preprocess import MAX_UPLOAD_BYTES, ImageError, load_image, preprocess
from ui import classroom_view as cv
from ui import draw_view, loaders, state

METHODS = {"MNIST-style": "mnist", "Naive resize": "naive"}
OTHER = {"mnist": ("naive", "a naive resize of the whole picture"), "naive": ("mnist", "MNIST-style preprocessing")}
STEP_TITLES = {"ink": "your digit (ink)", "cropped": "cropped to the ink", "fitted 20x20": "fitted in 20×20",
               "centred 28x28": "centred in 28×28 (model input)", "resized 28x28": "squashed to 28×28 (model input)"}

st.title("Draw")
st.caption("Draw a digit and the current model reads it while you draw; below, see what the network "
           "actually receives and which pixels and features its decision rests on.")

info = state.require_current_run("No trained model is available yet: train one first, then come back to draw.")
try:
    model = loaders.model(info.path)
except (ModelError, OSError) as e:
    st.error(f"The model of run **{info.name}** cannot be used: {e}")
    st.stop()


def explanations(why: draw_view.Why) -> None:
    """What the model sees and why, for one finished drawing (all images made once, in `draw_view.why`,
    as PNGs that st.image passes on as they are: "auto" would re-encode them as JPEG on every run)."""
    st.subheader("What the model sees")
    st.caption("MNIST digits were cropped, size-normalised to 20×20 and centred by centre of mass in a 28×28 "
               "field; the network only ever saw digits made that way. Switch to *Naive resize* (above) to see "
               "what a plain resize of the whole canvas gives it instead, and how the prediction changes.")
    st.image([png for png, _ in why.steps.values()],
             caption=[f"{STEP_TITLES.get(k, k)} · {w}×{h} px" for k, (_, (h, w)) in why.steps.items()],
             width=draw_view.STEP_SIDE, output_format="PNG")
    if why.other is not None:
        label, d, p = why.other
        st.caption(f"With {label} the model would say **{d}** ({p:.1%}).")

    st.subheader("Why")
    st.image(list(why.panels.values()), caption=list(why.panels), output_format="PNG")
    st.markdown(draw_view.hot_colorbar_html("0: no influence", "1: the strongest pixel of that map"),
                unsafe_allow_html=True)
    st.caption(f"**Saliency**: how strongly each input pixel, changed a little, would change the score of "
               f"**{why.cls}** (the gradient of that class's logit, averaged over 16 slightly noisy copies of the "
               "input — SmoothGrad — so it shows strokes rather than pixel noise). "
               + ("**Grad-CAM**: which regions of the last conv layer's features pushed towards that class, "
                  "upsampled to 28×28 — coarser, but less noisy. " if why.has_cam else
                  "Grad-CAM needs a conv layer, and this model has none. ")
               + "Each map is scaled to its own strongest pixel; the cyan line is the outline of your digit.")

    st.markdown("**Feature maps of the first conv layers**")
    if not why.mosaics:
        st.info(f"This model ({info.preset}) has no convolution layers: it flattens the 28×28 image straight "
                "into dense layers, so there are no feature maps to show. Pick a CNN in the sidebar to see them.")
    for fm, mosaic, channels in why.mosaics:
        h, w, c = fm.maps.shape
        after = "" if fm.shown_after == fm.layer else f" after {fm.shown_after}"
        shown = "all" if len(channels) == c else f"the {len(channels)} most active of"
        st.caption(f"`{fm.layer}`{after}: {shown} {c} channels, {w}×{h} each. Bright = strong activation "
                   "(each map scaled on its own).")
        st.image(mosaic, output_format="PNG")
    # Last, so a browser (and the benchmark) can tell which drawing the explanations shown belong to.
    st.markdown(f'<div data-why-input="{why.key}"></div>', unsafe_allow_html=True)


@st.fragment
def draw_and_explain(model, info) -> None:
    left, right = st.columns([1, 1.4], gap="large")
    # The settings go below the pad and the prediction, so that on a phone (where columns stack) the
    # prediction comes right after the pad instead of below them.
    stroke_col, method_col, model_col = st.columns(3, gap="large")
    with method_col:
        method_label = st.segmented_control(
            "Preprocessing", list(METHODS), default="MNIST-style", key="draw_method",
            help="MNIST-style: crop to the ink, fit in 20×20, centre by centre of mass in 28×28 — how MNIST "
                 "itself was made. Naive: squash the whole picture to 28×28.") or "MNIST-style"
        method = METHODS[method_label]
    with model_col:
        st.caption(f"Model: **{info.name}** ({info.preset}"
                   + (f", {info.test_accuracy:.2%} test accuracy" if info.test_accuracy is not None else "")
                   + "). Switch it in the sidebar.")
    with left:
        source = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", key="draw_source",
                                      label_visibility="collapsed") or "Draw"
        picture, final = None, True
        if source == "Draw":
            with stroke_col:
                stroke = st.slider("Stroke width", 6, 40, 20, key="draw_stroke",
                                   help="MNIST strokes are about 2-3 px at 28×28, i.e. 20-30 px on this canvas.")
            drawing = draw_view.pad(stroke)
            picture, final = drawing.picture, drawing.final
            st.caption("Draw with a mouse, a pen or a finger.")
        else:
            upload = st.file_uploader("An image of one digit (PNG or JPEG, any size, light or dark background)",
                                      type=["png", "jpg", "jpeg"], key="draw_upload",
                                      max_upload_size=MAX_UPLOAD_BYTES // 2**20)
            if upload is not None:
                try:
                    picture = load_image(upload.getvalue(), upload.name)
                except ImageError as e:
                    st.error(f"This file cannot be used: {e}")
                else:
                    st.image(picture, caption=f"{upload.name} ({picture.shape[1]}×{picture.shape[0]} px)",
                             width=280)

    pre = preprocess(picture, method) if picture is not None else None
    with right:
        if pre is None or pre.blank:
            draw_view.forget_why()  # nothing to explain: the next stroke must not bring back old ones
            what = "Draw a digit in the black box" if source == "Draw" else "Upload a picture of a digit"
            st.info(f"{what}: the prediction appears as soon as there is some ink.", icon=":material/draw:")
            if pre is not None and pre.blank:
                st.caption("The picture has no visible ink, so there is nothing to classify.")
            return
        # One forward pass: the probabilities, and the feature maps the explanations show.
        probs, maps = explain.predict_with_maps(model, pre.image)
        key = draw_view.drawing_key(info.name, method, pre.image, picture)
        # One element for the whole answer (digit, top 3, all ten): one delta to send and to draw.
        st.markdown(draw_view.prediction_html(probs, key, final), unsafe_allow_html=True)
        if final:  # the class's own handwriting: what you meant, with your drawing (Dataset, Evaluate, Train)
            cv.add_drawing_ui(pre.image, picture, int(probs.argmax()), key="draw_cs")

    # The prediction is on its way to the browser; now the explanations. While a stroke is being drawn
    # they stay those of the last finished drawing: they are worked out once the stroke ends.
    cur = draw_view.Current(key, pre.image, maps, pre.steps, method, picture)
    why = draw_view.why(model, cur, *OTHER[method]) if final else draw_view.last_why()
    if why is not None:
        explanations(why)


draw_and_explain(model, info)
