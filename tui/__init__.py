"""The clipsearch terminal UI (installed as `clipsearch_tui`; needs the `tui` extra).

`run(settings)` runs the app in this terminal and returns an exit code; `ClipSearchApp` is the
Textual app itself (tests drive it with `App.run_test`).
"""

from clipsearch_tui.app import ClipSearchApp, run

__all__ = ["ClipSearchApp", "run"]
