"""Tiny checkpoints of the model families other than the default CLIP, built locally.

`make_tiny_siglip` writes what a hub download of a fixed-resolution SigLIP 2 checkpoint holds
(config.json with model_type "siglip", safetensors weights, a Gemma-style SentencePiece/Unigram
tokenizer.json with tokenizer_config.json and special_tokens_map.json, preprocessor_config.json),
with a vocabulary learned by the `tokenizers` library from a small corpus and seeded random
weights. With `spm=True` it is a SigLIP (v1) checkpoint instead: a slow SentencePiece tokenizer
(spiece.model, trained here by the `sentencepiece` library; transformers' SiglipTokenizer) whose
tokenizer_config.json says model_input_names ["input_ids"], as google/siglip-* checkpoints do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.factories import default_corpus

SIGLIP_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0..3, as in Gemma's vocabulary
# Words in several scripts, so the vocabulary covers the non-ASCII texts the tests embed.
MULTILINGUAL = """\
ein Hund läuft am Strand, die Straße ist naß
un chien qui court sur la plage à côté d'un café
un perro corriendo en la playa con niños pequeños
犬がビーチを走っている 猫がソファで寝ている
一只狗在海滩上奔跑 一只猫在沙发上睡觉
собака бежит по пляжу
κύων τρέχει στην παραλία
"""


def make_siglip_tokenizer(
    corpus: Iterable[str], vocab_size: int = 400, *, text_inputs: Sequence[str] = ()
):
    """A Unigram (SentencePiece-style) tokenizer wrapped as transformers' GemmaTokenizerFast,
    configured like SigLIP 2's: no bos, eos appended, pad id 0."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import GemmaTokenizerFast

    spm = SentencePieceUnigramTokenizer()
    spm.train_from_iterator(
        list(corpus), vocab_size=vocab_size, special_tokens=SIGLIP_SPECIALS, unk_token="<unk>"
    )
    extra = {"model_input_names": list(text_inputs)} if text_inputs else {}
    return GemmaTokenizerFast(
        tokenizer_object=spm._tokenizer,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        add_bos_token=False,
        add_eos_token=True,
        model_max_length=64,
        padding_side="right",
        **extra,
    )


def make_siglip_spm_tokenizer(corpus: Iterable[str], folder: Path, vocab_size: int = 300):
    """A SigLIP (v1)-style slow SentencePiece tokenizer: pad 0, eos 1, unk 2, no bos."""
    import io

    import sentencepiece
    from transformers import SiglipTokenizer

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(corpus) * 3), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>",
        eos_piece="</s>", unk_piece="<unk>", character_coverage=1.0, minloglevel=2,
        normalization_rule_name="nmt_nfkc",
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    return SiglipTokenizer(
        str(folder / "spiece.model"), model_max_length=64, model_input_names=["input_ids"]
    )


def make_tiny_siglip(
    out_dir: Path,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    text_length: int = 64,
    text_inputs: Sequence[str] = (),
    spm: bool = False,
    seed: int = 0,
) -> Path:
    """Save a tiny randomly initialised SiglipModel checkpoint in hub layout into `out_dir`."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = [*default_corpus(), *MULTILINGUAL.splitlines()]
    if spm:
        tokenizer = make_siglip_spm_tokenizer(corpus, out_dir)
    else:
        tokenizer = make_siglip_tokenizer(corpus, text_inputs=text_inputs)
    common = dict(
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
    )
    config = SiglipConfig(
        text_config=dict(
            common,
            vocab_size=len(tokenizer),
            max_position_embeddings=text_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(common, image_size=image_size, patch_size=patch_size),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    with torch.no_grad():  # the real checkpoints' values (random init gives a random scale/bias)
        model.logit_scale.fill_(4.7)
        model.logit_bias.fill_(-16.5)
    model.save_pretrained(out_dir, safe_serialization=True)
    image_processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size},
        resample=2,  # PIL bilinear, as in google/siglip2-*
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
    return out_dir
