"""Checks for 1.1 Transformer from scratch.

The pieces of the model are run by `_run_module`: it builds the learner's module from a Config, gives
it either the zoo gpt2-mini's weights or seeded random weights (by TransformerLens parameter name),
and runs it, so a known mistake is recognised by its output. The whole model (DemoTransformer) runs
through the harness's own module path instead, which, when the logits differ, names the first part
whose output differs. The oracles are TransformerLens' own components, so the reference is pinned to
the library the zoo model runs on. Initialisation, which loading weights hides, is checked by `extra`.
"""

import contextlib
import functools
import math
import warnings

import einops
import torch
from torch import nn

from solutions.chapter1_transformer_interp import transformer_from_scratch as ref
from tests.harness import Case, Checker, Exercise, Mismatch, describe, proportions_within

_SMALL = ref.Config(d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32, n_ctx=12, d_vocab=50)
# For initialisation checks: an init_range no one would hard-code, and enough values to measure a spread.
_INIT = ref.Config(d_model=64, n_layers=1, n_heads=4, d_head=16, d_mlp=256, n_ctx=32, d_vocab=300, init_range=0.1)


@functools.lru_cache(maxsize=1)
def _zoo():
    """The zoo gpt2-mini, its state dict, story tokens [3, 24] and its activation cache on them."""
    from zoo import corpus, load_model

    model = load_model("gpt2-mini", device="cpu")
    docs = corpus.story_documents("validation", 3, 64, world=1)
    tokens = torch.stack([model.to_tokens(doc)[0, :24] for doc in docs])
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return model, state, tokens, {k: v.detach().clone() for k, v in cache.items()}


def _random_state(module_cls, cfg: ref.Config, gen: torch.Generator) -> dict:
    """Seeded random values for every parameter the reference module has (LayerNorm w near 1)."""
    state = {}
    for name, value in module_cls(cfg).state_dict().items():
        noise = torch.randn(value.shape, generator=gen)
        state[name] = 1.0 + 0.3 * noise if name.endswith(".w") or name == "w" else 0.5 * noise
    return state


