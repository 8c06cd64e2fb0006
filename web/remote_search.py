"""Answering `clipsearch search ARGS` for another process exactly as it would answer itself.

The client (`clipsearch_onnx.daemon.forward`) sends its arguments unparsed, with its working
directory, the environment variables settings depend on, and its terminal width. Here they are
parsed by the CLI's own parser, settings are resolved by the CLI's own code, and the output is
written by the CLI's own `write_response`. Whatever could make the answer differ from the
client's own is declined (the client then runs the search itself): another environment, another
index, model, precision, thread count, backend or decoding, an option beyond a plain query, an
error of any kind.
"""

from __future__ import annotations

import argparse
import io
import os
import threading
from dataclasses import replace
from typing import Any, NoReturn

from clipsearch_onnx import models
from clipsearch_onnx.daemon import settings_env
from clipsearch_onnx.pipeline import decoding_for
from clipsearch_onnx.search import Searcher

# The options of a plain query; any other option given makes the request declined.
PLAIN = {"command", "run", "text", "image", "k", "json", "jsonl", "index", "model", "precision"}
PLAIN |= {"threads", "backend", "decoding", "queries", "paths", "null"}
PATH_ENV = ["HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"]
PATH_ENV += ["CLIPSEARCH_HOME", "CLIPSEARCH_INDEX", "CLIPSEARCH_MODEL"]


class Decline(Exception):
    pass


def _refuse(message: str) -> NoReturn:
    raise Decline(f"arguments: {message}")


class _Parsers(threading.local):
    parser: argparse.ArgumentParser | None = None
    defaults: dict[str, Any] | None = None


_parsers = _Parsers()


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """This thread's `clipsearch search` parser, which never prints or exits."""
    if _parsers.parser is None or _parsers.defaults is None:
        from clipsearch_onnx.cli.parser import build_parser

        parser = build_parser(["search"])
        todo = [parser]
        while todo:
            p = todo.pop()
            p.error = _refuse  # type: ignore[method-assign]
            p.exit = lambda status=0, message=None: _refuse("exit")  # type: ignore[method-assign,assignment]
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    todo += action.choices.values()
        _parsers.parser, _parsers.defaults = parser, vars(parser.parse_args(["search"]))
    return _parsers.parser, _parsers.defaults


def _absolute(path: str | None, cwd: str) -> str | None:
    if path is None or "://" in path:
        return path
    return os.path.join(cwd, os.path.expanduser(path))


def answer(request: dict[str, Any], s: Searcher) -> str:
    """What `clipsearch search ARGV` prints on stdout in the client's place, or Decline."""
    argv, cwd, env = request.get("argv"), request.get("cwd"), request.get("env")
    columns = request.get("columns")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise Decline("malformed request")
    if columns is not None and (not isinstance(columns, int) or isinstance(columns, bool)):
        raise Decline("malformed request")
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or env != settings_env(os.environ):
        raise Decline("another environment")
    if cwd != os.getcwd() and any(not os.path.isabs(os.environ.get(k, "/")) for k in PATH_ENV):
        raise Decline("paths relative to another working directory")
    parser, defaults = _parser()
    args = parser.parse_args(["search", *argv])
    if args.queries is not None or any(
        v != defaults.get(k) for k, v in vars(args).items() if k not in PLAIN
    ):
        raise Decline("not a plain query")
    if args.image is not None and len(args.image) != 1:
        raise Decline("not a plain query")
    given_image = args.image[0] if args.image else None
    args.index, args.model = _absolute(args.index, cwd), _absolute(args.model, cwd)
    from clipsearch_onnx.cli.options import settings_from
    from clipsearch_onnx.cli.results import write_response
    from clipsearch_onnx.cli.search import check_output_options

    settings = settings_from(args)
    if cwd != os.getcwd() and any(
        p is not None and not p.is_absolute() for p in (settings.index_dir, settings.model_dir)
    ):
        raise Decline("paths relative to another working directory")
    if os.path.realpath(settings.resolved_index_dir()) != os.path.realpath(s.index_dir):
        raise Decline("another index")
    model = models.for_query(settings, s.index_dir, catalog=s.catalog)
    encoder = s.encoder
    if (model.manifest.fingerprint, model.precision) != (
        encoder.manifest.fingerprint,
        encoder.precision,
    ) or ((settings.threads or 1), settings.backend) != (encoder.text_threads, encoder.backend):
        raise Decline("another model, precision, thread count or backend")
    if decoding_for(settings.decoding, bulk=False) != decoding_for(s.decoding, bulk=False):
        raise Decline("another decoding")
    if args.k < 1 or (args.text is None and args.image is None):
        raise Decline("the client reports this error itself")
    check_output_options(args)  # a UsageError: declined, and the client reports it
    # a query's relative image paths are the client's: against its working folder
    response = s.search(args.text, _absolute(given_image, cwd), args.k, cwd=cwd)
    if given_image is not None:
        response = replace(response, query={**response.query, "image": given_image})
    out = io.StringIO()
    write_response(response.to_json(), args, out, columns=columns)
    return out.getvalue()
