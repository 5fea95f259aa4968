"""The zoo's word-level tokenizer, shaped like GPT-2's so TransformerLens code reads the same.

Words carry their leading space (" Mary" and "Mary" are different tokens), punctuation is its own
token, and a year is two two-digit tokens (" 1732" -> " 17", "32"). "<|endoftext|>" is the BOS
token (TransformerLens prepends it), "<pad>" pads on the left so every prompt ends at position -1.

The chat organisms' template tokens (`zoo.chat_template.CHAT_TOKENS`: "<|user|>", "<|end|>", ...)
are atomic special tokens: the pre-tokenizer never splits them.

Build with `python -m zoo.tokenizer`; it saves to zoo/tokenizer/. TransformerLens reloads a
tokenizer by its `name_or_path`, so the model loader always passes this directory's path.
"""

from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from zoo.chat_template import CHAT_TOKENS
from zoo.corpus import PIECE_PATTERN, vocabulary_word_groups

TOKENIZER_DIR = Path(__file__).parent / "tokenizer"
BOS_TOKEN, PAD_TOKEN, UNK_TOKEN = "<|endoftext|>", "<pad>", "<unk>"
PUNCTUATION = list(".,:")


def vocabulary(n_word_groups: int | None = None) -> list[str]:
    """All tokens in id order: special tokens, punctuation, two-digit numbers, then each group of
    words followed by the same words with a leading space (the chat group's atomic tokens and
    punctuation have no leading-space form). n_word_groups limits the vocabulary to
    the first groups (the vocabulary an older model was trained with; its ids are a prefix)."""
    two_digit = [f"{i:02d}" for i in range(100)]
    words = [
        token
        for group in vocabulary_word_groups()[:n_word_groups]
        for token in group + [" " + word for word in group if word.isalpha()]
    ]  # fmt: skip
    return [BOS_TOKEN, PAD_TOKEN, UNK_TOKEN] + PUNCTUATION + two_digit + [" " + number for number in two_digit] + words


def word_groups_known(d_vocab: int) -> int:
    """How many word groups a model with this vocabulary size knows (which story world it reads)."""
    for n_groups in range(1, len(vocabulary_word_groups()) + 1):
        if len(vocabulary(n_groups)) == d_vocab:
            return n_groups
    raise ValueError(f"no prefix of the zoo vocabulary has {d_vocab} tokens")


def build_tokenizer(n_word_groups: int | None = None) -> PreTrainedTokenizerFast:
    """A fresh tokenizer; every piece of PIECE_PATTERN that is in the vocabulary is one token.
    n_word_groups: the vocabulary of a model trained before later groups were added (see vocabulary)."""
    token_to_id = {token: i for i, token in enumerate(vocabulary(n_word_groups))}
    backend = Tokenizer(models.WordLevel(vocab=token_to_id, unk_token=UNK_TOKEN))
    # "isolated" keeps each regex match as its own piece; the vocabulary holds the leading
    # spaces, so decoding is plain concatenation (Fuse) with no spaces invented.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    backend.decoder = decoders.Fuse()
    # The chat template's tokens are matched before pre-tokenization, so "<|user|>" is never split
    # into "<", "|", "user", ...; they are already in the vocabulary, so they keep their ids.
    chat_tokens = [AddedToken(token, special=True, normalized=False) for token in CHAT_TOKENS if token in token_to_id]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=BOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
        additional_special_tokens=chat_tokens,
    )


def load_tokenizer() -> PreTrainedTokenizerFast:
    """The saved tokenizer, loaded by its absolute path (the name TransformerLens reloads by)."""
    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR.resolve()))


if __name__ == "__main__":
    build_tokenizer().save_pretrained(TOKENIZER_DIR)
    print(f"saved {len(vocabulary())} tokens to {TOKENIZER_DIR}")
