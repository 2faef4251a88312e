"""Sweep: search hyperparameters; every trial is an ordinary run (Train, Evaluate, Draw and export use it).

The page never trains and imports neither TensorFlow nor Ray: Start hands the sweep to the core
(mnist_core/sweeps.py: the trials queue for this server's training slots, or go to Ray Tune when
MNIST_RAY_ADDRESS is set) and everything shown is read back from the sweep's and its trials' folders.
The view and the form are ui/sweep_view.py.
"""

from __future__ import annotations

import streamlit as st

from ui import sweep_view

st.title("Sweep")
st.caption("Search learning rate, batch size, network width, dropout, augmentation, schedule and epochs: random "
           "or grid search, with poor trials stopped early (ASHA). Each trial is a run of its own.")

sweep_view.render_sweeps()
st.subheader("New sweep")
sweep_view.render_form()
