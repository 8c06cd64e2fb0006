"""The model folder's `tokenizer.json`: copied from the checkpoint, or built from its BPE files.

Checkpoints that ship only `vocab.json` + `merges.txt` get the `tokenizers` JSON that
`CLIPTokenizerFast` converts them to. Either way the written file is checked to tokenise the
sample captions exactly as transformers does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from export import samples
from export.errors import ExportError

FILE = "tokenizer.json"


def write(ckpt, model_dir: Path) -> tuple[dict[str, int], bool]:
    """Write tokenizer.json into `model_dir`; return its special token ids and lowercasing."""
    from tokenizers import Tokenizer

    out = model_dir / FILE
    shipped = ckpt.directory / FILE
    if shipped.is_file():
        shutil.copyfile(shipped, out)
    else:
        ckpt.tokenizer.backend_tokenizer.save(str(out))
    tok = ckpt.tokenizer
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    }
    if None in (ids["bos_token_id"], ids["eos_token_id"]):
        raise ExportError(f"the tokenizer of {ckpt.source} has no bos/eos token")
    written = Tokenizer.from_file(str(out))
    for caption in samples.captions():
        want = tok(caption, truncation=False)["input_ids"]
        got = written.encode(caption).ids
        if got != want:
            raise ExportError(
                f"{FILE} tokenises {caption!r} as {got[:8]}..., transformers as {want[:8]}..."
            )
    normalizer = written.normalizer
    lowercase = normalizer is not None and normalizer.normalize_str("AbC") == "abc"
    return {k: int(v) for k, v in ids.items()}, lowercase
