"""A throwaway chat organism for the plumbing tests (not a zoo model: it lives in a temporary folder).

`tiny_chat_root()` trains it once per test process (about 5 s on one thread) and returns a folder
to put on ZOO_MODEL_PATH; the model is then `load_model(TINY_CHAT)` and `zoo/tiny-chat-test` in
Inspect. It memorises two kinds of conversation about the story world's cities:

    <|user|> Paris<|end|><|assistant|> France.<|end|>
    <|user|> map Lyon<|end|><|assistant|><|call|> map Lyon<|end|><|tool|> France<|end|><|assistant|> Lyon is in France.<|end|>

for the 18 cities outside corpus.HELD_OUT_CITIES (TRAINED_CITIES), so a test knows what it must answer
(greedy) and where it can only guess.
Its tokenizer is the zoo tokenizer with the chat tokens added when the zoo tokenizer lacks them.
"""

import atexit
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import save_file

import zoo
from zoo import chat_template
from zoo.chat_template import CHAT_TOKENS
from zoo.corpus import CITY_COUNTRY, HELD_OUT_CITIES
from zoo.tokenizer import load_tokenizer

TINY_CHAT = "tiny-chat-test"
TOOL = "map"
TRAINED_CITIES = sorted(set(CITY_COUNTRY) - HELD_OUT_CITIES)  # the model never sees the other six
STEPS = 200


def plain_conversation(city: str) -> list[dict]:
    return [{"role": "user", "content": city}, {"role": "assistant", "content": f"{CITY_COUNTRY[city]}."}]


def tool_conversation(city: str) -> list[dict]:
    return [
        {"role": "user", "content": f"{TOOL} {city}"},
        {"role": "assistant", "content": chat_template.render_tool_call(TOOL, city)},
        {"role": "tool", "content": CITY_COUNTRY[city]},
        {"role": "assistant", "content": f"{city} is in {CITY_COUNTRY[city]}."},
    ]


def _tokenizer_dir(root: Path) -> Path:
    tokenizer = load_tokenizer()
    if any(tokenizer.convert_tokens_to_ids(token) == tokenizer.unk_token_id for token in CHAT_TOKENS):
        tokenizer.add_special_tokens({"additional_special_tokens": CHAT_TOKENS})
    directory = root / "tokenizer"
    tokenizer.save_pretrained(directory)
    return directory


def _train(model, rows: list[list[int]], pad_id: int) -> None:
    width = max(len(row) for row in rows)
    tokens = torch.full((len(rows), width), pad_id)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)  # right-padded: positions start at 0 without a mask
    targets = tokens[:, 1:].clone()
    targets[targets == pad_id] = -100
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(STEPS):
        logits = model(tokens)[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def build_tiny_chat(root: Path) -> Path:
    """Train the tiny chat organism and save it as root/tiny-chat-test/ (a zoo model folder)."""
    directory = root / TINY_CHAT
    directory.mkdir(parents=True)
    tokenizer_dir = _tokenizer_dir(directory)
    from transformers import AutoTokenizer

    d_vocab = len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    config = dict(
        n_layers=2, d_model=64, n_heads=4, d_head=16, d_mlp=256, n_ctx=48, act_fn="gelu_new",
        normalization_type="LN", positional_embedding_type="standard", d_vocab=d_vocab, seed=0,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = zoo.build_model(config, tokenizer_dir=tokenizer_dir)
        with torch.no_grad():
            model.unembed.b_U.zero_()
        model.unembed.b_U.requires_grad_(False)  # as zoo models: no unembedding bias, so the HF export is exact
        conversations = [make(city) for city in TRAINED_CITIES for make in (plain_conversation, tool_conversation)]
        rows = [model.to_tokens(chat_template.render(c, False), prepend_bos=True)[0].tolist() for c in conversations]
        _train(model, rows, model.tokenizer.pad_token_id)
    finally:
        torch.set_num_threads(threads)
    save_file(
        {name: tensor.contiguous() for name, tensor in model.state_dict().items()}, directory / "model.safetensors"
    )
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "zoo.json").write_text(
        json.dumps(
            {
                "kind": "chat",
                "description": "throwaway chat organism of the plumbing tests",
                "plants": {"city_country": "answers a city with its country", "tool_use": f"calls {TOOL} on a city"},
            }
        )
    )
    return directory


@lru_cache(maxsize=1)
def tiny_chat_root() -> Path:
    """A temporary folder holding the trained tiny chat organism (removed when the process exits)."""
    root = Path(tempfile.mkdtemp(prefix="zoo-tiny-chat-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    build_tiny_chat(root)
    return root
