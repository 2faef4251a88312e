"""mnist-studio: the router. Page config, the shared sidebar, and navigation over app_pages/.

The page files are deliberately not in a folder named `pages/`: Streamlit would also treat that as an
old-style page directory and, on a fresh server, run a deep link such as /draw without this router."""

import streamlit as st

from mnist_core import identity
from ui import after_run, session, sidebar, state

# An emoji icon: Streamlit draws it as an inline SVG, where a :material/...: icon is fetched from
# fonts.gstatic.com (it failed offline).
st.set_page_config(page_title="mnist-studio", page_icon="✍️", layout="wide")
session.require_access()  # MNIST_ACCESS_CODE: nothing but its prompt until it is given
session.require_identity()  # a classroom or a signed-in server: who this session is

# Titles and icons of every page, in one place (pages link to each other through these objects).
PAGES = {
    "home": st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    "train": st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    "sweep": st.Page("app_pages/sweep.py", title="Sweep", icon=":material/tune:"),
    "dataset": st.Page("app_pages/dataset.py", title="Dataset", icon=":material/grid_view:"),
    "evaluate": st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    "draw": st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:"),
    "leaderboard": st.Page("app_pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
}
if identity.settings().classroom:
    PAGES["teacher"] = st.Page("app_pages/teacher.py", title="Teacher", icon=":material/school:")
st.session_state["_pages"] = PAGES  # so pages can st.page_link to each other without re-declaring them

page = st.navigation(list(PAGES.values()))
state.refresh()  # the one listing of the runs folder for this script run (sidebar and page share it)
sidebar.render()
try:
    page.run()
finally:
    after_run.after_run()  # keeps what Streamlit does after every run (and poll) cheap
