"""Reference solutions for 1.1 Transformer from scratch.

A GPT-2-style transformer written out module by module. Parameter names and shapes follow
TransformerLens' HookedTransformer state dict (``embed.W_E``, ``blocks.0.attn.W_Q`` ...), so the zoo
model's weights load straight into it. Importing this module has no side effects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

_ZOO_MODELS = Path(__file__).resolve().parents[2] / "zoo" / "models"


@dataclass
class Config:
    """The shape of a GPT-2-style model; the field names are HookedTransformerConfig's."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_ctx: int = 64
    d_vocab: int = 626
    layer_norm_eps: float = 1e-5
    init_range: float = 0.02

    @classmethod
    def from_zoo(cls, name: str) -> Config:
        """The config of a zoo model, read from zoo/models/<name>/config.json."""
        fields = json.loads((_ZOO_MODELS / name / "config.json").read_text())
        return cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})


def load_zoo_weights(module: nn.Module, state_dict: dict[str, Tensor], prefix: str = "") -> None:
    """Copy the entries of a HookedTransformer state dict (those under `prefix`) into `module`.
    Entries the module does not have (TransformerLens' mask buffers) are skipped; a missing or
    wrongly shaped parameter raises ValueError."""
    own = module.state_dict()
    picked = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix) and k[len(prefix) :] in own}
    missing = sorted(set(own) - set(picked))
    if missing:
        raise ValueError(f"no weights for {missing}")
    for name, value in picked.items():
        if own[name].shape != value.shape:
            raise ValueError(f"{name}: expected shape {tuple(value.shape)}, got {tuple(own[name].shape)}")
    module.load_state_dict(picked)


