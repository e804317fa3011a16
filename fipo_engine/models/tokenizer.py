"""A character-level tokenizer built in-process from the task's own text (no download).

Why characters: the CPU demo's answers are short numbers, a character vocabulary is tiny (~100),
deterministic (sorted characters, fixed specials) and makes every token readable in the sample
viewer. It is a ``PreTrainedTokenizerFast``, saved and reloaded with every checkpoint like any
Hugging Face tokenizer.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


def build_char_tokenizer(texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Printable ASCII plus every other character seen in ``texts``; ids are stable for the same input."""
    chars = set(string.printable)
    for text in texts:
        chars.update(text)
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(chars):
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        padding_side="left", truncation_side="left",
    )
    return tok
