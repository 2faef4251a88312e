"""mnist-studio: the router. Page config, the shared sidebar, and navigation over pages/."""

import streamlit as st

from ui import sidebar

st.set_page_config(page_title="mnist-studio", page_icon=":material/draw:", layout="wide")

# Titles and icons of every page, in one place (pages link to each other through these objects).
PAGES = {
    "home": st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    "train": st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    "dataset": st.Page("pages/dataset.py", title="Dataset", icon=":material/grid_view:"),
    "evaluate": st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    "draw": st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
}
st.session_state["_pages"] = PAGES  # so pages can st.page_link to each other without re-declaring them

page = st.navigation(list(PAGES.values()))
sidebar.render()
page.run()