def gelu_new(x: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
    """GPT-2's tanh approximation of GELU, elementwise."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class LayerNorm(nn.Module):
    """Normalise each residual vector to mean 0 and variance 1, then scale by w and shift by b."""

    def __init__(self, cfg: Config):
        """Keeps cfg; parameters w (ones) and b (zeros), each of shape [d_model]."""
        super().__init__()
        self.cfg = cfg
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(self, residual: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        centred = residual - residual.mean(dim=-1, keepdim=True)
        scale = (centred.pow(2).mean(dim=-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt()
        return centred / scale * self.w + self.b


class Embed(nn.Module):
    """Token embedding: the row of W_E for each token id."""

    def __init__(self, cfg: Config):
        """W_E of shape [d_vocab, d_model], normal with standard deviation cfg.init_range."""
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        nn.init.normal_(self.W_E, std=cfg.init_range)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    """Learned positional embedding: the row of W_pos for each position, the same for every sequence of the batch."""

    def __init__(self, cfg: Config):
        """W_pos of shape [n_ctx, d_model], normal with standard deviation cfg.init_range."""
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        nn.init.normal_(self.W_pos, std=cfg.init_range)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        batch, seq_len = tokens.shape
        return einops.repeat(self.W_pos[:seq_len], "pos d_model -> batch pos d_model", batch=batch)


class Attention(nn.Module):
    """Causal multi-head self-attention with per-head weights, as in TransformerLens."""

    IGNORE: Tensor

    def __init__(self, cfg: Config):
        """Keeps cfg; W_Q, W_K, W_V, W_O normal with standard deviation cfg.init_range; b_Q, b_K, b_V,
        b_O zeros; the buffer IGNORE = -inf, kept out of the state dict."""
        super().__init__()
        self.cfg = cfg
        self.W_Q = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_model, cfg.d_head))
        self.W_K = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_model, cfg.d_head))
        self.W_V = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_model, cfg.d_head))
        self.W_O = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_head, cfg.d_model))
        self.b_Q = nn.Parameter(torch.zeros(cfg.n_heads, cfg.d_head))
        self.b_K = nn.Parameter(torch.zeros(cfg.n_heads, cfg.d_head))
        self.b_V = nn.Parameter(torch.zeros(cfg.n_heads, cfg.d_head))
        self.b_O = nn.Parameter(torch.zeros(cfg.d_model))
        for weight in (self.W_Q, self.W_K, self.W_V, self.W_O):
            nn.init.normal_(weight, std=cfg.init_range)
        # Not saved in the state dict, so the parameter names alone must match.
        self.register_buffer("IGNORE", torch.tensor(float("-inf")), persistent=False)

    def forward(self, normalized_resid_pre: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        q = einops.einsum(normalized_resid_pre, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q
        k = einops.einsum(normalized_resid_pre, self.W_K, "b p d, h d e -> b p h e") + self.b_K
        v = einops.einsum(normalized_resid_pre, self.W_V, "b p d, h d e -> b p h e") + self.b_V
        scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(self.cfg.d_head)
        n = scores.shape[-1]
        future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=1)
        pattern = scores.masked_fill(future, self.IGNORE).softmax(dim=-1)
        z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
        return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O


class MLP(nn.Module):
    """Two linear maps with GPT-2's GELU between them, applied at each position."""

    def __init__(self, cfg: Config):
        """W_in [d_model, d_mlp] and W_out [d_mlp, d_model], normal with standard deviation
        cfg.init_range; b_in [d_mlp] and b_out [d_model], zeros."""
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        nn.init.normal_(self.W_in, std=cfg.init_range)
        nn.init.normal_(self.W_out, std=cfg.init_range)

    def forward(self, normalized_resid_mid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        hidden = gelu_new(normalized_resid_mid @ self.W_in + self.b_in)
        return hidden @ self.W_out + self.b_out


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: the attention layer and then the MLP each add to the residual stream."""

    def __init__(self, cfg: Config):
        """Submodules ln1, attn, ln2 and mlp."""
        super().__init__()
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, resid_pre: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        resid_mid = resid_pre + self.attn(self.ln1(resid_pre))
        return resid_mid + self.mlp(self.ln2(resid_mid))


class Unembed(nn.Module):
    """The final residual vectors to logits over the vocabulary."""

    def __init__(self, cfg: Config):
        """W_U [d_model, d_vocab], normal with standard deviation cfg.init_range; b_U [d_vocab], zeros."""
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))
        nn.init.normal_(self.W_U, std=cfg.init_range)

    def forward(self, normalized_resid_final: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return normalized_resid_final @ self.W_U + self.b_U


class DemoTransformer(nn.Module):
    """The whole model: token ids to logits through embeddings, n_layers blocks, a final LayerNorm and
    the unembedding."""

    def __init__(self, cfg: Config):
        """Keeps cfg; submodules embed, pos_embed, blocks (an nn.ModuleList), ln_final and unembed."""
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.pos_embed = PosEmbed(cfg)
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        residual = self.embed(tokens) + self.pos_embed(tokens)
        for block in self.blocks:
            residual = block(residual)
        return self.unembed(self.ln_final(residual))


def next_token_loss(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
    """Mean cross-entropy of predicting tokens[:, i + 1] from logits[:, i]."""
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    correct = log_probs.gather(dim=-1, index=tokens[:, 1:, None])[..., 0]
    return -correct.mean()


def train(
    model: nn.Module, data: Int[Tensor, "n pos"], epochs: int, batch_size: int, lr: float, weight_decay: float
) -> list[float]:
    """Trains model in place with AdamW (one optimizer for the whole run) on next_token_loss, taking the
    rows of data in order, batch_size rows at a time (the last batch of an epoch may be smaller), epochs
    times over. Returns the loss of every step, as floats, in order."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(epochs):
        for start in range(0, len(data), batch_size):
            batch = data[start : start + batch_size]
            loss = next_token_loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def apply_frequency_penalty(
    logits: Float[Tensor, "batch d_vocab"], tokens: Int[Tensor, "batch pos"], penalty: float
) -> Float[Tensor, "batch d_vocab"]:
    """New logits: each token's logit lowered by penalty for every time the token already occurs in
    its row of tokens."""
    counts = torch.zeros_like(logits).scatter_add(1, tokens, torch.ones_like(tokens, dtype=logits.dtype))
    return logits - penalty * counts


def top_k_logits(logits: Float[Tensor, "batch d_vocab"], k: int) -> Float[Tensor, "batch d_vocab"]:
    """New logits: the k largest of each row kept (and any tied with the k-th largest), the rest -inf."""
    kth_largest = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_logits(logits: Float[Tensor, "batch d_vocab"], top_p: float) -> Float[Tensor, "batch d_vocab"]:
    """New logits: in each row, the most probable tokens are kept, most probable first, until their
    probabilities add up to at least top_p (always at least one); the rest are -inf."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    keep_sorted = mass_before < top_p
    keep_sorted[:, 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def sample_next_token(
    logits: Float[Tensor, "batch d_vocab"], temperature: float, generator: torch.Generator
) -> Int[Tensor, " batch"]:
    """One token id per row, drawn with `generator` from the softmax of the logits at the given
    temperature; temperature 0 means greedy decoding (each row's most likely token)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = (logits / temperature).softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]


KVCache = list[tuple[Tensor, Tensor]]


def cached_forward(
    model: DemoTransformer, tokens: Int[Tensor, "batch new_pos"], cache: KVCache | None
) -> tuple[Float[Tensor, "batch new_pos d_vocab"], KVCache]:
    """The logits of `model` for new tokens that continue the sequences whose keys and values are in
    `cache` (None: no earlier tokens), and the cache extended by the new positions. A cache holds one
    (keys, values) pair per layer, each of shape [batch, earlier_pos, n_heads, d_head]."""
    offset = 0 if cache is None else cache[0][0].shape[1]
    n_new = tokens.shape[1]
    residual = model.embed(tokens) + model.pos_embed.W_pos[offset : offset + n_new]
    new_cache = []
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        x = block.ln1(residual)
        q = einops.einsum(x, attn.W_Q, "b p d, h d e -> b p h e") + attn.b_Q
        k = einops.einsum(x, attn.W_K, "b p d, h d e -> b p h e") + attn.b_K
        v = einops.einsum(x, attn.W_V, "b p d, h d e -> b p h e") + attn.b_V
        if cache is not None:
            k = torch.cat([cache[layer][0], k], dim=1)
            v = torch.cat([cache[layer][1], v], dim=1)
        new_cache.append((k, v))
        scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(attn.cfg.d_head)
        query_pos = torch.arange(offset, offset + n_new, device=tokens.device)[:, None]
        key_pos = torch.arange(k.shape[1], device=tokens.device)[None, :]
        pattern = scores.masked_fill(key_pos > query_pos, float("-inf")).softmax(dim=-1)
        z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
        residual = residual + einops.einsum(z, attn.W_O, "b q h e, h e d -> b q d") + attn.b_O
        residual = residual + block.mlp(block.ln2(residual))
    return model.unembed(model.ln_final(residual)), new_cache


def beam_search(
    model: Callable[[Tensor], Tensor],
    prompt: Int[Tensor, " prompt_pos"],
    n_new: int,
    n_beams: int,
    eos_token_id: int | None = None,
) -> list[tuple[Int[Tensor, " pos"], float]]:
    """The n_beams most likely continuations of prompt found by beam search, best first, each as (its tokens,
    prompt included; the summed log-probability of its new tokens). A continuation ends after n_new new
    tokens or at eos_token_id, which it keeps as its last token; a finished one is extended no further."""
    alive, scores = prompt[None], torch.zeros(1)
    finished = []
    with torch.no_grad():
        for _ in range(n_new):
            if len(alive) == 0:
                break
            log_probs = model(alive)[:, -1].log_softmax(dim=-1)
            candidates = (scores[:, None] + log_probs).flatten()
            scores, flat = candidates.topk(min(n_beams, len(candidates)))
            d_vocab = log_probs.shape[-1]
            alive = torch.cat([alive[flat // d_vocab], (flat % d_vocab)[:, None]], dim=1)
            if eos_token_id is not None:
                done = alive[:, -1] == eos_token_id
                finished += list(zip(alive[done], scores[done].tolist()))
                alive, scores = alive[~done], scores[~done]
    finished += list(zip(alive, scores.tolist()))
    return sorted(finished, key=lambda beam: -beam[1])[:n_beams]


def generate_cached(
    model: DemoTransformer,
    tokens: Int[Tensor, "batch pos"],
    n_new: int,
    pick_next: Callable[[Tensor, Tensor], Tensor],
    eos_token_id: int | None = None,
) -> Int[Tensor, "batch pos_and_new"]:
    """The tokens followed by n_new new tokens per row, computed with cached_forward and its cache: each new
    token is pick_next(the last position's logits [batch, d_vocab], the row's tokens so far [batch, pos]).
    A row that has produced eos_token_id (after its prompt) continues with eos_token_id only."""
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    with torch.no_grad():
        logits, cache = cached_forward(model, tokens, None)
        for step in range(n_new):
            next_token = pick_next(logits[:, -1], tokens)
            if eos_token_id is not None:
                next_token = next_token.masked_fill(finished, eos_token_id)
                finished = finished | (next_token == eos_token_id)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            if step < n_new - 1:
                logits, cache = cached_forward(model, next_token[:, None], cache)
    return tokens
