"""The terminal UI driven key by key (Textual's pilot) over a real index and the tiny model."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from textual.worker import WorkerCancelled

from clipsearch_onnx import query as q_
from clipsearch_onnx.errors import InputError
from clipsearch_onnx.search import IndexInfo, Result, open_searcher
from clipsearch_onnx.settings import Settings
from clipsearch_tui.app import ClipSearchApp
from clipsearch_tui.detail import DetailPane
from clipsearch_tui.help import HelpScreen
from clipsearch_tui.paths import fit_path
from clipsearch_tui.picture import half_blocks
from clipsearch_tui.query import QueryBox, as_term, read_query
from clipsearch_tui.results import ResultsTable, column_widths
from clipsearch_tui.status import model_label
from tests.fixtures_index import IndexedCollection

SIZE = (160, 48)
TEXT = "a dog running on the beach"


async def settle(pilot) -> None:
    """Wait until the app's workers (and the workers they started) are done."""
    app = pilot.app
    quiet = 0
    for _ in range(40):
        live = [w for w in app.workers if not w.is_cancelled]  # cancelled: replaced by newer
        try:
            await app.workers.wait_for_complete(live)
        except WorkerCancelled:  # cancelled while we waited
            pass
        await pilot.pause()
        # twice in a row: work scheduled after a refresh (the next page) has started by then
        quiet = quiet + 1 if not any(w.is_running for w in app.workers) else 0
        if quiet == 2:
            return
    raise AssertionError(f"workers still running: {[w for w in app.workers if w.is_running]}")


async def type_query(pilot, text: str) -> None:
    """Put `text` in the query box and press Enter (pressing each key costs Textual's pilot ~70
    ms; the tests that are about typing press the keys)."""
    pilot.app.query_one(QueryBox).value = text
    await pilot.press("enter")
    await settle(pilot)


def drive(
    settings: Settings,
    script: Callable[..., Awaitable[None]],
    size: tuple[int, int] = SIZE,
    **options,
) -> ClipSearchApp:
    """Run `script(pilot, app)` in the app made with `options` (view="list": the table)."""
    app = ClipSearchApp(settings, **options)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await script(pilot, app)

    asyncio.run(main())
    return app


def shown_names(app: ClipSearchApp) -> list[str]:
    table = app.query_one(ResultsTable)
    return [os.path.basename(str(table.get_row_at(i)[3])) for i in range(table.row_count)]


def text_of(app: ClipSearchApp, selector: str) -> str:
    return str(app.query_one(selector).render())


@pytest.fixture
def settings(indexed_collection: IndexedCollection) -> Settings:
    return Settings(index_dir=indexed_collection.index)


def expected(settings: Settings, **query) -> list[Result]:
    searcher = open_searcher(settings)
    try:
        return searcher.search(**query).results
    finally:
        searcher.close()


def test_text_query_shows_the_top_ten_with_captions_and_details(settings, indexed_collection):
    want = expected(settings, text=TEXT)

    async def script(pilot, app):
        assert "24 images" in text_of(app, "#status")
        assert "clip-tiny (int8)" in text_of(app, "#status")
        await type_query(pilot, TEXT)
        assert shown_names(app)[:10] == [Path(r.path).name for r in want]
        first = app.query_one(ResultsTable).get_row_at(0)
        assert str(first[2]) == want[0].captions[0]
        assert str(first[1]) == f"{want[0].score:.3f}"
        about = text_of(app, "#about-captions")
        assert all(c in about for c in indexed_collection.captions[Path(want[0].path).name])
        assert want[0].path in text_of(app, "#about-path")
        assert app.query_one("#picture").image is not None
        assert "last query" in text_of(app, "#status") and " ms" in text_of(app, "#status")

    drive(settings, script, view="list")


def test_an_image_path_with_tilde_puts_that_image_first(settings, indexed_collection, monkeypatch):
    monkeypatch.setenv("HOME", str(indexed_collection.root))
    target = indexed_collection.images[5]

    async def script(pilot, app):
        await type_query(pilot, f"~/photos/{target.name}")
        assert shown_names(app)[0] == target.name
        assert str(app.query_one(ResultsTable).get_row_at(0)[1]) == "1.000"
        assert "20 results for img_0005.png" in text_of(app, "#message")

    drive(settings, script, view="list")