@contextlib.contextmanager
def _one_thread():
    """Tiny models on a busy CPU: threads that keep in step cost more than they save (seconds per case)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_module(impl, case: Case):
    """Build impl(cfg), load the weights named in case.init, run it on case.args."""
    cfg, state = case.init
    module = impl(cfg)
    own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    wanted = {k: tuple(v.shape) for k, v in state.items() if "IGNORE" not in k and "mask" not in k}
    missing = {k: s for k, s in wanted.items() if own.get(k) != s}
    if missing:
        raise Mismatch(
            f"parameters differ from TransformerLens' names and shapes: expected {missing}, your module has {own}"
        )
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    device = case.args[0].device
    with torch.no_grad():
        return module.to(device)(*case.args)


def _zoo_prefix(state: dict, prefix: str) -> dict:
    return {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and "mask" not in k and "IGNORE" not in k
    }


def _module_cases(module_cls, zoo_prefix: str, zoo_input, random_input, more=lambda gen: ()):
    def cases(gen):
        _, state, tokens, cache = _zoo()
        yield Case(
            (zoo_input(tokens, cache),),
            f"zoo gpt2-mini weights ({zoo_prefix}) on story text",
            init=(ref.Config.from_zoo("gpt2-mini"), _zoo_prefix(state, zoo_prefix)),
        )
        for batch, seq in [(2, 5), (1, 12)]:
            yield Case(
                (random_input(gen, batch, seq),),
                f"random weights, small config, batch {batch}, {seq} positions",
                init=(_SMALL, _random_state(module_cls, _SMALL, gen)),
            )
        yield from more(gen)

    return cases


def _resid(gen, batch, seq):
    return 2 * torch.randn(batch, seq, _SMALL.d_model, generator=gen) + 0.5


def _tokens(gen, batch, seq):
    return torch.randint(0, _SMALL.d_vocab, (batch, seq), generator=gen)


def _tl_config(cfg: ref.Config):
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        n_layers=cfg.n_layers,
        d_model=cfg.d_model,
        n_ctx=cfg.n_ctx,
        d_head=cfg.d_head,
        n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp,
        d_vocab=cfg.d_vocab,
        act_fn="gelu_new",
        normalization_type="LN",
        eps=cfg.layer_norm_eps,
        initializer_range=cfg.init_range,
        device="cpu",
    )


def _tl_oracle(component: str, call=lambda module, x: module(x)):
    """A module class built on TransformerLens' own component of that name. Its state dict leaves out
    TransformerLens' mask and IGNORE buffers, which the course's modules do not save."""

    class Oracle(nn.Module):
        def __init__(self, cfg: ref.Config):
            super().__init__()
            import transformer_lens.components as components
            from transformer_lens import HookedTransformer

            tl_cfg = _tl_config(cfg)
            if component == "HookedTransformer":
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")
                    self.inner = HookedTransformer(tl_cfg)
            elif component == "TransformerBlock":
                self.inner = components.TransformerBlock(tl_cfg, 0)
            else:
                self.inner = getattr(components, component)(tl_cfg)

        def state_dict(self, *args, **kwargs):
            return {
                k: v for k, v in self.inner.state_dict(*args, **kwargs).items() if "mask" not in k and "IGNORE" not in k
            }

        def load_state_dict(self, state, strict=True):
            return self.inner.load_state_dict(state, strict=False)

        def forward(self, x):
            return call(self.inner, x)

    Oracle.__name__ = f"TransformerLens{component}"
    return Oracle


# ----------------------------------------------------------------------------- initialisation


def _check_init(impl, normal: tuple[str, ...] = (), zeros: tuple[str, ...] = (), ones: tuple[str, ...] = ()) -> None:
    """The parameters of impl(_INIT) start as the prose says: normal noise with std cfg.init_range, zeros or ones."""
    module = impl(_INIT)
    params = dict(module.named_parameters())
    name_of = type(module).__name__
    for name in (*normal, *zeros, *ones):
        assert name in params, f"{name_of} has no parameter {name} (its parameters: {sorted(params)})"
    for name in normal:
        value = params[name].detach().float()
        mean, std = value.mean().item(), value.std().item()
        assert abs(std / _INIT.init_range - 1) < 0.15 and abs(mean) < 0.1 * _INIT.init_range, (
            f"{name_of}.{name} should start as normal noise of mean 0 and standard deviation cfg.init_range "
            f"({_INIT.init_range} in this test config); yours has mean {mean:.3g} and standard deviation {std:.3g}"
        )
    for name, fill in [*((n, 0.0) for n in zeros), *((n, 1.0) for n in ones)]:
        value = params[name].detach()
        assert bool((value == fill).all()), (
            f"{name_of}.{name} should start as all {'zeros' if fill == 0 else 'ones'}; "
            f"yours starts as {describe(value)}"
        )


def _attention_init(impl) -> None:
    _check_init(impl, normal=("W_Q", "W_K", "W_V", "W_O"), zeros=("b_Q", "b_K", "b_V", "b_O"))
    module = impl(_INIT)
    assert "IGNORE" not in module.state_dict(), (
        "IGNORE is in your Attention's state dict: register it as a buffer that is not saved (persistent=False), "
        "so the state dict holds the parameters alone"
    )


# ----------------------------------------------------------------------------- wrong implementations


class _LayerNormUnbiasedVar(ref.LayerNorm):
    def forward(self, residual):
        centred = residual - residual.mean(-1, keepdim=True)
        return centred / (residual.var(-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt() * self.w + self.b


class _LayerNormNoCentre(ref.LayerNorm):
    def forward(self, residual):
        scale = (residual.pow(2).mean(-1, keepdim=True) + self.cfg.layer_norm_eps).sqrt()
        return residual / scale * self.w + self.b


class _LayerNormStdPlusEps(ref.LayerNorm):
    def forward(self, residual):
        centred = residual - residual.mean(-1, keepdim=True)
        return centred / (residual.std(-1, keepdim=True, unbiased=False) + self.cfg.layer_norm_eps) * self.w + self.b


class _LayerNormNoEps(ref.LayerNorm):
    def forward(self, residual):
        centred = residual - residual.mean(-1, keepdim=True)
        return centred / centred.pow(2).mean(-1, keepdim=True).sqrt() * self.w + self.b


class _LayerNormFixedEps(ref.LayerNorm):
    def forward(self, residual):
        centred = residual - residual.mean(-1, keepdim=True)
        return centred / (centred.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * self.w + self.b


class _LayerNormZeroScale(ref.LayerNorm):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.w = nn.Parameter(torch.zeros(cfg.d_model))


class _EmbedReversed(ref.Embed):
    def forward(self, tokens):
        return self.W_E[tokens.flip(-1)]


class _EmbedUnitStd(ref.Embed):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.W_E = nn.Parameter(torch.randn(cfg.d_vocab, cfg.d_model))


class _PosEmbedFromEnd(ref.PosEmbed):
    def forward(self, tokens):
        seq = tokens.shape[1]
        return self.W_pos[-seq:].expand(tokens.shape[0], -1, -1)


class _PosEmbedFixedStd(ref.PosEmbed):
    def __init__(self, cfg):
        super().__init__(cfg)
        nn.init.normal_(self.W_pos, std=0.02)


def _attention(self, x, scale=None, mask_value=float("-inf"), diagonal=1, mask_after_softmax=False):
    """Attention.forward with one knob turned: the scale, the masked score, the mask's diagonal, or
    zeroing the pattern after the softmax instead of masking the scores before it."""
    q = einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e") + self.b_Q
    k = einops.einsum(x, self.W_K, "b p d, h d e -> b p h e") + self.b_K
    v = einops.einsum(x, self.W_V, "b p d, h d e -> b p h e") + self.b_V
    scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / (scale or math.sqrt(self.cfg.d_head))
    n = scores.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=diagonal)
    if mask_after_softmax:
        pattern = scores.softmax(-1).masked_fill(future, 0.0)
    elif mask_value is None:
        pattern = scores.softmax(-1)
    else:
        pattern = scores.masked_fill(future, mask_value).softmax(-1)
    z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
    return einops.einsum(z, self.W_O, "b q h e, h e d -> b q d") + self.b_O


def _attention_variant(**knobs):
    class Variant(ref.Attention):
        def forward(self, x):
            return _attention(self, x, **knobs)

    return Variant


class _AttentionNoScale(ref.Attention):
    def forward(self, x):
        return _attention(self, x, scale=1.0)


class _AttentionModelScale(ref.Attention):
    def forward(self, x):
        return _attention(self, x, scale=math.sqrt(self.cfg.d_model))


class _AttentionUnitStd(ref.Attention):
    def __init__(self, cfg):
        super().__init__(cfg)
        for weight in (self.W_Q, self.W_K, self.W_V, self.W_O):
            nn.init.normal_(weight, std=1.0)


class _MLPReLU(ref.MLP):
    def forward(self, x):
        return torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class _MLPExactGelu(ref.MLP):
    def forward(self, x):
        return torch.nn.functional.gelu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class _MLPUnitStd(ref.MLP):
    def __init__(self, cfg):
        super().__init__(cfg)
        nn.init.normal_(self.W_in, std=1.0)
        nn.init.normal_(self.W_out, std=1.0)


class _BlockPostNorm(ref.TransformerBlock):
    def forward(self, resid_pre):
        resid_mid = self.ln1(resid_pre + self.attn(resid_pre))
        return self.ln2(resid_mid + self.mlp(resid_mid))


class _BlockNoResidual(ref.TransformerBlock):
    def forward(self, resid_pre):
        return self.mlp(self.ln2(self.attn(self.ln1(resid_pre))))


class _BlockParallel(ref.TransformerBlock):
    def forward(self, resid_pre):
        return resid_pre + self.attn(self.ln1(resid_pre)) + self.mlp(self.ln2(resid_pre))


class _BlockOneNorm(ref.TransformerBlock):
    def forward(self, resid_pre):
        resid_mid = resid_pre + self.attn(self.ln1(resid_pre))
        return resid_mid + self.mlp(self.ln1(resid_mid))


class _UnembedNoBias(ref.Unembed):
    def forward(self, x):
        return x @ self.W_U


class _UnembedUnitStd(ref.Unembed):
    def __init__(self, cfg):
        super().__init__(cfg)
        nn.init.normal_(self.W_U, std=1.0)


class _TransformerNoFinalLN(ref.DemoTransformer):
    def forward(self, tokens):
        residual = self.embed(tokens) + self.pos_embed(tokens)
        for block in self.blocks:
            residual = block(residual)
        return self.unembed(residual)


class _TransformerNoPos(ref.DemoTransformer):
    def forward(self, tokens):
        residual = self.embed(tokens)
        for block in self.blocks:
            residual = block(residual)
        return self.unembed(self.ln_final(residual))


class _TransformerStdPlusEpsNorms(ref.DemoTransformer):
    """The whole model built from a LayerNorm that passed a check without small-variance inputs."""

    def __init__(self, cfg):
        super().__init__(cfg)
        for block in self.blocks:
            block.ln1, block.ln2 = _LayerNormStdPlusEps(cfg), _LayerNormStdPlusEps(cfg)
        self.ln_final = _LayerNormStdPlusEps(cfg)


def _gelu_exact(x):
    return torch.nn.functional.gelu(x)


def _gelu_sign(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x - 0.044715 * x.pow(3))))


def _gelu_tanh_by_exp(x):
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))
    return 0.5 * x * (1 + (torch.exp(2 * u) - 1) / (torch.exp(2 * u) + 1))


def _loss_not_shifted(logits, tokens):
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def _loss_sum(logits, tokens):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum")


def _loss_log_of_softmax(logits, tokens):
    log_probs = logits[:, :-1].softmax(-1).log()
    return -log_probs.gather(-1, tokens[:, 1:, None]).mean()


def _loss_softmax_over_positions(logits, tokens):
    log_probs = logits[:, :-1].log_softmax(1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).mean()


def _loss_oracle(logits, tokens):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())


def _penalty_presence(logits, tokens, penalty):
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, tokens, True)
    return logits - penalty * seen.to(logits.dtype)


def _penalty_inplace(logits, tokens, penalty):
    for b in range(tokens.shape[0]):
        for t in tokens[b].tolist():
            logits[b, t] -= penalty
    return logits


def _penalty_whole_batch(logits, tokens, penalty):
    counts = torch.bincount(tokens.flatten(), minlength=logits.shape[-1]).to(logits.dtype)
    return logits - penalty * counts


def _top_k_off_by_one(logits, k):
    kth = logits.topk(k + 1, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _top_k_smallest(logits, k):
    kth = logits.topk(k, dim=-1, largest=False).values[:, -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def _top_k_drops_kth(logits, k):
    kth = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits <= kth, float("-inf"))


def _top_k_exactly_k(logits, k):
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(1, logits.topk(k, dim=-1).indices, True)
    return logits.masked_fill(~keep, float("-inf"))


def _top_p(logits, top_p, keep_at_boundary=False, crossing=True, stable_softmax=True):
    """top_p_logits with one knob turned: keep the token whose mass-before equals top_p, drop the token
    that crosses top_p, or compute the probabilities as exp(logits) / sum (which overflows)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    exps = sorted_logits.exp()
    probs = sorted_logits.softmax(-1) if stable_softmax else exps / exps.sum(-1, keepdim=True)
    mass = probs.cumsum(-1) - (probs if crossing else 0)
    keep_sorted = mass <= top_p if keep_at_boundary else mass < top_p
    keep_sorted[:, 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def _top_p_unsorted(logits, top_p):
    probs = logits.softmax(-1)
    keep = (probs.cumsum(-1) - probs) < top_p
    return logits.masked_fill(~keep, float("-inf"))


def _sample_no_temperature(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


def _sample_times_temperature(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial((logits * temperature).softmax(-1), 1, generator=generator)[:, 0]


def _sample_no_greedy_case(logits, temperature, generator):
    return torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)[:, 0]


def _sample_exp(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial((logits / temperature).exp(), 1, generator=generator)[:, 0]


def _sample_global_rng(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial((logits / temperature).softmax(-1), 1)[:, 0]


def _sample_softmax_over_batch(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial((logits / temperature).softmax(0), 1, generator=generator)[:, 0]


def _cached(model, tokens, cache, offset_positions=True, read_cache=True, mask="absolute", heads_first=False):
    """cached_forward with one knob turned: positions restart at 0, each chunk attends only to itself, the
    mask is dropped after the first call or built as if the new tokens started at position 0, or the
    cache is kept as [batch, n_heads, pos, d_head]."""
    earlier = 0 if cache is None else cache[0][0].shape[2 if heads_first else 1]
    offset = earlier if offset_positions else 0
    n_new = tokens.shape[1]
    residual = model.embed(tokens) + model.pos_embed.W_pos[offset : offset + n_new]
    new_cache = []
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        x = block.ln1(residual)
        q = einops.einsum(x, attn.W_Q, "b p d, h d e -> b p h e") + attn.b_Q
        k = einops.einsum(x, attn.W_K, "b p d, h d e -> b p h e") + attn.b_K
        v = einops.einsum(x, attn.W_V, "b p d, h d e -> b p h e") + attn.b_V
        full_k, full_v = k, v
        if cache is not None:
            old_k, old_v = (c.transpose(1, 2) for c in cache[layer]) if heads_first else cache[layer]
            full_k, full_v = torch.cat([old_k, k], dim=1), torch.cat([old_v, v], dim=1)
        new_cache.append((full_k.transpose(1, 2), full_v.transpose(1, 2)) if heads_first else (full_k, full_v))
        keys, values = (full_k, full_v) if read_cache else (k, v)
        scores = einops.einsum(q, keys, "b q h e, b k h e -> b h q k") / math.sqrt(attn.cfg.d_head)
        first_query = earlier if mask == "absolute" and read_cache else 0
        query_pos = torch.arange(first_query, first_query + n_new, device=tokens.device)[:, None]
        key_pos = torch.arange(keys.shape[1], device=tokens.device)[None, :]
        if not (mask == "first call only" and cache is not None):
            scores = scores.masked_fill(key_pos > query_pos, float("-inf"))
        z = einops.einsum(scores.softmax(-1), values, "b h q k, b k h e -> b q h e")
        residual = residual + einops.einsum(z, attn.W_O, "b q h e, h e d -> b q d") + attn.b_O
        residual = residual + block.mlp(block.ln2(residual))
    return model.unembed(model.ln_final(residual)), new_cache


def _cached_variant(**knobs):
    return lambda model, tokens, cache: _cached(model, tokens, cache, **knobs)


def _train_variant(
    zero_grad="before backward",
    shifted=True,
    last_batch=True,
    optimizer_per_epoch=False,
    decoupled_decay=True,
    per_epoch_loss=False,
):
    """train with one knob turned: zero_grad never called or called between backward and step, unshifted
    targets, the last smaller batch dropped, a fresh optimizer every epoch, Adam's L2 decay in place of
    AdamW's, or one (mean) loss per epoch."""

    def loss_of(model, batch):
        if shifted:
            return ref.next_token_loss(model(batch), batch)
        return torch.nn.functional.cross_entropy(model(batch).flatten(0, 1), batch.flatten())

    def make_optimizer(model, lr, weight_decay):
        kind = torch.optim.AdamW if decoupled_decay else torch.optim.Adam
        return kind(model.parameters(), lr=lr, weight_decay=weight_decay)

    def train(model, data, epochs, batch_size, lr, weight_decay):
        optimizer = make_optimizer(model, lr, weight_decay)
        losses = []
        stop = len(data) if last_batch else len(data) - batch_size + 1
        for _ in range(epochs):
            if optimizer_per_epoch:
                optimizer = make_optimizer(model, lr, weight_decay)
            epoch = []
            for start in range(0, stop, batch_size):
                batch = data[start : start + batch_size]
                loss = loss_of(model, batch)
                if zero_grad == "before backward":
                    optimizer.zero_grad()
                loss.backward()
                if zero_grad == "before step":
                    optimizer.zero_grad()
                optimizer.step()
                epoch.append(loss.item())
            losses += [sum(epoch) / len(epoch)] if per_epoch_loss else epoch
        return losses

    return train


class _Markov:
    """A stand-in model whose next-token logits depend on the last token only: row t of `log_probs` plus
    an offset per row (softmax ignores it; summing raw logits does not)."""

    def __init__(self, probs: list[list[float]]):
        table = torch.tensor(probs).log()
        self.logits = table + torch.arange(len(probs), dtype=table.dtype)[:, None] * 2.0 - 3.0

    def __call__(self, tokens):
        return self.logits[tokens]

    def __eq__(self, other) -> bool:  # the harness compares inputs before and after, to catch in-place edits
        return isinstance(other, _Markov) and torch.equal(self.logits, other.logits)

    def __repr__(self) -> str:
        return f"a model whose next-token probabilities depend on the last token only, {self.logits.shape[0]} tokens"


class _Frozen:
    """A model given as a plain function of the tokens, compared by its weights."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, tokens):
        return self.model(tokens)

    def __eq__(self, other) -> bool:
        mine, theirs = self.model.state_dict(), getattr(other, "model", nn.Module()).state_dict()
        return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)

    def __repr__(self) -> str:
        return "a small random DemoTransformer"


def _beam(
    model,
    prompt,
    n_new,
    n_beams,
    eos_token_id=None,
    rank="sum",
    width="shared",
    stop_at_eos=True,
    keep_eos=True,
    normalise="log_softmax",
    best_first=True,
):
    """beam_search with one knob turned: rank candidates by the new token's log-probability alone, keep
    one beam, extend each beam by its own best tokens, extend finished beams, drop finished beams, sum raw
    logits or normalise after adding the beam scores, or return the continuations unsorted."""
    alive, scores = prompt[None], torch.zeros(1)
    finished = []
    with torch.no_grad():
        for _ in range(n_new):
            if len(alive) == 0:
                break
            logits = model(alive)[:, -1]
            log_probs = logits.log_softmax(-1) if normalise == "log_softmax" else logits
            d_vocab = log_probs.shape[-1]
            candidates = scores[:, None] + log_probs if rank == "sum" else log_probs
            if normalise == "after adding":
                candidates = candidates.flatten().log_softmax(0).reshape(candidates.shape)
            if width == "one":
                picked, flat = candidates.flatten().topk(1)
            elif width == "per beam":
                per_beam = min(n_beams, d_vocab) if len(alive) == 1 else 1
                picked, index = candidates.topk(per_beam, dim=-1)
                flat = (torch.arange(len(alive))[:, None] * d_vocab + index).flatten()
                picked = picked.flatten()
            else:
                picked, flat = candidates.flatten().topk(min(n_beams, candidates.numel()))
            scores = picked if rank == "sum" else scores[flat // d_vocab] + log_probs.flatten()[flat]
            alive = torch.cat([alive[flat // d_vocab], (flat % d_vocab)[:, None]], dim=1)
            if eos_token_id is not None and stop_at_eos:
                done = alive[:, -1] == eos_token_id
                if keep_eos:
                    finished += list(zip(alive[done], scores[done].tolist()))
                alive, scores = alive[~done], scores[~done]
    finished += list(zip(alive, scores.tolist()))
    return sorted(finished, key=lambda beam: -beam[1])[:n_beams] if best_first else finished[:n_beams]


def _generate(
    model,
    tokens,
    n_new,
    pick_next,
    eos_token_id=None,
    keep_cache=True,
    stop="row",
    history="so far",
    prompt_counts=False,
):
    """generate_cached with one knob turned: None passed instead of the cache, finished rows not held at the
    end token or every row stopped when one ends, pick_next shown the prompt only, or an end token in the
    prompt taken as finishing the row."""
    prompt = tokens
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool)
    if prompt_counts and eos_token_id is not None:
        finished = (tokens == eos_token_id).any(dim=1)
    with torch.no_grad():
        logits, cache = ref.cached_forward(model, tokens, None)
        for step in range(n_new):
            next_token = pick_next(logits[:, -1], tokens if history == "so far" else prompt)
            if eos_token_id is not None and stop is not None:
                next_token = next_token.masked_fill(finished, eos_token_id)
                ended = next_token == eos_token_id
                finished = finished | (ended if stop == "row" else ended.any())
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            if step < n_new - 1:
                logits, new_cache = ref.cached_forward(model, next_token[:, None], cache if keep_cache else None)
                cache = new_cache
    return tokens


# ----------------------------------------------------------------------------- cases


def _layer_norm_more(gen):
    """Inputs whose variance is near or below eps: where eps matters, and where std + eps is not sqrt(var + eps)."""
    x = 0.05 + 1e-3 * torch.randn(2, 5, _SMALL.d_model, generator=gen)
    x[0, 0] = 0.05
    yield Case(
        (x,),
        "residual vectors of variance about 1e-6, below eps, and one constant vector",
        init=(_SMALL, _random_state(ref.LayerNorm, _SMALL, gen)),
    )
    wide_eps = ref.Config(**{**vars(_SMALL), "layer_norm_eps": 1e-2})
    yield Case(
        (0.1 * torch.randn(2, 5, _SMALL.d_model, generator=gen) - 1.0,),
        "a config with layer_norm_eps = 0.01, inputs of variance about 0.01",
        init=(wide_eps, _random_state(ref.LayerNorm, wide_eps, gen)),
    )
    _, state, tokens, cache = _zoo()
    yield Case(
        (cache["blocks.0.hook_resid_pre"],),
        "zoo gpt2-mini weights (blocks.0.ln1.) on the embeddings, whose variance is small",
        init=(ref.Config.from_zoo("gpt2-mini"), _zoo_prefix(state, "blocks.0.ln1.")),
    )


def _attention_more(gen):
    """Every score far below -1e5, each query's own key scoring highest: a large negative number in
    place of -inf would let the future win."""
    state = _random_state(ref.Attention, _SMALL, gen)
    state["W_Q"] = torch.zeros_like(state["W_Q"])
    state["b_Q"] = torch.full_like(state["b_Q"], 1000.0)
    state["b_K"] = torch.full_like(state["b_K"], -1000.0)
    state["W_K"] = torch.zeros_like(state["W_K"])
    state["W_K"][:, 0, :] = 1 / _SMALL.d_model  # the score grows by about 177 with each position
    x = torch.randn(2, 6, _SMALL.d_model, generator=gen)
    x[..., 0] = torch.arange(6.0)
    yield Case(
        (x,),
        "scores of about -2.8e6 for every key (masked scores must be -inf, not a large negative number)",
        init=(_SMALL, state),
    )


def _loss_cases(gen):
    # Uniform logits over 4 tokens: the loss is log 4 whatever the tokens are.
    yield Case(
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]])),
        "uniform logits over 4 tokens",
        expected=torch.tensor(math.log(4)),
    )
    # Position 0 gives the true token 1 a logit 200 below token 0's: -log p = 200 + log(1 + e^-200), which
    # is 200 in float32; position 1 is uniform over 2 tokens: log 2. A probability of e^-200 underflows to 0.
    yield Case(
        (torch.tensor([[[200.0, 0.0], [0.0, 0.0], [5.0, 1.0]]]), torch.tensor([[0, 1, 0]])),
        "extreme logits: the true token 200 below the best",
        expected=torch.tensor((200 + math.log(2)) / 2),
    )
    model, _, tokens, _ = _zoo()
    with torch.no_grad():
        yield Case((model(tokens), tokens), "the zoo gpt2-mini's logits on story text")
    yield Case((torch.randn(2, 6, 10, generator=gen), torch.randint(0, 10, (2, 6), generator=gen)), "random logits")


def _penalty_cases(gen):
    yield Case(
        (torch.zeros(1, 4), torch.tensor([[1, 3, 1]]), 0.5),
        "tokens 1, 3, 1 with penalty 0.5",
        expected=torch.tensor([[0.0, -1.0, 0.0, -0.5]]),
    )
    yield Case((torch.randn(3, 20, generator=gen), torch.randint(0, 20, (3, 15), generator=gen), 1.2), "random")
    yield Case((torch.randn(2, 8, generator=gen), torch.randint(0, 8, (2, 30), generator=gen), 0.1), "many repeats")


def _top_k_cases(gen):
    inf = float("-inf")
    yield Case(
        (torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 2), "[1, 3, 2, 0], k=2", expected=torch.tensor([[inf, 3.0, 2.0, inf]])
    )
    yield Case(
        (torch.tensor([[1.0, 3.0, 2.0, 3.0, 2.0, 0.0], [5.0, 5.0, 5.0, 1.0, 0.0, 5.0]]), 2),
        "ties: [1, 3, 2, 3, 2, 0] and [5, 5, 5, 1, 0, 5], k=2 (logits tied with the k-th largest stay)",
        expected=torch.tensor([[inf, 3.0, inf, 3.0, inf, inf], [5.0, 5.0, 5.0, inf, inf, 5.0]]),
    )
    yield Case(
        (torch.tensor([[0.0, 2.0, 1.0, 2.0, 1.0]]), 3),
        "a tie at the k-th largest: [0, 2, 1, 2, 1], k=3",
        expected=torch.tensor([[inf, 2.0, 1.0, 2.0, 1.0]]),
    )
    yield Case((torch.randn(4, 30, generator=gen), 5), "random, k=5")
    yield Case((torch.randn(2, 10, generator=gen), 1), "random, k=1 (greedy)")
    yield Case((torch.randn(2, 10, generator=gen), 10), "random, k = vocabulary size")


def _top_p_cases(gen):
    inf = float("-inf")
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1]])
    # Sorted: 0.5, 0.3, 0.1, 0.1. Mass before each: 0, 0.5, 0.8, 0.9; with top_p 0.7 keep 0.5 and 0.3.
    yield Case(
        (probs.log(), 0.7),
        "probabilities [0.1, 0.5, 0.3, 0.1], top_p=0.7",
        expected=torch.tensor([[inf, math.log(0.5), math.log(0.3), inf]]),
    )
    yield Case(
        (probs.log(), 0.3),
        "same, top_p=0.3 (only the most likely)",
        expected=torch.tensor([[inf, math.log(0.5), inf, inf]]),
    )
    # Powers of two, which softmax and cumsum compute exactly: 0.5 + 0.25 is exactly 0.75, so the two most
    # likely tokens already reach top_p and the third is not kept.
    exact = torch.tensor([[0.125, 0.5, 0.0625, 0.25, 0.0625]])
    yield Case(
        (exact.log(), 0.75),
        "probabilities [1/8, 1/2, 1/16, 1/4, 1/16], top_p=0.75: the two most likely reach 0.75 exactly",
        expected=torch.tensor([[inf, math.log(0.5), inf, math.log(0.25), inf]]),
    )
    yield Case((3 * torch.randn(4, 30, generator=gen), 0.9), "random, top_p=0.9")
    yield Case((torch.randn(2, 10, generator=gen), 0.5), "random, top_p=0.5")
    yield Case((3 * torch.randn(2, 10, generator=gen) + 1000.0, 0.8), "extreme logits near 1000, top_p=0.8")


_DRAWS = 20_000


def _run_sampler(impl, case: Case):
    """Draw _DRAWS tokens for every row of the logits (one call, each row repeated) with a seeded
    generator; return each row's token frequencies and the number of draws."""
    logits, temperature = case.args
    generator = torch.Generator(device=logits.device).manual_seed(0)
    tokens = impl(logits.repeat_interleave(_DRAWS, dim=0), temperature, generator)
    rows = logits.shape[0] * _DRAWS
    if not isinstance(tokens, torch.Tensor) or tokens.shape != (rows,) or tokens.dtype.is_floating_point:
        raise Mismatch(
            f"for logits of shape ({rows}, {logits.shape[1]}) expected one integer token id per row, "
            f"a tensor of shape ({rows},); got {describe(tokens)}"
        )
    index = tokens.long().reshape(-1, _DRAWS)
    counts = torch.zeros_like(logits).scatter_add(1, index, torch.ones_like(index, dtype=logits.dtype))
    return counts / _DRAWS, _DRAWS


def _sample_cases(gen):
    # Logits 0 and log 3: probabilities 1/4 and 3/4 at temperature 1; at temperature 1/2 the ratio is squared.
    pair = torch.tensor([[0.0, math.log(3.0)]])
    yield Case((pair, 1.0), "logits [0, log 3], temperature 1", expected=torch.tensor([[0.25, 0.75]]))
    yield Case((pair, 0.5), "logits [0, log 3], temperature 0.5", expected=torch.tensor([[0.1, 0.9]]))
    logits = torch.randn(3, 8, generator=gen)
    logits[1, [2, 5]] = float("-inf")  # already filtered by top-k or top-p: never drawn
    for temperature in (2.0, 0.7):
        yield Case(
            (logits, temperature),
            f"3 rows of random logits, two of them -inf, temperature {temperature}",
            expected=(logits / temperature).softmax(-1),
        )
    greedy = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    yield Case((logits, 0.0), "temperature 0: greedy", expected=greedy)
    extreme = torch.tensor([[1000.0, 1000.0 + math.log(3.0)], [-1000.0, -1000.0 - math.log(3.0)]])
    yield Case(
        (extreme, 1.0),
        "extreme logits: [1000, 1000 + log 3] and [-1000, -1000 - log 3]",
        expected=torch.tensor([[0.25, 0.75], [0.75, 0.25]]),
    )


def _sampler_uses_generator(impl) -> None:
    logits = torch.randn(200, 30, generator=torch.Generator().manual_seed(3))
    draws = []
    with torch.random.fork_rng(devices=[]):  # leave the learner's global random state as it was
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)
            draws.append(impl(logits, 1.0, torch.Generator().manual_seed(7)))
    assert torch.equal(draws[0], draws[1]), (
        "two generators seeded alike gave different tokens: draw with the generator you are given, "
        "not torch's global random state, so a seeded sampler is reproducible"
    )


def _run_cached(impl, case: Case):
    """Feed the tokens chunk by chunk through impl, carrying its cache; return all logits and the final
    cache's keys and values, layer by layer."""
    tokens, chunks = case.args
    cfg, state = case.init
    model = ref.DemoTransformer(cfg)
    ref.load_zoo_weights(model, state)
    model = model.to(tokens.device)
    cache, logits, start = None, [], 0
    with torch.no_grad(), _one_thread():
        for size in chunks:
            out, cache = impl(model, tokens[:, start : start + size], cache)
            logits.append(out)
            start += size
    if not isinstance(cache, (list, tuple)) or len(cache) != cfg.n_layers:
        raise Mismatch(
            f"the cache should be a list of {cfg.n_layers} (keys, values) pairs, one per layer; got {describe(cache)}"
        )
    result = {"logits": torch.cat(logits, dim=1)}
    for layer, pair in enumerate(cache):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise Mismatch(f"layer {layer}'s cache should be a (keys, values) pair; got {describe(pair)}")
        result[f"layer {layer} keys"], result[f"layer {layer} values"] = pair
    return result


class _History(list):
    """The oracle's cache: the (keys, values) pairs it reports, and the tokens it reruns."""

    def __init__(self, pairs, tokens):
        super().__init__(pairs)
        self.tokens = tokens


def _uncached_oracle(model, tokens, cache):
    """No cache at all: rerun the whole history; read each layer's keys and values off the input of its
    attention layer."""
    history = tokens if cache is None else torch.cat([cache.tokens, tokens], dim=1)
    inputs = []
    hooks = [block.attn.register_forward_hook(lambda m, args, out: inputs.append(args[0])) for block in model.blocks]
    try:
        logits = model(history)
    finally:
        for hook in hooks:
            hook.remove()
    pairs = [
        (
            einops.einsum(x, block.attn.W_K, "b p d, h d e -> b p h e") + block.attn.b_K,
            einops.einsum(x, block.attn.W_V, "b p d, h d e -> b p h e") + block.attn.b_V,
        )
        for x, block in zip(inputs, model.blocks)
    ]
    return logits[:, -tokens.shape[1] :], _History(pairs, history)


def _cache_cases(gen):
    _, state, tokens, _ = _zoo()
    yield Case(
        (tokens, (10, 1, 1, 12)),
        "zoo gpt2-mini on story text, fed in chunks of 10, 1, 1, 12 tokens",
        init=(ref.Config.from_zoo("gpt2-mini"), state),
    )
    small_state = _random_state(ref.DemoTransformer, _SMALL, gen)
    yield Case((_tokens(gen, 2, 12), (1,) * 12), "random small model, one token at a time", init=(_SMALL, small_state))
    yield Case((_tokens(gen, 3, 9), (4, 5)), "random small model, chunks of 4 and 5", init=(_SMALL, small_state))


def _train_oracle(model, data, epochs, batch_size, lr, weight_decay):
    """train written with torch's DataLoader and cross_entropy."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    losses = []
    for _ in range(epochs):
        for batch in loader:
            logits = model(batch)
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def _run_train(impl, case: Case):
    """Build the small model under a fixed seed, train it with impl; return the losses and the weights after."""
    cfg, seed = case.init
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ref.DemoTransformer(cfg)
    data = case.args[0]
    model = model.to(data.device)
    with _one_thread(), torch.enable_grad():  # training needs gradients, even where the harness replays a mistake
        losses = impl(model, *case.args)
    try:
        losses = torch.tensor([float(loss) for loss in losses])
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch(f"expected a list of floats, the loss of every step; got {describe(losses)}") from None
    return {
        "losses, step by step": losses,
        "unembed.W_U after training": model.unembed.W_U.detach(),
        "blocks.0.attn.W_Q after training": model.blocks[0].attn.W_Q.detach(),
    }


def _train_cases(gen):
    # seq 8 < n_ctx; 10 rows in batches of 4 leave a last batch of 2.
    yield Case(
        (_tokens(gen, 10, 8), 2, 4, 1e-2, 0.01),
        "10 rows in batches of 4, 2 epochs, weight decay 0.01",
        init=(_SMALL, 0),
    )
    yield Case(
        (_tokens(gen, 8, 8), 1, 4, 3e-3, 0.0), "8 rows in batches of 4, 1 epoch, no weight decay", init=(_SMALL, 1)
    )
    yield Case(
        (_tokens(gen, 3, 6), 3, 8, 2e-2, 0.5), "batch size 8 > 3 rows, 3 epochs, weight decay 0.5", init=(_SMALL, 2)
    )


def _run_beam(impl, case: Case):
    """Run impl; return each continuation's tokens and log-probability, best first, by name."""
    model, prompt, n_new, n_beams, eos_token_id = case.args
    with torch.no_grad(), _one_thread():
        beams = impl(model, prompt, n_new, n_beams, eos_token_id)
    if not isinstance(beams, (list, tuple)):
        raise Mismatch(f"expected a list of (tokens, log-probability) pairs, best first; got {describe(beams)}")
    result = {}
    for number, beam in enumerate(beams, start=1):
        if not isinstance(beam, (list, tuple)) or len(beam) != 2:
            raise Mismatch(f"continuation {number} should be a (tokens, log-probability) pair; got {describe(beam)}")
        tokens, score = beam
        try:
            result[f"continuation {number}: log-probability"] = torch.tensor(float(score))
        except (TypeError, ValueError, RuntimeError):
            raise Mismatch(
                f"continuation {number}'s log-probability should be one number; got {describe(score)}"
            ) from None
        result[f"continuation {number}: tokens"] = torch.as_tensor(tokens)
    return result


def _beam_cases(gen):
    log = math.log
    # From token 0, tokens 1 and 2 have probabilities 0.5 and 0.4; after 1 the best is 0.35, after 2 it is 0.8.
    # Greedy: 0 -> 1 -> 0 (0.175). Two beams: 0 -> 2 -> 2 (0.32) first, then 0 -> 1 -> 0 (0.175).
    table = _Markov([[0.05, 0.5, 0.4, 0.05], [0.35, 0.3, 0.2, 0.15], [0.1, 0.05, 0.8, 0.05], [0.4, 0.3, 0.2, 0.1]])
    yield Case(
        (table, torch.tensor([0]), 2, 2, None),
        "hand-built model where greedy and beam search differ, 2 beams, 2 new tokens",
        expected={
            "continuation 1: log-probability": torch.tensor(log(0.4 * 0.8)),
            "continuation 1: tokens": torch.tensor([0, 2, 2]),
            "continuation 2: log-probability": torch.tensor(log(0.5 * 0.35)),
            "continuation 2: tokens": torch.tensor([0, 1, 0]),
        },
    )
    # Token 3 ends a continuation. Step 1 keeps 0 -> 3 (0.4, finished) and 0 -> 1 (0.35); step 2 extends only
    # 0 -> 1: 0 -> 1 -> 0 (0.1225) and 0 -> 1 -> 1 (0.105). Extending 0 -> 3 would give 0 -> 3 -> 0 (0.16).
    eos_table = _Markov([[0.05, 0.35, 0.2, 0.4], [0.35, 0.3, 0.2, 0.15], [0.1, 0.05, 0.8, 0.05], [0.4, 0.3, 0.2, 0.1]])
    yield Case(
        (eos_table, torch.tensor([2, 0]), 2, 2, 3),
        "the same with token 3 as the end token: a continuation that ends is kept but not extended",
        expected={
            "continuation 1: log-probability": torch.tensor(log(0.4)),
            "continuation 1: tokens": torch.tensor([2, 0, 3]),
            "continuation 2: log-probability": torch.tensor(log(0.35 * 0.35)),
            "continuation 2: tokens": torch.tensor([2, 0, 1, 0]),
        },
    )
    # One new token, end token 3: 0 -> 1 (0.5) beats the finished 0 -> 3 (0.25).
    late = _Markov([[0.05, 0.5, 0.2, 0.25], [0.35, 0.3, 0.2, 0.15], [0.1, 0.05, 0.8, 0.05], [0.4, 0.3, 0.2, 0.1]])
    yield Case(
        (late, torch.tensor([0]), 1, 2, 3),
        "one new token: an unfinished continuation beats a finished one",
        expected={
            "continuation 1: log-probability": torch.tensor(log(0.5)),
            "continuation 1: tokens": torch.tensor([0, 1]),
            "continuation 2: log-probability": torch.tensor(log(0.25)),
            "continuation 2: tokens": torch.tensor([0, 3]),
        },
    )
    yield Case(
        (table, torch.tensor([0]), 3, 6, None),
        "6 beams but only 4 tokens: fewer candidates than beams at the first step",
    )
    wide = ref.Config(**{**vars(_SMALL), "init_range": 0.5})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = ref.DemoTransformer(wide).eval()
    prompt = _tokens(gen, 1, 3)[0]
    yield Case((_Frozen(model), prompt, 4, 3, None), "a small random transformer, 3 beams, 4 new tokens")
    with torch.no_grad():
        likely = model(prompt[None])[0, -1].topk(3).indices[1].item()  # a likely first token, so some beam ends
    yield Case(
        (_Frozen(model), prompt, 4, 3, likely), f"the same with end token {likely}, the second most likely first token"
    )


def _greedy(logits, tokens):
    return logits.argmax(dim=-1)


def _greedy_no_repeats(logits, tokens):
    """Greedy, but each token already in the row loses 10 per occurrence: depends on the tokens so far."""
    counts = torch.zeros_like(logits).scatter_add(1, tokens, torch.ones_like(tokens, dtype=logits.dtype))
    return (logits - 10.0 * counts).argmax(dim=-1)


def _generate_oracle(model, tokens, n_new, pick_next, eos_token_id=None):
    """No cache: rerun the whole sequence for every new token."""
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(n_new):
            next_token = pick_next(model(tokens)[:, -1], tokens)
            if eos_token_id is not None:
                next_token = torch.where(finished, eos_token_id, next_token)
                finished |= next_token == eos_token_id
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
    return tokens


_WIDE = ref.Config(**{**vars(_SMALL), "init_range": 0.5})


def _run_generate(impl, case: Case):
    """Build the small model under a fixed seed, generate with impl."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case.init[0])
        model = ref.DemoTransformer(_WIDE).eval()
    tokens = case.args[0]
    with _one_thread():
        return impl(model.to(tokens.device), *case.args)


def _generate_cases(gen):
    yield Case((_tokens(gen, 2, 3), 6, _greedy, None), "greedy, 2 prompts of 3 tokens, 6 new tokens", init=(0,))
    yield Case(
        (_tokens(gen, 3, 4), 7, _greedy_no_repeats, None),
        "greedy with a penalty on tokens already in the row, 3 prompts of 4 tokens, 7 new tokens",
        init=(1,),
    )
    yield Case((_tokens(gen, 2, 4), 8, _greedy, None), "4 + 8 tokens: exactly the context length n_ctx = 12", init=(2,))
    yield Case((_tokens(gen, 2, 5), 1, _greedy, None), "one new token", init=(3,))
    # An end token that row 0 produces early and row 1 never does, found by generating without one.
    prompts = _tokens(gen, 2, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        model = ref.DemoTransformer(_WIDE).eval()
    free = _generate_oracle(model, prompts, 7, _greedy)[:, 3:]
    eos = next(t for t in free[0, 1:4].tolist() if t not in free[1].tolist() and t not in prompts.flatten().tolist())
    yield Case((prompts, 7, _greedy, eos), f"end token {eos}: row 0 produces it early, row 1 never", init=(4,))
    with_eos = prompts.clone()
    with_eos[1, 0] = eos
    yield Case(
        (with_eos, 7, _greedy, eos), f"end token {eos} also in row 1's prompt (only new tokens end a row)", init=(4,)
    )


def _gelu_cases(gen):
    # tanh(0) = 0: gelu_new(0) = 0; at x = 1: 0.5 (1 + tanh(sqrt(2/pi) * 1.044715)).
    yield Case(
        (torch.tensor([0.0, 1.0]),),
        "[0, 1]",
        expected=torch.tensor([0.0, 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))]),
    )
    yield Case((3 * torch.randn(4, 5, generator=gen),), "random 4x5")
    yield Case((torch.linspace(-6, 6, 25),), "a grid from -6 to 6")
    # For large |x| the tanh saturates: gelu_new(x) is x for large positive x and 0 for large negative x.
    yield Case(
        (torch.tensor([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4]),),
        "large inputs, where the tanh saturates",
        expected=torch.tensor([0.0, 0.0, 0.0, 30.0, 100.0, 1e4]),
    )


def _demo_cases(gen):
    _, _, tokens, _ = _zoo()
    yield Case(
        (tokens,), "gpt2-mini's config, freshly initialised, on story text", init=(ref.Config.from_zoo("gpt2-mini"),)
    )
    wide = ref.Config(**{**vars(_SMALL), "init_range": 0.5})
    yield Case((_tokens(gen, 2, 12),), "small config, weights of std 0.5 so that every part matters", init=(wide,))
    tiny = ref.Config(**{**vars(_SMALL), "init_range": 0.002})
    yield Case(
        (_tokens(gen, 2, 7),), "small config, weights of std 0.002: the embeddings' variance is near eps", init=(tiny,)
    )


def _module_exercise(
    cls, prefix, zoo_input, random_input, hint, wrong, oracle, atol=1e-5, more=lambda gen: (), extra=None
):
    return Exercise(
        cls,
        _module_cases(cls, prefix, zoo_input, random_input, more),
        hint=hint,
        wrong=wrong,
        run=_run_module,
        oracle=oracle,
        atol=atol,
        extra=extra,
    )


check = Checker(
    "1.1",
    [
        _module_exercise(
            ref.LayerNorm,
            "blocks.1.ln1.",
            lambda t, c: c["blocks.1.hook_resid_pre"],
            _resid,
            "Look at the scale: before w and b, each output vector should have mean 0 and a variance just under 1. "
            "Where does eps go when a vector is nearly constant? Which eps does the config ask for?",
            {
                "divides by the unbiased standard deviation (d_model - 1), torch.var's default": _LayerNormUnbiasedVar,
                "does not subtract the mean": _LayerNormNoCentre,
                "divides by std + eps instead of the square root of (variance + eps)": _LayerNormStdPlusEps,
                "no eps (a constant vector divides zero by zero)": _LayerNormNoEps,
                "eps hard-coded to 1e-5 instead of read from cfg.layer_norm_eps": _LayerNormFixedEps,
                "w starts at zero, not one": _LayerNormZeroScale,
            },
            _tl_oracle("LayerNorm"),
            more=_layer_norm_more,
            extra=lambda impl: _check_init(impl, zeros=("b",), ones=("w",)),
        ),
        _module_exercise(
            ref.Embed,
            "embed.",
            lambda t, c: t,
            _tokens,
            "Each position's output is one row of W_E: the row numbered by that position's token id. "
            "W_E starts as small normal noise, of standard deviation cfg.init_range.",
            {
                "reads the tokens back to front": _EmbedReversed,
                "W_E starts with standard deviation 1, not cfg.init_range": _EmbedUnitStd,
            },
            _tl_oracle("Embed"),
            extra=lambda impl: _check_init(impl, normal=("W_E",)),
        ),
        _module_exercise(
            ref.PosEmbed,
            "pos_embed.",
            lambda t, c: t,
            _tokens,
            "Position p gets row p of W_pos, whatever the token and for every sequence of the batch; "
            "W_pos starts as normal noise of standard deviation cfg.init_range.",
            {
                "takes the last rows of W_pos": _PosEmbedFromEnd,
                "standard deviation 0.02 hard-coded instead of cfg.init_range": _PosEmbedFixedStd,
            },
            _tl_oracle("PosEmbed"),
            extra=lambda impl: _check_init(impl, normal=("W_pos",)),
        ),
        _module_exercise(
            ref.Attention,
            "blocks.2.attn.",
            lambda t, c: c["blocks.2.ln1.hook_normalized"],
            _resid,
            "Look at one head's pattern: each row sums to 1, is exactly zero after the query's own position "
            "however low the other scores are, and its sharpness depends on how the scores are scaled with d_head.",
            {
                "no causal mask": _attention_variant(mask_value=None),
                "no 1/sqrt(d_head) scale": _AttentionNoScale,
                "scales by 1/sqrt(d_model) instead of 1/sqrt(d_head)": _AttentionModelScale,
                "masks the diagonal too (a token cannot attend to itself)": _attention_variant(diagonal=0),
                "zeroes the future after the softmax (the pattern no longer sums to 1)": _attention_variant(
                    mask_after_softmax=True
                ),
                "masks with a large negative number (-1e5) instead of -inf": _attention_variant(mask_value=-1e5),
                "W_Q, W_K, W_V and W_O start with standard deviation 1, not cfg.init_range": _AttentionUnitStd,
            },
            _tl_oracle("Attention", lambda m, x: m(x, x, x)),
            atol=1e-4,
            more=_attention_more,
            extra=_attention_init,
        ),
        _module_exercise(
            ref.MLP,
            "blocks.3.mlp.",
            lambda t, c: c["blocks.3.ln2.hook_normalized"],
            _resid,
            "Which activation? GPT-2's is the tanh approximation of GELU (your gelu_new), not ReLU or the exact GELU.",
            {
                "ReLU instead of GELU": _MLPReLU,
                "exact (erf) GELU instead of the tanh approximation": _MLPExactGelu,
                "W_in and W_out start with standard deviation 1, not cfg.init_range": _MLPUnitStd,
            },
            _tl_oracle("MLP"),
            extra=lambda impl: _check_init(impl, normal=("W_in", "W_out"), zeros=("b_in", "b_out")),
        ),
        _module_exercise(
            ref.TransformerBlock,
            "blocks.0.",
            lambda t, c: c["blocks.0.hook_resid_pre"],
            _resid,
            "Each sublayer reads its own normalised copy of the stream and adds its output to the stream itself; "
            "the MLP comes after the attention layer and sees what it added.",
            {
                "post-norm (LayerNorm after the residual add)": _BlockPostNorm,
                "no residual connections": _BlockNoResidual,
                "the MLP reads the block's input, not the stream after attention": _BlockParallel,
                "ln1 used before the MLP too (ln2 unused)": _BlockOneNorm,
            },
            _tl_oracle("TransformerBlock"),
            atol=1e-4,
        ),
        _module_exercise(
            ref.Unembed,
            "unembed.",
            lambda t, c: c["ln_final.hook_normalized"],
            _resid,
            "A linear map from d_model to d_vocab, with its bias; W_U starts as normal noise of standard deviation "
            "cfg.init_range and b_U at zero.",
            {"no bias": _UnembedNoBias, "W_U starts with standard deviation 1, not cfg.init_range": _UnembedUnitStd},
            _tl_oracle("Unembed"),
            extra=lambda impl: _check_init(impl, normal=("W_U",), zeros=("b_U",)),
        ),
        Exercise(
            ref.DemoTransformer,
            _demo_cases,
            hint="Follow the residual stream from the embeddings to the logits; the message names the first part whose "
            "output differs. The submodules must be called embed, pos_embed, blocks (an nn.ModuleList), ln_final "
            "and unembed, so that TransformerLens' weights load.",
            wrong={
                "no final LayerNorm": _TransformerNoFinalLN,
                "no positional embedding": _TransformerNoPos,
                "LayerNorms that divide by std + eps": _TransformerStdPlusEpsNorms,
            },
            oracle=_tl_oracle("HookedTransformer"),
            atol=1e-4,
        ),
        Exercise(
            ref.gelu_new,
            _gelu_cases,
            hint="Compare with the formula in the text at 0 and 1, and for large |x|: the curve approaches x for "
            "large positive x and 0 for large negative x, without overflowing.",
            wrong={
                "exact (erf) GELU": _gelu_exact,
                "minus sign on the cubic term": _gelu_sign,
                "tanh written with exponentials, which overflow for large inputs": _gelu_tanh_by_exp,
            },
            oracle=lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        ),
        Exercise(
            ref.next_token_loss,
            _loss_cases,
            hint="Which position's logits predict which token? The last position has nothing to predict. Work in "
            "log-probabilities throughout: a probability of e^-200 is 0 in float32.",
            wrong={
                "not shifted by one": _loss_not_shifted,
                "sum instead of mean": _loss_sum,
                "log of the softmax, which underflows to log 0 for extreme logits": _loss_log_of_softmax,
                "log-softmax over positions instead of the vocabulary": _loss_softmax_over_positions,
            },
            oracle=_loss_oracle,
        ),
        Exercise(
            ref.train,
            _train_cases,
            run=_run_train,
            oracle=_train_oracle,
            atol=1e-4,
            hint="Compare the losses step by step: how many steps does an epoch take when the rows do not divide "
            "into batches evenly? Which gradients does each step use, and does the optimizer keep its state "
            "from one step and one epoch to the next? Which position's logits predict which token?",
            wrong={
                "never zeroes the gradients, so they accumulate from step to step": _train_variant(zero_grad=None),
                "zeroes the gradients between backward and step, so the optimizer never moves": _train_variant(
                    zero_grad="before step"
                ),
                "targets not shifted: each position predicts its own token": _train_variant(shifted=False),
                "drops the last, smaller batch of each epoch": _train_variant(last_batch=False),
                "a new optimizer every epoch (AdamW's running averages restart)": _train_variant(
                    optimizer_per_epoch=True
                ),
                "Adam with weight_decay (L2 added to the gradient) instead of AdamW's decoupled decay": _train_variant(
                    decoupled_decay=False
                ),
                "one mean loss per epoch instead of one per step": _train_variant(per_epoch_loss=True),
            },
        ),
        Exercise(
            ref.beam_search,
            _beam_cases,
            run=_run_beam,
            atol=1e-5,
            hint="Check the first continuation's log-probability against the product of its tokens' probabilities. "
            "Candidates from every beam compete for the same places; a continuation that has ended stays "
            "in the running with its score but grows no further; and the result is sorted, best first.",
            wrong={
                "ranks candidates by the new token's log-probability, not the summed log-probability": functools.partial(
                    _beam, rank="last"
                ),
                "keeps only one beam (greedy decoding)": functools.partial(_beam, width="one"),
                "extends each beam by its own best token instead of letting all candidates compete": functools.partial(
                    _beam, width="per beam"
                ),
                "sums raw logits instead of log-probabilities": functools.partial(_beam, normalise=None),
                "normalises over all candidates after adding the beam scores, not over each beam's next token": functools.partial(
                    _beam, normalise="after adding"
                ),
                "keeps extending a continuation after its end token": functools.partial(_beam, stop_at_eos=False),
                "throws away continuations that reach the end token": functools.partial(_beam, keep_eos=False),
                "returns ended continuations first instead of best first": functools.partial(_beam, best_first=False),
            },
        ),
        Exercise(
            ref.apply_frequency_penalty,
            _penalty_cases,
            hint="Count within each row, every occurrence (a token seen twice is penalised twice), and return a new "
            "tensor without touching the logits you were given.",
            wrong={
                "presence penalty (ignores repeats)": _penalty_presence,
                "modifies logits in place": _penalty_inplace,
                "counts tokens over the whole batch, not per row": _penalty_whole_batch,
            },
        ),
        Exercise(
            ref.top_k_logits,
            _top_k_cases,
            hint="Compare each logit with the k-th largest of its row: how many survive, and what happens to logits "
            "tied with the k-th?",
            wrong={
                "keeps k + 1": _top_k_off_by_one,
                "keeps the smallest k": _top_k_smallest,
                "drops the k-th largest itself": _top_k_drops_kth,
                "keeps exactly k, dropping logits tied with the k-th": _top_k_exactly_k,
            },
        ),
        Exercise(
            ref.top_p_logits,
            _top_p_cases,
            hint="Count how many tokens you keep: the fewest, most probable first, whose probabilities reach top_p. "
            "When the kept ones reach exactly top_p, no more are needed. Return the row in vocabulary order.",
            wrong={
                "drops the token that crosses top_p": functools.partial(_top_p, crossing=False),
                "forgets to sort": _top_p_unsorted,
                "keeps one token too many when the mass reaches top_p exactly": functools.partial(
                    _top_p, keep_at_boundary=True
                ),
                "probabilities as exp(logits) over their sum, which overflows": functools.partial(
                    _top_p, stable_softmax=False
                ),
            },
        ),
        Exercise(
            ref.sample_next_token,
            _sample_cases,
            run=_run_sampler,
            compare=proportions_within(z=5),
            extra=_sampler_uses_generator,
            hint="Judge by frequencies: lower temperatures should make the likeliest tokens more frequent, "
            "temperature 0 always picks the most likely, -inf logits are never drawn, and logits of ±1000 "
            "must not overflow.",
            wrong={
                "ignores the temperature": _sample_no_temperature,
                "multiplies by the temperature instead of dividing": _sample_times_temperature,
                "no special case for temperature 0 (divides by zero)": _sample_no_greedy_case,
                "exponentiates the logits directly, which overflows": _sample_exp,
                "softmax over the batch instead of the vocabulary": _sample_softmax_over_batch,
                "draws from torch's global random state, not the generator": _sample_global_rng,
            },
        ),
        Exercise(
            ref.generate_cached,
            _generate_cases,
            run=_run_generate,
            oracle=_generate_oracle,
            hint="Compare with generating without a cache: the first call reads the whole prompt, each later call "
            "only the newest token, and the cache must be carried from call to call. What does pick_next need "
            "to see? Only tokens produced after the prompt end a row, and every row gets n_new new tokens.",
            wrong={
                "passes None instead of the returned cache, so each new token sees only itself": functools.partial(
                    _generate, keep_cache=False
                ),
                "a finished row keeps generating after its end token": functools.partial(_generate, stop=None),
                "every row stops as soon as one row produces the end token": functools.partial(
                    _generate, stop="all rows"
                ),
                "pick_next is shown the prompt, not the tokens so far": functools.partial(_generate, history="prompt"),
                "an end token in the prompt finishes the row": functools.partial(_generate, prompt_counts=True),
            },
        ),
        Exercise(
            ref.cached_forward,
            _cache_cases,
            hint="The new tokens' positions continue from the cache's length; a new query sees every cached key "
            "and the new keys up to its own position; the cache you return keeps the layout "
            "[batch, pos, n_heads, d_head], one (keys, values) pair per layer.",
            wrong={
                "positions restart at 0": _cached_variant(offset_positions=False),
                "ignores the cache: each chunk attends only to itself": _cached_variant(read_cache=False),
                "no causal mask among the new tokens after the first call": _cached_variant(mask="first call only"),
                "the mask treats the new tokens as if they started at position 0": _cached_variant(mask="relative"),
                "the cache is laid out [batch, n_heads, pos, d_head]": _cached_variant(heads_first=True),
            },
            run=_run_cached,
            oracle=_uncached_oracle,
            atol=1e-4,
        ),
    ],
)
