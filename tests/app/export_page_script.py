"""A minimal page for AppTest: the Export panel for the run folder named by EXPORT_VIEW_RUN, as the Train
and Evaluate pages draw it."""

import os
from pathlib import Path

from ui import export_view

export_view.render(Path(os.environ["EXPORT_VIEW_RUN"]), "xp")
