"""`clipsearch tui`: search an index from the terminal, like fzf for pictures."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.driver import Driver
from textual.widgets import Footer, Input, Static

from clipsearch_onnx.errors import ClipSearchError, ExitCode, ImageError, InputError, ModelError
from clipsearch_onnx.filters import Filter
from clipsearch_onnx.settings import Settings

from .browser import GRID, Browser
from .engine import Engine, Page
from .filterbar import FilterBar, describe
from .help import HelpScreen
from .opener import CannotOpen, open_file
from .paths import display_path
from .query import QueryBox, as_term, read_query
from .status import StatusLine
from .terminal import detect_graphics, driver_class, hung_up, terminal_fds

AFTERWARDS = "Once that is done, start this again: `clipsearch tui --index DIR`."
PAGE = 20  # results asked for at a time; more come as the selection or scrolling nears the end


class ClipSearchApp(App[int]):
    TITLE = "clipsearch"
    CSS_PATH = "clipsearch.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("ctrl+f", "find_similar", "Find similar"),
        Binding("ctrl+y", "copy_path", "Copy path"),
        Binding("ctrl+o", "open_selected", "Open"),
        Binding("ctrl+g", "toggle_view", "Grid/list"),
        Binding("f2", "toggle_filters", "Filters"),
        Binding("escape,slash", "focus_query", "Query", show=False),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        graphics: bool = False,
        driver: type[Driver] | None = None,
        terminal: tuple[int, ...] = (),
        page: int = PAGE,
        view: str = GRID,
    ) -> None:
        """`terminal`: the file descriptors of the terminal the app runs in; when it goes away
        (SIGHUP, or a hang-up on one of them) the app exits with ExitCode.HANGUP. `page`: how
        many results to ask for at a time; `view`: "grid" or "list" to start with."""
        super().__init__(driver_class=driver)
        self.engine = Engine(settings)
        self.graphics = graphics
        self.loaded = False
        self.terminal = terminal
        self.page_size = page
        self.start_view = view
        self.page: Page | None = None  # the results shown
        self.asked = ""  # what the results shown are for, as the message line says it
        self.where: Filter | None = None  # the filters set (F2)
        self.last_search: tuple[str, Callable[[], Awaitable[Page]]] | None = None
        self.loading_more = False

    def compose(self) -> ComposeResult:
        yield QueryBox(placeholder="describe a picture, or type the path of an image", id="query")
        yield FilterBar(id="filters")
        yield Static("", id="message")
        yield Static("", id="problem")
        yield Browser(graphics=self.graphics, view=self.start_view, id="browser")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(QueryBox).focus()
        self._open_index()
        if self.terminal:
            # Textual reads the terminal in a loop that spins once it hangs up: watch for that.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._terminal_gone)
            self.set_interval(0.2, self._check_terminal)

    def _check_terminal(self) -> None:
        if hung_up(self.terminal):
            self._terminal_gone()

    def _terminal_gone(self) -> None:
        self.exit(int(ExitCode.HANGUP), return_code=int(ExitCode.HANGUP))

    def on_unmount(self) -> None:
        self.engine.close()

    @work(group="open")
    async def _open_index(self) -> None:
        try:
            info = await self.engine.open()
        except Exception as exc:  # ClipSearchError, or a bug: either way say so and stay up
            self._cannot_open(exc)
            return
        self.loaded = True
        self.query_one(StatusLine).loaded(info, self.engine.precision)
        if info.count == 0:
            self.say("the index is empty; add images with `clipsearch index PHOTOS`")

    def _cannot_open(self, exc: Exception) -> None:
        what = "load the model" if isinstance(exc, ModelError) else "open the index"
        if isinstance(exc, ClipSearchError):
            detail = str(exc)
        else:
            detail = f"unexpected error: {type(exc).__name__}: {exc}"
        problem = self.query_one("#problem", Static)
        problem.update(
            Text.assemble(
                (f"clipsearch cannot {what}.\n\n", "bold"),
                f"{detail}\n\n",
                AFTERWARDS,
                ("\n\nctrl+q quits.", "dim"),
            )
        )
        problem.display = True
        self.query_one(Browser).display = False
        self.query_one(StatusLine).state = f"cannot {what}"

    # -- queries -------------------------------------------------------------------------------

    def on_input_submitted(self, event: QueryBox.Submitted) -> None:
        if isinstance(event.input, QueryBox):
            self.submit(event.value)

    def submit(self, raw: str) -> None:
        try:
            query = read_query(raw)
        except InputError as exc:
            self.say(str(exc), error=True)
            return
        if query is None:
            self.say("type a description or the path of an image first")
            return
        self._run(query.describe(), lambda: self.engine.search(self.page_size, query, self.where))

    def _run(self, what: str, call: Callable[[], Awaitable[Page]]) -> None:
        """Search (`call` reads the filters when it runs: F2 runs the same again)."""
        self.last_search = (what, call)
        self.say(f"searching for {what}…" if self.loaded else "loading index…")
        self._search(what, call)

    @work(exclusive=True, group="query")
    async def _search(self, what: str, call: Callable[[], Awaitable[Page]]) -> None:
        """Show the first page `call` gives for the query described as `what`."""
        self.loading_more = False
        page = await self._ask(call)
        if page is not None:
            self.page, self.asked = page, what
            await self.query_one(Browser).show(page.results)
            self._report()

    @work(exclusive=True, group="query")
    async def _more(self) -> None:
        if self.page is None:
            return
        k = self.page.k + self.page_size
        page = await self._ask(lambda: self.engine.more(k))
        self.loading_more = False
        if page is not None:
            self.page = page
            await self.query_one(Browser).show(page.results, keep_selection=True)
            self._report()

    async def _ask(self, call: Callable[[], Awaitable[Page]]) -> Page | None:
        """`call`'s page of results, or None after saying what went wrong."""
        try:
            return await call()
        except ImageError as exc:
            self.say(f"cannot use {display_path(str(exc.path))}: {exc.reason}", error=True)
        except ClipSearchError as exc:
            self.say(str(exc), error=True)
        except Exception as exc:  # a bug or an environment problem: say so, stay up
            self.say(f"unexpected error: {type(exc).__name__}: {exc}", error=True)
        return None

    def _report(self) -> None:
        assert self.page is not None
        self.query_one(StatusLine).took_ms = self.page.took_ms
        found = len(self.page.results)
        more = "" if self.page.complete else " (more as you scroll)"
        among = f" · {describe(self.where)}" if self.where is not None else ""
        self.say(f"{found} result{'s' if found != 1 else ''} for {self.asked}{among}{more}")
        self.call_after_refresh(self._fill_view)

    def _fill_view(self) -> None:
        """Load the next page while the results do not fill the view (nothing to scroll)."""
        active = self.query_one(Browser).active
        if active.max_scroll_y == 0:
            self.on_browser_need_more()

    def on_browser_need_more(self, event: Browser.NeedMore | None = None) -> None:
        if self.page is None or self.page.complete or self.loading_more:
            return
        self.loading_more = True
        self._more()

    def say(self, message: str, *, error: bool = False) -> None:
        """A one-line message under the query box (errors also pop up as a notification)."""
        line = self.query_one("#message", Static)
        line.update(Text(message))
        line.set_class(error, "error")
        if error:
            self.notify(message, severity="error", timeout=6)

    # -- actions -------------------------------------------------------------------------------

    def action_move_selection(self, delta: int) -> None:
        self.query_one(Browser).move(delta)

    def action_page_selection(self, direction: int) -> None:
        self.query_one(Browser).page(direction)

    def action_toggle_view(self) -> None:
        view = self.query_one(Browser).toggle_view()
        self.say(f"{view} view (ctrl+g switches)")
        self.call_after_refresh(self._fill_view)

    def action_toggle_filters(self) -> None:
        bar = self.query_one(FilterBar)
        bar.display = not bar.display
        if bar.display:
            bar.query_one(Input).focus()
        else:
            self.query_one(QueryBox).focus()
            if self.where is not None:
                self.say(f"the filters still apply: {describe(self.where)} (F2 shows them)")

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        try:
            where = self.query_one(FilterBar).read()
        except InputError as exc:
            self.say(str(exc), error=True)
            return
        if where == self.where:
            return  # nothing changed (Textual also reports the sort's first value)
        self.where = where
        if self.last_search is not None:
            self._run(*self.last_search)
        else:
            shown = describe(self.where) or "none"
            self.say(f"filters: {shown}; they apply to the next search")

    def action_focus_query(self) -> None:
        self.query_one(QueryBox).focus()

    def action_find_similar(self) -> None:
        result = self.query_one(Browser).selected
        if result is None:
            self.say("no result selected: search first", error=True)
            return
        box = self.query_one(QueryBox)
        box.value = as_term(result.path)
        box.cursor_position = len(box.value)
        what = f"images like {os.path.basename(result.path)}"
        self._run(what, lambda: self.engine.similar(self.page_size, result.id, self.where))

    def action_copy_path(self) -> None:
        result = self.query_one(Browser).selected
        if result is None:
            self.say("no result selected: search first", error=True)
            return
        self.copy_to_clipboard(result.path)
        self.notify(f"copied {display_path(result.path)}", timeout=3)

    def action_open_selected(self) -> None:
        result = self.query_one(Browser).selected
        if result is None:
            self.say("no result selected: search first", error=True)
            return
        self._open(result.path)

    @work(group="open-file")
    async def _open(self, path: str) -> None:
        try:
            program = await open_file(path)
        except CannotOpen as exc:
            self.say(str(exc), error=True)
            return
        self.say(f"opened {display_path(path)} with {program}")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.exit(0)


def run(settings: Settings) -> int:
    """Run the TUI in this terminal until ctrl+q; the exit code."""
    app = ClipSearchApp(
        settings, graphics=detect_graphics(), driver=driver_class(), terminal=terminal_fds()
    )
    result = app.run()
    return app.return_code if app.return_code is not None else int(result or 0)
