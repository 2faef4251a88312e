"""Draw: draw (or upload) a digit, see the current model's prediction, what it sees, and why."""

import numpy as np
import streamlit as st

from mnist_core import explain, plots
from mnist_core.inference import ModelError, predict_one
from mnist_core.preprocess import MAX_UPLOAD_BYTES, ImageError, load_image, preprocess
from ui import draw_view, loaders, state

METHODS = {"MNIST-style": "mnist", "Naive resize": "naive"}
STEP_TITLES = {"ink": "your digit (ink)", "cropped": "cropped to the ink", "fitted 20x20": "fitted in 20×20",
               "centred 28x28": "centred in 28×28 (model input)", "resized 28x28": "squashed to 28×28 (model input)"}

st.title("Draw")
st.caption("Draw a digit and the current model reads it as you go; below, see what the network actually "
           "receives and which pixels and features its decision rests on.")

info = state.require_current_run("No trained model is available yet: train one first, then come back to draw.")
run_name = info.name
try:
    model = loaders.model(info.path)
except (ModelError, OSError) as e:
    st.error(f"The model of run **{run_name}** cannot be used: {e}")
    st.stop()

# ---- input: the canvas or an upload ---------------------------------------------------------------
left, right = st.columns([1, 1.4], gap="large")
with left:
    source = st.segmented_control("Input", ["Draw", "Upload"], default="Draw", key="draw_source",
                                  label_visibility="collapsed") or "Draw"
    picture: np.ndarray | None = None
    if source == "Draw":
        stroke = st.slider("Stroke width", 6, 40, 20, key="draw_stroke",
                           help="MNIST strokes are about 2-3 px at 28×28, i.e. 20-30 px on this canvas.")
        picture = draw_view.canvas(stroke)
        st.button("Clear", key="draw_clear", icon=":material/delete:", on_click=draw_view.clear_canvas)
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
    method_label = st.segmented_control(
        "Preprocessing", list(METHODS), default="MNIST-style", key="draw_method",
        help="MNIST-style: crop to the ink, fit in 20×20, centre by centre of mass in 28×28 — how MNIST "
             "itself was made. Naive: squash the whole picture to 28×28.") or "MNIST-style"
    method = METHODS[method_label]
    st.caption(f"Model: **{run_name}** ({info.preset}"
               + (f", {info.test_accuracy:.2%} test accuracy" if info.test_accuracy is not None else "")
               + "). Switch it in the sidebar.")

pre = preprocess(picture, method) if picture is not None else None

# ---- prediction ---------------------------------------------------------------------------------
with right:
    if pre is None or pre.blank:
        what = "Draw a digit in the black box" if source == "Draw" else "Upload a picture of a digit"
        st.info(f"{what}: the prediction appears as soon as there is some ink"
                + (" (lift the mouse to send the stroke)." if source == "Draw" else "."),
                icon=":material/draw:")
        if pre is not None and pre.blank:
            st.caption("The picture has no visible ink, so there is nothing to classify.")
    else:
        probs = predict_one(model, pre.image)
        digit = int(probs.argmax())
        top3 = np.argsort(probs)[::-1][:3]
        big, rest = st.columns([1, 2])
        with big:
            st.markdown(f'<div aria-label="predicted digit" data-digit="{digit}" class="draw-prediction" '
                        f'style="font-size:7.5rem;font-weight:700;line-height:1;text-align:center">{digit}</div>',
                        unsafe_allow_html=True)
            st.markdown(f"<div style='text-align:center'>predicted digit · {probs[digit]:.1%}</div>",
                        unsafe_allow_html=True)
        with rest:
            st.markdown("**Top 3**")
            for d in top3:
                st.progress(float(probs[d]), text=f"**{d}** — {probs[d]:.1%}")
            other = preprocess(picture, "naive" if method == "mnist" else "mnist")
            other_probs = predict_one(model, other.image)
            other_digit = int(other_probs.argmax())
            other_label = "a naive resize" if method == "mnist" else "MNIST-style preprocessing"
            st.caption(f"With {other_label} the model would say **{other_digit}** "
                       f"({other_probs[other_digit]:.1%}).")
        st.plotly_chart(plots.probability_bars(probs), key="draw_probs", config={"displayModeBar": False})

if pre is None or pre.blank:
    st.stop()

# ---- what the model sees ------------------------------------------------------------------------
st.subheader("What the model sees")
st.caption("MNIST digits were cropped, size-normalised to 20×20 and centred by centre of mass in a 28×28 "
           "field; the network only ever saw digits made that way. Switch to *Naive resize* (left) to see "
           "what a plain resize of the whole canvas gives it instead, and how the prediction changes.")
steps = {STEP_TITLES.get(k, k): draw_view.thumbnail(v) for k, v in pre.steps.items()}
sizes = {STEP_TITLES.get(k, k): v.shape[:2] for k, v in pre.steps.items()}
st.plotly_chart(plots.image_steps(steps, sizes=sizes), key="draw_steps", config={"displayModeBar": False})

# ---- why ----------------------------------------------------------------------------------------
st.subheader("Why")
sal, cls = explain.saliency(model, pre.image)
cam = explain.grad_cam(model, pre.image, cls)
last_conv = explain.last_conv_name(model)
maps = {f"saliency for {cls}": sal}
if cam is not None:
    maps[f"Grad-CAM ({last_conv}) for {cls}"] = cam
st.plotly_chart(plots.explanation_maps(pre.image, maps), key="draw_why", config={"displayModeBar": False})
st.caption(f"**Saliency**: how strongly each input pixel, changed a little, would change the score of "
           f"**{cls}** (the gradient of that class's logit, averaged over 16 slightly noisy copies of the "
           "input — SmoothGrad — so it shows strokes rather than pixel noise). "
           + ("**Grad-CAM**: which regions of the last conv layer's features pushed towards that class, "
              "upsampled to 28×28 — coarser, but less noisy." if cam is not None else
              "Grad-CAM needs a conv layer, and this model has none."))

st.markdown("**Feature maps of the first conv layers**")
fmaps = explain.feature_maps(model, pre.image, max_layers=2)
if not fmaps:
    st.info(f"This model ({info.preset}) has no convolution layers: it flattens the 28×28 image straight "
            "into dense layers, so there are no feature maps to show. Pick a CNN in the sidebar to see them.")
for fm in fmaps:
    h, w, c = fm.maps.shape
    after = "" if fm.shown_after == fm.layer else f" after {fm.shown_after}"
    shown = "all" if c <= 32 else "the 32 most active of"
    st.caption(f"`{fm.layer}`{after}: {shown} {c} channels, {w}×{h} each. Bright = strong activation "
               "(each map scaled on its own).")
    st.plotly_chart(plots.feature_map_grid(fm.maps), key=f"draw_fmap_{fm.layer}",
                    config={"displayModeBar": False})