def test_bad_paths_give_a_message_and_the_app_stays_up(settings, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n", encoding="utf-8")

    async def script(pilot, app):
        await type_query(pilot, "/no/such/folder/photo.jpg")
        message = text_of(app, "#message")
        assert message.startswith("query image /no/such/folder/photo.jpg does not exist")
        assert app.query_one("#message").has_class("error")
        await type_query(pilot, str(notes))
        message = text_of(app, "#message")
        assert message.startswith(f"cannot use {notes}: ") and "not an image" in message
        assert app.query_one(ResultsTable).row_count == 0
        await type_query(pilot, TEXT)
        assert app.query_one(ResultsTable).row_count == 20  # the first page
        assert not app.query_one("#message").has_class("error")

    drive(settings, script, view="list")


def test_arrow_keys_move_the_selection_while_typing_continues(settings):
    want = expected(settings, text=TEXT)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        await pilot.press("down", "down", "x")
        await settle(pilot)
        assert app.query_one(ResultsTable).cursor_row == 2
        assert app.query_one(QueryBox).value == TEXT + "x"
        assert app.query_one(QueryBox).has_focus
        assert app.query_one(DetailPane).result == want[2]
        await pilot.press("pagedown")
        assert app.query_one(ResultsTable).cursor_row == 19  # the last of the first page...
        await settle(pilot)
        assert app.query_one(ResultsTable).row_count == 24  # ...so the rest loaded
        await pilot.press("up")
        assert app.query_one(ResultsTable).cursor_row == 18
        await pilot.press("pageup", "pageup")
        assert app.query_one(ResultsTable).cursor_row == 0

    drive(settings, script, view="list")


def test_find_similar_searches_with_the_selected_image_and_copy_path(settings):
    want = expected(settings, text=TEXT)

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        await pilot.press("down", "down", "ctrl+y")
        assert app.clipboard == want[2].path
        await pilot.press("ctrl+f")
        await settle(pilot)
        assert app.query_one(QueryBox).value == want[2].path
        assert shown_names(app)[0] == Path(want[2].path).name
        assert str(app.query_one(ResultsTable).get_row_at(0)[1]) == "1.000"

    drive(settings, script, view="list")


@pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")  # textual-image's
def test_graphics_terminals_get_the_picture_through_textual_image(settings):
    from textual_image.widget import Image as GraphicsPicture

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        picture = app.query_one("#picture")
        assert isinstance(picture, GraphicsPicture)
        assert picture.image is not None and picture.region.width > 10

    drive(settings, script, graphics=True, view="list")


def test_ctrl_q_quits_with_status_0(settings):
    async def script(pilot, app):
        await type_query(pilot, TEXT)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running

    assert drive(settings, script).return_code == 0


def test_keys_sent_in_one_burst_are_applied_in_order(settings, indexed_collection, monkeypatch):
    """ctrl+u, a path and enter arriving together (a script, a paste) run the path query."""
    monkeypatch.setenv("HOME", str(indexed_collection.root))
    target = indexed_collection.images[7]

    async def script(pilot, app):
        await type_query(pilot, TEXT)
        path = f"~/photos/{target.name}"
        await pilot.press("ctrl+u", *path[:-1], "x", "backspace", path[-1], "enter")
        await settle(pilot)
        assert shown_names(app)[0] == target.name

    drive(settings, script, view="list")


def test_help_screen_explains_keys_and_the_path_rule(settings):
    async def script(pilot, app):
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=100, file=io.StringIO(), record=True)
        console.print(app.screen.query_one("#help Static").content)
        help_text = console.export_text()
        assert "ctrl+f" in help_text and "ctrl+g" in help_text and "2:sunset" in help_text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        assert app.query_one(QueryBox).has_focus

    drive(settings, script)


