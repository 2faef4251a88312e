"""A minimal page for AppTest and the upload browser test: the app's sidebar (with its Current model
picker, drawn first as in app.py), a runs list, and the Import model control below it, as on Train."""

import streamlit as st

from ui import model_import, sidebar, state

infos = state.refresh()
sidebar.render()
st.markdown("runs: " + (", ".join(f"{r.name} ({r.preset}, {r.state})" for r in infos) or "none"))
model_import.render()
