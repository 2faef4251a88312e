"""A minimal page for AppTest: a runs list and the Import model control below it, as on the Train page."""

import streamlit as st

from mnist_core import runs
from ui import model_import

infos, broken = runs.list_runs()
st.markdown("runs: " + (", ".join(f"{r.name} ({r.preset}, {r.state})" for r in infos) or "none"))
model_import.render()
