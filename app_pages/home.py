"""Home: what the app is, which data and model are in use, and routes to every page."""

import streamlit as st

from mnist_core.data import DataError
from ui import fmt, loaders, state

PAGES = st.session_state["_pages"]

st.title("mnist-studio")
st.markdown(
    "Train, inspect and play with convolutional networks that read handwritten digits "
    "([MNIST](https://en.wikipedia.org/wiki/MNIST_database)): watch a network learn, look at the data it "
    "learns from, see exactly where it goes wrong, and draw your own digits to test it."
)

col_data, col_model = st.columns(2)
with col_data:
    st.subheader("Data")
    try:
        src = loaders.data_source()
        st.metric(src.title, f"{src.n_train:,} train / {src.n_test:,} test")
        st.caption(f"Read from `{src.path}`.")
        if src.name == "bundled":
            st.info("This is a 10,000-image sample of MNIST shipped with the app, so it works offline. "
                    "Set `MNIST_DATA_DIR` to a folder with the MNIST IDX files to use the full data.")
    except DataError as e:
        st.error(f"The data could not be read: {e}")
with col_model:
    st.subheader("Model")
    info = state.current_run()
    if info:
        name = info.name
        acc = f"{info.test_accuracy:.2%} test accuracy" if info.test_accuracy is not None else "not evaluated"
        st.metric(f"Current model: {name}", acc)
        measured = (f" Its accuracy is on {fmt.test_set(info.metrics)}, measured when it was trained (Evaluate "
                    "measures it on the data in use)." if info.test_accuracy is not None else "")
        st.caption(f"Preset `{info.preset}`, {info.params:,} parameters.{measured} Switch it in the sidebar.")
    else:
        st.warning("No trained model is available yet. Train one first.")
        state.offer_pretrained()

st.subheader("Where to go")
cols = st.columns(4)
blurbs = {
    "train": "Configure a network and watch it learn, live.",
    "dataset": "Browse the digits, their classes and a 2-D map of them.",
    "evaluate": "Confusion matrix, per-class metrics and every mistake.",
    "draw": "Draw a digit and see what the model sees, and why.",
}
for col, (key, blurb) in zip(cols, blurbs.items(), strict=True):
    with col, st.container(border=True):
        st.page_link(PAGES[key], label=PAGES[key].title, icon=PAGES[key].icon)
        st.caption(blurb)
