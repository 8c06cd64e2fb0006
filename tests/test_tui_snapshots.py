"""What the terminal UI looks like, compared with the SVG screenshots in tests/__snapshots__.

After an intended change of appearance: `pytest tests/test_tui_snapshots.py --snapshot-update`,
then look at the new SVGs before committing them. Paths show as `~/photos/...` (HOME is the
collection's root) and the query time is frozen, so the screenshots are the same on every run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clipsearch_onnx.settings import Settings
from clipsearch_tui.app import ClipSearchApp
from clipsearch_tui.query import QueryBox
from clipsearch_tui.status import StatusLine
from tests.test_tui import settle

SIZE = (160, 48)


@pytest.fixture
def app(indexed_collection, monkeypatch) -> ClipSearchApp:
    """The list view: the table beside the selected picture."""
    monkeypatch.setenv("HOME", str(indexed_collection.root))
    return ClipSearchApp(Settings(index_dir=indexed_collection.index), view="list")


@pytest.fixture
def grid(indexed_collection, monkeypatch) -> ClipSearchApp:
    """The gallery (the default view), 8 results a page so that paging shows at 24 images."""
    monkeypatch.setenv("HOME", str(indexed_collection.root))
    return ClipSearchApp(Settings(index_dir=indexed_collection.index), page=8)


def querying(text: str, *keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        app.query_one(QueryBox).cursor_blink = False
        await settle(pilot)
        app.query_one(QueryBox).value = text
        await pilot.press("enter", *keys)
        await settle(pilot)
        app.query_one(StatusLine).took_ms = 12.0
        await pilot.pause()

    return run_before


def test_text_query_results(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, run_before=querying("a dog running on the beach"))


def test_selection_moved_down(snap_compare, app):
    run_before = querying("a red car parked next to a white building", "down", "down")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_grid_of_thumbnails(snap_compare, grid):
    assert snap_compare(grid, terminal_size=SIZE, run_before=querying("a dog running on the beach"))


def test_grid_focused_and_moved(snap_compare, grid):
    """Tab focuses the gallery (a bright border), arrows move the heavy-bordered selection."""
    run_before = querying("a red car parked next to a white building", "tab", "right", "down")
    assert snap_compare(grid, terminal_size=SIZE, run_before=run_before)


def test_grid_in_a_small_terminal(snap_compare, grid):
    run_before = querying("a dog running on the beach")
    assert snap_compare(grid, terminal_size=(80, 24), run_before=run_before)


def test_missing_file_message(snap_compare, app):
    run_before = querying("~/photos/missing.jpg")
    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_help_screen(snap_compare, app):
    async def run_before(pilot) -> None:
        pilot.app.query_one(QueryBox).cursor_blink = False
        await settle(pilot)
        await pilot.press("f1")

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_launch_without_an_index(snap_compare):
    app = ClipSearchApp(Settings(index_dir=Path("/nonexistent/clipsearch-index")))

    async def run_before(pilot) -> None:
        pilot.app.query_one(QueryBox).cursor_blink = False
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_filter_bar(snap_compare, grid):
    """F2 shows the filters; a glob applied to the search shown narrows it."""

    async def run_before(pilot) -> None:
        await querying("a dog running on the beach", "f2")(pilot)
        pilot.app.query_one("#filter-glob").value = "*.png"
        pilot.app.query_one("#filter-glob").focus()
        await pilot.press("enter")
        await settle(pilot)
        pilot.app.query_one(StatusLine).took_ms = 12.0
        for box in pilot.app.query("Input"):
            box.cursor_blink = False
        await pilot.pause()

    assert snap_compare(grid, terminal_size=(100, 36), run_before=run_before)
