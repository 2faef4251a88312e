"""Bring a part of the page into view once, after a click changed it somewhere the user is not looking
(Start on the Train page fills the live panel above the form; "Open" on Evaluate changes the gallery
beside the matrix).

Streamlit has no scroll command, so `into_view` adds a small script (`st.html` with JavaScript, run in
the page itself, not in an iframe) that scrolls the container with the given key (Streamlit gives it
the class `st-key-<key>`) into view as soon as it is on the page. Call it in the script run right after
the click, once: a flag in session state, popped where the target is drawn, keeps later reruns still.
"""

from __future__ import annotations

import json
import time

import streamlit as st


def into_view(key: str, block: str = "start") -> None:
    """Scroll the container keyed `key` into view (smoothly) once this run has drawn it."""
    target = json.dumps(f".st-key-{key}")
    # The nonce makes each request a new element, so the browser runs the script again.
    st.html(f"""<script data-nonce="{time.time_ns()}">
(() => {{
  const go = (tries) => {{
    const el = document.querySelector({target});
    if (el) {{
      el.style.scrollMarginTop = "80px";  // clear of Streamlit's fixed header bar
      el.scrollIntoView({{behavior: "smooth", block: {json.dumps(block)}}});
    }}
    else if (tries > 0) setTimeout(() => go(tries - 1), 100);
  }};
  setTimeout(() => go(30), 50);
}})();
</script>""", unsafe_allow_javascript=True)