def test_launch_without_an_index_says_what_to_run(tmp_path):
    async def script(pilot, app):
        problem = text_of(app, "#problem")
        assert app.query_one("#problem").display
        assert f"no index at {tmp_path / 'none'}" in problem
        assert "clipsearch index PHOTOS" in problem
        await type_query(pilot, TEXT)
        assert "no index is open" in text_of(app, "#message")
        assert "cannot open the index" in text_of(app, "#status")
        await pilot.press("ctrl+q")

    assert drive(Settings(index_dir=tmp_path / "none"), script).return_code == 0


def test_launch_with_a_damaged_index_says_what_to_run(indexed_collection, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(indexed_collection.index, index)
    vectors = next(index.glob("build-*/vectors/seg-*/lists.ivfdata"))
    vectors.write_bytes(vectors.read_bytes()[:100])

    async def script(pilot, app):
        problem = text_of(app, "#problem")
        assert str(vectors) in problem and "--rebuild" in problem
        await pilot.press("ctrl+q")

    assert drive(Settings(index_dir=index), script).return_code == 0


# -- pieces without the app ------------------------------------------------------------------


def test_the_query_box_reads_the_core_syntax_and_pasted_paths(tmp_path, monkeypatch):
    photo = tmp_path / "a - b + c.png"
    Image.new("RGB", (4, 4)).save(photo)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert read_query("   ") is None
    assert read_query("  a cat on a sofa ") == q_.parse_query("a cat on a sofa")
    assert read_query("beach + 2:sunset - people").describe() == ("“beach” + 2×“sunset” − “people”")
    image = q_.Term(q_.IMAGE, str(photo))
    assert read_query(as_term(str(photo))).terms == (image,)  # find similar's box stays one term
    assert read_query(f"{as_term(str(photo))} + snow").terms == (image, q_.Term(q_.TEXT, "snow"))
    assert read_query(f"'{photo}'").terms == (image,)  # a pasted, quoted path
    assert read_query("'quoted words'").terms == (q_.Term(q_.TEXT, "'quoted words'"),)
    with pytest.raises(InputError, match="does not exist"):
        read_query("~/dog.png")
    with pytest.raises(InputError, match="is a folder"):
        read_query(str(tmp_path))


def test_file_names_stay_whole_when_captions_and_folders_are_long():
    name = "1000268201_693b08cb0e.jpg"
    path = "/data/" + "very-long-folder-name/" * 8 + name
    results = [Result(1, 0.5, path, ["word " * 80], 1), Result(2, 0.4, "/a/b.jpg", [], 2)]
    caption, width = column_widths(results, 154)
    assert caption > 40
    assert fit_path(path, width).endswith("/" + name) and len(fit_path(path, width)) <= width
    assert fit_path("/a/b.jpg", width) == "/a/b.jpg"
    assert fit_path(path, 12) == "10002…0e.jpg"


def test_half_blocks_draw_two_pixels_per_cell_keeping_the_aspect():
    img = Image.new("RGB", (8, 4), (255, 0, 0))
    img.paste((0, 0, 255), (0, 2, 8, 4))
    tall = half_blocks(img, 4, 9)  # width-bound: 4x2 pixels, one row of cells, centred
    assert [strip.text for strip in tall] == [" " * 4] * 4 + ["▀" * 4] + [" " * 4] * 4
    colours = {(s.style.color.triplet, s.style.bgcolor.triplet) for s in tall[4] if s.text}
    assert colours == {((255, 0, 0), (0, 0, 255))}
    wide = half_blocks(img, 20, 2)  # height-bound: 8x4 pixels, two rows, centred
    assert [strip.text for strip in wide] == [" " * 6 + "▀" * 8 + " " * 6] * 2


def test_the_status_line_names_the_hub_model_else_the_model_folder():
    info = IndexInfo(
        "/i", 3, "/models/clip-vit-b32", "openai/clip-vit-base-patch32", "int8", "flat", 0, None
    )
    assert model_label(info) == "openai/clip-vit-base-patch32"
    info = IndexInfo("/i", 3, "/models/mine/", "/home/me/finetuned", "fp32", "flat", 0, None)
    assert model_label(info) == "mine"
