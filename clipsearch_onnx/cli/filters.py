"""The options of `search` that narrow and order its results (issue 14): --under, --glob,
--after, --before, --min-size, --sort, --collapse. `add_filter_options` adds them to a parser,
`filter_from` reads them into a `Filter` (see clipsearch_onnx/filters.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipsearch_onnx.filters import Filter

SORTS = ("score", "date", "path")  # = filters.SORTS (not imported: the parser stays light)


def add_filter_options(p: argparse.ArgumentParser, *, results: bool = True) -> None:
    """The filters; with `results`, also --sort and --collapse (a search's)."""
    g = p.add_argument_group(
        "filters",
        (
            "Only images that pass every filter given can be returned; the search runs among "
            "them, so -k N still gives N results when N match. "
            if results
            else "Only images that pass every filter given are compared. "
        )
        + "The photo's date is EXIF DateTimeOriginal, else the file's modification time "
        "(local time).",
    )
    g.add_argument("--under", metavar="DIR", help="only images in DIR or its subfolders")
    g.add_argument(
        "--glob",
        metavar="PATTERN",
        help="only images whose file name matches the shell PATTERN ('*.png', 'IMG_2*'; case "
        "matters); a PATTERN with a / is matched against the path's end ('2023/*/*.jpg')",
    )
    g.add_argument(
        "--after",
        metavar="DATE",
        help="only photos taken on or after DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS])",
    )
    g.add_argument(
        "--before",
        metavar="DATE",
        help="only photos taken before DATE; a day given alone is included "
        "(--after 2023-01-01 --before 2023-12-31 is the whole year)",
    )
    g.add_argument(
        "--min-size", metavar="WxH", help="only pictures at least W pixels wide and H high"
    )
    if not results:
        return
    g.add_argument(
        "--sort",
        choices=SORTS,
        default="score",
        help="order of the top k: score (best first, the default), date (oldest first; "
        "each result then carries its date), path",
    )
    g.add_argument(
        "--collapse",
        action="store_true",
        help="one result per group of near-duplicates (the best-scoring one; its `copies` say "
        "how many are hidden; see `clipsearch dups`)",
    )


def filter_from(args: argparse.Namespace) -> Filter | None:
    """The Filter the arguments ask for; None when they ask for none. Raises InputError."""
    given = {
        "under": args.under,
        "glob": args.glob,
        "after": args.after,
        "before": args.before,
        "min_size": args.min_size,
    }
    sort, collapse = getattr(args, "sort", "score"), getattr(args, "collapse", False)
    if all(v is None for v in given.values()) and sort == "score" and not collapse:
        return None
    from clipsearch_onnx.filters import Filter

    return Filter.parse(**given, sort=sort, collapse=collapse)
