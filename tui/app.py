"""`clipsearch tui`: search an index from the terminal, like fzf for pictures."""

from __future__ import annotations

import asyncio
import signal

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.driver import Driver
from textual.widgets import DataTable, Footer, Static

from clipsearch_onnx.errors import ClipSearchError, ExitCode, ImageError, InputError, ModelError
from clipsearch_onnx.settings import Settings

from .detail import DetailPane
from .engine import Engine
from .help import HelpScreen
from .paths import display_path
from .query import Query, QueryBox, parse_query
from .results import ResultsTable
from .status import StatusLine
from .terminal import detect_graphics, driver_class, hung_up, terminal_fds

AFTERWARDS = "Once that is done, start this again: `clipsearch tui --index DIR`."


class ClipSearchApp(App[int]):
    TITLE = "clipsearch"
    CSS_PATH = "clipsearch.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("ctrl+f", "find_similar", "Find similar"),
        Binding("ctrl+y", "copy_path", "Copy path"),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        graphics: bool = False,
        driver: type[Driver] | None = None,
        terminal: tuple[int, ...] = (),
    ) -> None:
        """`terminal`: the file descriptors of the terminal the app runs in; when it goes away
        (SIGHUP, or a hang-up on one of them) the app exits with ExitCode.HANGUP."""
        super().__init__(driver_class=driver)
        self.engine = Engine(settings)
        self.graphics = graphics
        self.loaded = False
        self.terminal = terminal

    def compose(self) -> ComposeResult:
        yield QueryBox(placeholder="describe a picture, or type the path of an image", id="query")
        yield Static("", id="message")
        yield Static("", id="problem")
        yield ResultsTable(id="results")
        yield DetailPane(graphics=self.graphics, id="detail")
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
        self.query_one(ResultsTable).display = False
        self.query_one(DetailPane).display = False
        self.query_one(StatusLine).state = f"cannot {what}"

    # -- queries -------------------------------------------------------------------------------

    def on_input_submitted(self, event: QueryBox.Submitted) -> None:
        self.submit(event.value)

    def submit(self, raw: str) -> None:
        try:
            query = parse_query(raw)
        except InputError as exc:
            self.say(str(exc), error=True)
            return
        if query is None:
            self.say("type a description or the path of an image first")
            return
        self.say(f"searching for {query.describe()}…" if self.loaded else "loading index…")
        self._search(query)

    @work(exclusive=True, group="query")
    async def _search(self, query: Query) -> None:
        try:
            response = await self.engine.search(text=query.text, image=query.image)
        except ImageError as exc:
            self.say(f"cannot use {display_path(str(exc.path))}: {exc.reason}", error=True)
            return
        except ClipSearchError as exc:
            self.say(str(exc), error=True)
            return
        except Exception as exc:  # a bug or an environment problem: say so, stay up
            self.say(f"unexpected error: {type(exc).__name__}: {exc}", error=True)
            return
        table = self.query_one(ResultsTable)
        table.show(response.results)
        self.query_one(DetailPane).show(table.selected)
        self.query_one(StatusLine).took_ms = response.took_ms
        found = len(response.results)
        self.say(f"{found} result{'s' if found != 1 else ''} for {query.describe()}")

    def say(self, message: str, *, error: bool = False) -> None:
        """A one-line message under the query box (errors also pop up as a notification)."""
        line = self.query_one("#message", Static)
        line.update(Text(message))
        line.set_class(error, "error")
        if error:
            self.notify(message, severity="error", timeout=6)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.query_one(DetailPane).show(self.query_one(ResultsTable).selected)

    # -- actions -------------------------------------------------------------------------------

    def action_move_selection(self, delta: int) -> None:
        self.query_one(ResultsTable).move(delta)

    def action_page_selection(self, direction: int) -> None:
        self.query_one(ResultsTable).page(direction)

    def action_find_similar(self) -> None:
        result = self.query_one(ResultsTable).selected
        if result is None:
            self.say("no result selected: search first", error=True)
            return
        box = self.query_one(QueryBox)
        box.value = result.path
        box.cursor_position = len(box.value)
        self.submit(result.path)

    def action_copy_path(self) -> None:
        result = self.query_one(ResultsTable).selected
        if result is None:
            self.say("no result selected: search first", error=True)
            return
        self.copy_to_clipboard(result.path)
        self.notify(f"copied {display_path(result.path)}", timeout=3)

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
