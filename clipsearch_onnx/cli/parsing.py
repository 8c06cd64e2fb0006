"""argparse, with the answers a user needs after a typo: the command's own usage, not the
top-level one, and the closest valid option, command or choice ("did you mean --image?")."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """Subcommand parsers (made by add_subparsers, which uses the parent's class) refuse
    leftovers themselves, so the error shows their usage."""

    words_hint = ""  # said after stray words, e.g. how to pass a text of several words

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognised(extras))
        return parsed, extras

    def _unrecognised(self, extras: list[str]) -> str:
        message = f"unrecognized arguments: {' '.join(extras)}"
        options = [e.split("=", 1)[0] for e in extras if e.startswith("-") and len(e) > 1]
        for option in options:
            close = closest(option, self._option_string_actions)
            if close:
                return f"{message} (did you mean {close}?)"
        if self.words_hint and len(options) < len(extras):
            return f"{message} ({self.words_hint})"
        return message

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        close = closest(str(value), choices)
        hint = f"; did you mean {close!r}?" if close else ""
        offered = ", ".join(map(repr, choices))
        raise argparse.ArgumentError(
            action, f"invalid choice: {value!r}{hint} (choose from {offered})"
        )

    def error(self, message: str) -> NoReturn:
        super().error(message)


def closest(word: str, candidates: Iterable[Any]) -> str | None:
    import difflib  # only after a mistake: not on every start

    found = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return found[0] if found else None


class JoinWords(argparse.Action):
    """A positional of nargs="*" stored as one string: `search a red circle` is the text
    "a red circle", as the user meant; no words is None."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        words = [values] if isinstance(values, str) else list(values or [])
        setattr(namespace, self.dest, " ".join(words) if words else None)
