"""`clipsearch serve`: the browser gallery and JSON API over the library's Searcher, plus the
query socket that lets `clipsearch search` skip loading the model (installed as
`clipsearch_web`; needs the `serve` extra: starlette, uvicorn, python-multipart).

The core package never imports this one; only the `serve` command does.
"""
