"""Fetching Flickr8k and laying it out the way `clipsearch index` and `eval` expect:

    DEST/Images/*.jpg                      8,091 photos
    DEST/captions.txt                      Flickr8k.token.txt (name.jpg#k<TAB>caption)
    DEST/Flickr_8k.{train,dev,test}Images.txt   the standard 6k/1k/1k split

The archives are the public mirror used by most Flickr8k tutorials; their MD5 sums are the ones
published with it. Downloads resume after an interruption (HTTP Range) and are checked before use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from clipsearch_onnx.errors import DatasetError

MIRROR = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
ARCHIVES = {
    "Flickr8k_Dataset.zip": "f18a1e2920de5bd84dae7cf08ec78978",
    "Flickr8k_text.zip": "bf6c1abcb8e4a833b7f922104de18627",
}
SPLITS = ("Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt", "Flickr_8k.testImages.txt")
DONE = ".complete"


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: Path,
    md5: str,
    start: Callable[[str, int], None] = lambda name, total: None,
    advance: Callable[[int], None] = lambda n: None,
) -> Path:
    """Downloads `url` to `dest` (resuming a partial `.part` file) and checks its MD5."""
    if dest.exists() and _md5(dest) == md5:
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # the server ignored Range: start over
                have = 0
            total = have + int(response.headers.get("Content-Length") or 0)
            start(dest.name, total)
            advance(have)
            with open(part, "ab" if have else "wb") as fh:
                while block := response.read(1 << 20):
                    fh.write(block)
                    advance(len(block))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"cannot download {url} ({reason}); are you offline? Run the command again to "
            f"resume, or download it by hand into {dest.parent}"
        ) from exc
    if _md5(part) != md5:
        part.unlink()
        raise DatasetError(f"{url} arrived damaged (MD5 mismatch); run the command again")
    os.replace(part, dest)
    return dest


def _safe_extract(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = (dest / member.filename).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise DatasetError(f"{archive} holds a path outside its folder: {member.filename}")
        zf.extractall(dest)


def fetch_flickr8k(
    dest: Path,
    start: Callable[[str, int], None] = lambda name, total: None,
    advance: Callable[[int], None] = lambda n: None,
) -> Path:
    """Downloads and lays out Flickr8k in `dest`; does nothing if that was done already."""
    dest = Path(dest)
    if (dest / DONE).exists():
        return dest
    downloads = dest / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    paths = {
        name: download(MIRROR + name, downloads / name, md5, start, advance)
        for name, md5 in ARCHIVES.items()
    }
    work = dest / ".extract"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for path in paths.values():
        _safe_extract(path, work)
    photos = next((p for p in work.rglob("*") if p.is_dir() and p.name.endswith("_Dataset")), None)
    token = next(work.rglob("Flickr8k.token.txt"), None)
    if photos is None or token is None:
        raise DatasetError(f"the archives in {downloads} do not have the expected layout")
    images = dest / "Images"
    shutil.rmtree(images, ignore_errors=True)
    os.replace(photos, images)
    shutil.copyfile(token, dest / "captions.txt")
    for split in SPLITS:
        found = next(work.rglob(split), None)
        if found:
            shutil.copyfile(found, dest / split)
    shutil.rmtree(work)
    (dest / DONE).write_text("ok\n")
    return dest
