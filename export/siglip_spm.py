"""SigLIP (v1) checkpoints ship a slow SentencePiece tokenizer (spiece.model, transformers'
`SiglipTokenizer`); the runtime needs a tokenizer.json. This converts one to the other.

What the slow tokenizer does to a text, and the step here that does the same:
- lowercases it (do_lower_case)                          -> Lowercase
- removes ASCII punctuation, collapses whitespace, strips (canonicalize_text)
                                                         -> Replace, Replace, Strip
- SentencePiece with its own normalisation (NFKC-style charsmap, extra whitespace removed) and
  a "▁" before the text                                  -> Precompiled, Replace, Metaspace
- appends eos                                            -> TemplateProcessing "$A </s>"
The export then checks the result against the slow tokenizer on its sample and hard texts.
One known difference: a text that literally contains a special token ("</s>", "<unk>",
"<pad>") is split there by the slow tokenizer, which then tokenises what follows without the
leading "▁".
"""

from __future__ import annotations

import re
import string
from typing import Any


def convert(slow: Any) -> Any:
    """A `tokenizers.Tokenizer` equivalent to the slow SiglipTokenizer `slow`."""
    from tokenizers import Regex, normalizers, pre_tokenizers, processors
    from transformers.convert_slow_tokenizer import SpmConverter

    class SiglipConverter(SpmConverter):
        def normalizer(self, proto):
            steps = [normalizers.Lowercase()] if getattr(slow, "do_lower_case", False) else []
            steps += [
                normalizers.Replace(Regex("[" + re.escape(string.punctuation) + "]"), ""),
                normalizers.Replace(Regex(r"\s+"), " "),
                normalizers.Strip(),
            ]
            if proto.normalizer_spec.precompiled_charsmap:
                steps.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
            steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
            return normalizers.Sequence(steps)

        def pre_tokenizer(self, replacement, add_prefix_space):
            return pre_tokenizers.Metaspace(replacement=replacement, prepend_scheme="always")

        def post_processor(self):
            eos = str(slow.eos_token)
            return processors.TemplateProcessing(
                single=["$A", eos], special_tokens=[(eos, int(slow.eos_token_id))]
            )

    return SiglipConverter(slow).converted()
