"""The checkpoint being exported: where it comes from, and what it is made of.

A source is a local transformers-format folder or a Hugging Face Hub id. A hub id is downloaded
with `huggingface_hub.snapshot_download` at a pinned commit (recorded as the manifest's revision);
only the files the export needs are fetched (safetensors weights when the repo has them). The
family (CLIP or SigLIP, see `families`) is read from config.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export import families
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
    "processor_config.json",
    "spiece.model",  # SigLIP v1's SentencePiece tokenizer (converted by the export)
]
SAFETENSORS = ["model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
PYTORCH_BIN = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class Checkpoint:
    source: str  # what the user passed: hub id or local folder
    directory: Path  # local folder holding the files
    revision: str | None  # hub commit sha; None for a local folder
    model: Any  # transformers CLIPModel / SiglipModel in eval mode, fp32, eager attention
    tokenizer: Any  # a transformers fast tokenizer
    image_processor: Any  # transformers CLIPImageProcessor / SiglipImageProcessor
    family: str = "clip"  # see export.families

    @property
    def embedding_dim(self) -> int:
        return families.embedding_dim(self.family, self.model)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def context_length(self) -> int:
        """CLIP: the most tokens a text keeps; SigLIP: the length every text is padded to."""
        return families.text_length(self.family, self.model, self.tokenizer)

    @property
    def tokenizer_call(self) -> dict[str, Any]:
        """Keyword arguments of the transformers tokenizer call the runtime reproduces."""
        return families.tokenizer_call(self.family, self.context_length)

    @property
    def text_inputs(self) -> list[str]:
        return families.text_inputs(self.tokenizer, self.tokenizer_call)

    @property
    def resize_shortest_edge(self) -> int:
        return int(self.preprocess["resize_shortest_edge"])

    @property
    def preprocess(self) -> dict[str, Any]:
        return families.preprocess_entry(self.family, self.image_processor, self.image_size)

    @property
    def text_pooling(self) -> str:
        """How the text tower picks its pooled token (traced into the graph as is)."""
        if self.family == "siglip":
            return "last position (texts are padded to a fixed length)"
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
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # e.g. "sequence longer than 77" when checking the tokenizer

    for required in ("config.json", "preprocessor_config.json"):
        if not (directory / required).is_file():
            raise SourceError(f"{directory} has no {required}; is it a CLIP or SigLIP checkpoint?")
    family = families.family_of(directory)
    if (
        family == "clip"
        and not (directory / "tokenizer.json").is_file()
        and not ((directory / "vocab.json").is_file() and (directory / "merges.txt").is_file())
    ):
        raise SourceError(f"{directory} has neither tokenizer.json nor vocab.json + merges.txt")
    try:
        model, tokenizer, processor = families.load(family, directory)
    except SourceError:
        raise
    except Exception as exc:  # transformers and tokenizers raise many kinds on a bad folder
        why = _first_line(exc)
        raise SourceError(f"cannot load a {family} model from {directory}: {why}") from None
    ckpt = Checkpoint(source, directory, sha, model, tokenizer, processor, family)
    ckpt.preprocess  # noqa: B018 - raises SourceError for preprocessing the runtime lacks
    if family == "clip":
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
