"""The gallery (the TUI's grid of thumbnails), paging, opening a result and focus, driven key by
key over the real index of 24 images and the tiny model."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from PIL import Image
from textual.widgets import Input, Select

from clipsearch_onnx.filters import Filter
from clipsearch_onnx.settings import Settings
from clipsearch_tui.app import ClipSearchApp
from clipsearch_tui.browser import Browser
from clipsearch_tui.gallery import Gallery, Tile
from clipsearch_tui.opener import CannotOpen, open_file, viewer_command
from clipsearch_tui.query import QueryBox
from clipsearch_tui.results import ResultsTable
from clipsearch_tui.thumbs import Thumbnails
from tests.test_tui import TEXT, drive, expected, settle, text_of, type_query


@pytest.fixture
def settings(indexed_collection) -> Settings:
    return Settings(index_dir=indexed_collection.index)


def tiles(app: ClipSearchApp) -> list[Tile]:
    return list(app.query_one(Gallery).query(Tile))


def selected_tiles(app: ClipSearchApp) -> list[int]:
    return [t.index for t in tiles(app) if t.has_class("-selected")]


def test_the_grid_shows_thumbnails_with_rank_score_and_name(settings):
    want = expected(settings, text=TEXT, k=20)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        shown = tiles(app)
        assert [t.result for t in shown] == want
        assert all(t.picture.image is not None for t in shown)  # every thumbnail loaded
        label = str(shown[0].query_one(".tile-label").render())
        assert label == f"1 {want[0].score:.3f} {Path(want[0].path).name}"
        assert app.query_one(Gallery).columns == 6  # 160 cells wide
        assert selected_tiles(app) == [0]
        assert str(Path(want[0].path).name) in text_of(app, "#grid-about")

    drive(settings, script)


def test_arrows_move_through_the_grid_and_ctrl_g_switches_to_the_list(settings):
    want = expected(settings, text=TEXT, k=20)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        gallery = app.query_one(Gallery)
        await pilot.press("tab")
        assert app.focused is gallery
        await pilot.press("right", "right", "down", "left")  # columns of 6: 0 -> 2 -> 8 -> 7
        assert selected_tiles(app) == [7]
        assert app.query_one(Browser).selected == want[7]
        await pilot.press("ctrl+g")
        await settle(pilot)
        table = app.query_one(ResultsTable)
        assert not gallery.display or not app.query_one("#grid-view").display
        assert table.cursor_row == 7 and app.focused is table  # same selection, focus follows
        await pilot.press("down")
        await pilot.press("ctrl+g")
        assert app.focused is gallery and selected_tiles(app) == [8]
        await pilot.press("escape")
        assert app.focused is app.query_one(QueryBox)

    drive(settings, script)


@pytest.mark.parametrize("view", ["grid", "list"])
def test_tab_only_stops_where_the_focus_shows(settings, view):
    """Tab cycles between the query box and the results, and each shows it has the focus."""

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        active = app.query_one(Browser).active
        seen = []
        for _ in range(4):
            await pilot.press("tab")
            seen.append(app.focused)
        assert seen == [active, app.query_one(QueryBox)] * 2
        unfocused = active.styles.border_top
        await pilot.press("tab")
        await pilot.pause()
        assert active.has_focus and active.styles.border_top != unfocused

    drive(settings, script, view=view)


def test_more_results_load_as_the_selection_reaches_the_end(settings):
    want = expected(settings, text=TEXT, k=24)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        browser = app.query_one(Browser)
        assert len(browser.results) == 5 and "(more as you scroll)" in text_of(app, "#message")
        await pilot.press("tab", "end")
        await settle(pilot)
        assert len(browser.results) in (10, 15)  # the selection reached the end: next page(s)
        assert browser.selected_index == 4  # and stayed where it was
        for _ in range(4):
            await pilot.press("end")
            await settle(pilot)
        assert [t.result for t in tiles(app)] == want  # all 24, in order, no duplicates
        assert text_of(app, "#message") == f"24 results for “{TEXT}”"

    drive(settings, script, page=5, size=(80, 24))


def test_a_short_first_page_is_followed_by_the_next_until_the_view_is_full(settings):
    async def script(pilot, app):
        await type_query(pilot, TEXT)
        gallery = app.query_one(Gallery)
        assert len(tiles(app)) > 3 and gallery.max_scroll_y > 0

    drive(settings, script, page=3)


def fake_viewer(folder: Path, log: Path) -> None:
    script = folder / "xdg-open"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{log}"\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_enter_or_o_opens_the_selected_file_in_the_viewer(settings, tmp_path, monkeypatch):
    fake_viewer(tmp_path, tmp_path / "opened.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":99")
    want = expected(settings, text=TEXT, k=3)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        await pilot.press("tab", "enter")
        await settle(pilot)
        await pilot.press("right", "o")
        await settle(pilot)
        await pilot.press("escape", "ctrl+g", "tab", "down", "enter")  # the list view too
        await settle(pilot)
        assert text_of(app, "#message") == f"opened {want[2].path} with xdg-open"

    drive(settings, script)
    opened = (tmp_path / "opened.txt").read_text(encoding="utf-8").splitlines()
    assert opened == [want[0].path, want[1].path, want[2].path]


def test_without_a_viewer_opening_says_so_and_the_app_stays_up(settings, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        await pilot.press("ctrl+o")
        await settle(pilot)
        assert "no picture viewer" in text_of(app, "#message")
        assert app.query_one("#message").has_class("error")
        await type_query(pilot, "a red car")
        assert len(tiles(app)) == 20

    drive(settings, script)


def test_a_folder_in_the_query_box_gets_a_clear_message(settings, indexed_collection):
    async def script(pilot, app):
        await type_query(pilot, str(indexed_collection.photos))
        message = text_of(app, "#message")
        assert f"{indexed_collection.photos} is a folder; give the path of an image file" in message
        assert isinstance(app.focused, Input)

    drive(settings, script)


@pytest.mark.parametrize(
    "typed",
    ["~/photos/img_0005.png + a dog running on the beach", "beach + 2:sunset - 1:people"],
)
def test_the_query_box_takes_the_query_syntax(settings, indexed_collection, monkeypatch, typed):
    """An image plus words, weights and a subtracted term: the same results as the core's
    search of the same string (that is, as `clipsearch search`)."""
    monkeypatch.setenv("HOME", str(indexed_collection.root))
    want = expected(settings, text=typed, k=20)
    plain = expected(settings, text=typed.split(" + ")[0], k=20)
    assert [r.id for r in want] != [r.id for r in plain]  # the other terms do change the order

    async def script(pilot, app):
        await type_query(pilot, typed)
        assert [t.result.id for t in tiles(app)] == [r.id for r in want]
        assert [round(t.result.score, 5) for t in tiles(app)] == [round(r.score, 5) for r in want]
        assert " + " in text_of(app, "#message")

    drive(settings, script)


def test_f2_filters_narrow_and_sort_the_results_as_the_cli_does(settings):
    png = Filter.parse(glob="*.png")
    want = expected(settings, text=TEXT, k=20, where=png)
    by_path = expected(settings, text=TEXT, k=20, where=Filter.parse(glob="*.png", sort="path"))
    assert 0 < len(want) < 20 and [r.path for r in by_path] == sorted(r.path for r in want)

    async def script(pilot, app):
        assert text_of(app, "#message") == ""  # the bar's first sort value is no change
        await type_query(pilot, TEXT)
        await pilot.press("f2")
        assert app.focused is app.query_one("#filter-under")  # shown, and the focus is in it
        app.query_one("#filter-glob", Input).value = "*.png"
        app.query_one("#filter-glob").focus()
        await pilot.press("enter")  # applies the filters to the search shown
        await settle(pilot)
        assert [t.result.id for t in tiles(app)] == [r.id for r in want]
        assert f"{len(want)} results for “{TEXT}” · glob *.png" == text_of(app, "#message")
        app.query_one("#filter-sort", Select).value = "path"
        await settle(pilot)
        assert [t.result.path for t in tiles(app)] == [r.path for r in by_path]
        app.query_one("#filter-after", Input).value = "last tuesday"
        app.query_one("#filter-after").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "last tuesday" in text_of(app, "#message")
        assert app.query_one("#message").has_class("error")
        assert [t.result.path for t in tiles(app)] == [r.path for r in by_path]  # kept
        await pilot.press("f2")
        assert app.focused is app.query_one(QueryBox)
        assert "the filters still apply: glob *.png, sort path" in text_of(app, "#message")

    drive(settings, script)


@pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")  # textual-image's
def test_graphics_terminals_get_tiles_drawn_by_textual_image(settings):
    from textual_image.widget import Image as GraphicsPicture

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        first = tiles(app)[0]
        assert isinstance(first.picture, GraphicsPicture) and first.picture.image is not None
        assert 0 < first.picture.region.width <= first.region.width
        assert 0 < first.picture.region.height < first.region.height  # the label stays below

    drive(settings, script, graphics=True)


def test_a_click_selects_a_tile_and_a_double_click_opens_it(settings, tmp_path, monkeypatch):
    fake_viewer(tmp_path, tmp_path / "opened.txt")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":99")

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        await pilot.click("#tile-3")
        assert selected_tiles(app) == [3] and app.focused is app.query_one(Gallery)
        await pilot.double_click("#tile-4")
        await settle(pilot)
        assert selected_tiles(app) == [4]

    drive(settings, script)
    opened = (tmp_path / "opened.txt").read_text(encoding="utf-8").splitlines()
    assert opened == [expected(settings, text=TEXT, k=5)[4].path]


def test_thumbnails_name_what_cannot_be_shown_and_are_kept(tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture", encoding="utf-8")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (600, 300), (0, 128, 255)).save(photo)
    thumbs = Thumbnails(keep=1, side=64)
    assert "not an image" in thumbs.load(str(notes))
    img = thumbs.load(str(photo))
    assert img.size == (64, 32) and thumbs.cached(str(photo)) is img
    assert thumbs.cached(str(notes)) is None  # only `keep` kept


def test_opening_without_a_viewer_or_a_file_says_why(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")
    with pytest.raises(CannotOpen, match="no graphical session"):
        viewer_command(photo, {"PATH": "/usr/bin"}, "linux")
    with pytest.raises(CannotOpen, match="xdg-open is not installed"):
        viewer_command(photo, {"PATH": str(tmp_path), "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    with pytest.raises(CannotOpen, match="`open` is not on PATH"):
        viewer_command(photo, {"PATH": str(tmp_path)}, "darwin")
    with pytest.raises(CannotOpen, match="the file is gone"):
        asyncio.run(open_file(tmp_path / "gone.png"))
