"""The CLIP checkpoint being exported: where it comes from, and what it is made of.

A source is a local transformers-format folder or a Hugging Face Hub id. A hub id is downloaded
with `huggingface_hub.snapshot_download` at a pinned commit (recorded as the manifest's revision);
only the files the export needs are fetched (safetensors weights when the repo has them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.errors import SourceError
from export.progress import say

CONFIG_FILES = [
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
]
SAFETENSORS = ["model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
PYTORCH_BIN = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class Checkpoint:
    source: str  # what the user passed: hub id or local folder
    directory: Path  # local folder holding the files
    revision: str | None  # hub commit sha; None for a local folder
    model: Any  # transformers.CLIPModel in eval mode, fp32, eager attention
    tokenizer: Any  # transformers.CLIPTokenizerFast
    image_processor: Any  # transformers.CLIPImageProcessor

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def context_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def resize_shortest_edge(self) -> int:
        return int(self.image_processor.size["shortest_edge"])

    @property
    def text_pooling(self) -> str:
        """How the text tower picks its pooled token (traced into the graph as is)."""
        eos = self.model.config.text_config.eos_token_id
        if eos == 2:
            return "argmax(input_ids) (legacy eos_token_id=2 config: the highest id is eos)"
        return f"first position of eos_token_id={eos}"


def resolve(source: str, revision: str | None = None) -> tuple[Path, str | None]:
    """The local folder of `source`, and its hub commit sha (None for a local folder)."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SourceError(f"{source} is a file; --model takes a checkpoint folder or a hub id")
        return path.resolve(), None
    if not HUB_ID.match(source):
        raise SourceError(f"{source}: no such folder, and not a Hugging Face Hub id (owner/name)")
    return _download(source, revision or "main")


def _download(repo_id: str, revision: str) -> tuple[Path, str]:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = HfApi().model_info(repo_id, revision=revision)
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise SourceError(f"{repo_id}@{revision}: {_first_line(exc)}") from None
    except Exception as exc:  # offline mode, no network, proxy, HTTP 5xx: try the local cache
        try:
            folder = snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=CONFIG_FILES + SAFETENSORS + PYTORCH_BIN,
                local_files_only=True,
            )
        except Exception:
            raise SourceError(
                f"cannot download {repo_id} from the Hugging Face Hub ({_why_unreachable(exc)}) "
                "and it is not in the local cache; go online, or pass a local checkpoint folder "
                "with --model DIR"
            ) from None
        say(f"hub unreachable ({_why_unreachable(exc)}); using the cached copy")
        return Path(folder), Path(folder).name  # snapshots/<commit sha>
    names = {s.rfilename for s in info.siblings or []}
    weights = SAFETENSORS if any(n.endswith(".safetensors") for n in names) else PYTORCH_BIN
    say(f"downloading {repo_id}@{info.sha[:12]} ...")
    try:
        folder = snapshot_download(
            repo_id, revision=info.sha, allow_patterns=CONFIG_FILES + weights
        )
    except Exception as exc:
        raise SourceError(f"downloading {repo_id}@{info.sha} failed: {_first_line(exc)}") from None
    return Path(folder), info.sha


def load(source: str, revision: str | None = None) -> Checkpoint:
    """Resolve `source` and load model, tokenizer and image processor from it."""
    directory, sha = resolve(source, revision)
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # e.g. "sequence longer than 77" when checking the tokenizer

    for required in ("config.json", "preprocessor_config.json"):
        if not (directory / required).is_file():
            raise SourceError(f"{directory} has no {required}; is it a CLIP checkpoint?")
    if not (directory / "tokenizer.json").is_file() and not (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()
    ):
        raise SourceError(f"{directory} has neither tokenizer.json nor vocab.json + merges.txt")
    try:
        model = CLIPModel.from_pretrained(
            directory, attn_implementation="eager", dtype="float32"
        ).eval()
        tokenizer = CLIPTokenizerFast.from_pretrained(directory)
        processor = CLIPImageProcessor.from_pretrained(directory)
    except Exception as exc:  # transformers and tokenizers raise many kinds on a bad folder
        why = _first_line(exc)
        raise SourceError(f"cannot load a CLIP model from {directory}: {why}") from None
    ckpt = Checkpoint(source, directory, sha, model, tokenizer, processor)
    _check_preprocessing(ckpt)
    _warn_on_eos_mismatch(ckpt)
    return ckpt


def _warn_on_eos_mismatch(ckpt: Checkpoint) -> None:
    """The graph pools text exactly as transformers does; say so when that looks broken."""
    config_eos = ckpt.model.config.text_config.eos_token_id
    tok_eos = ckpt.tokenizer.eos_token_id
    if config_eos == 2 and tok_eos != len(ckpt.tokenizer) - 1:
        say(
            f"warning: text pooling takes argmax(input_ids) (eos_token_id=2 in config.json) but the "
            f"tokenizer's eos id {tok_eos} is not the highest id; exporting the model as it is"
        )
    elif config_eos != 2 and config_eos != tok_eos:
        say(
            f"warning: config.json pools text at eos_token_id={config_eos}, the tokenizer's eos is "
            f"{tok_eos}; transformers (and this export) will pool at the wrong token"
        )


def _check_preprocessing(ckpt: Checkpoint) -> None:
    """The runtime resizes the shortest edge, centre-crops to S and normalises: insist on that."""
    p = ckpt.image_processor
    crop = p.crop_size or {}
    problems = []
    if "shortest_edge" not in (p.size or {}) or not p.do_resize:
        problems.append(f"resize {p.size} is not a shortest-edge resize")
    if not p.do_center_crop or crop.get("height") != crop.get("width"):
        problems.append(f"crop {crop} is not a square centre crop")
    elif crop.get("height") != ckpt.image_size:
        problems.append(f"crop {crop['height']} != vision image_size {ckpt.image_size}")
    if not p.do_normalize or not p.do_rescale or abs(p.rescale_factor - 1 / 255) > 1e-9:
        problems.append("pixels are not rescaled by 1/255 and normalised")
    if problems:
        raise SourceError(
            "preprocessor_config.json is not CLIP's usual preprocessing, which the runtime "
            "implements: " + "; ".join(problems)
        )


def _why_unreachable(exc: BaseException) -> str:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "offline mode: HF_HUB_OFFLINE is set"
    if "NameResolutionError" in str(exc) or "ConnectionError" in type(exc).__name__:
        return "no network connection to huggingface.co"
    return _first_line(exc)[:200]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
