"""Streamlit glue shared by the pages: session-state keys, cached loaders, the sidebar model picker.
Kept out of mnist_core so the engine never depends on streamlit."""
