"""Reference solutions for 1.3.2 Function vectors and steering with nnsight.

nnsight traces of the zoo's gpt2-mini-truth through its Hugging Face export: reading and editing the residual
stream and the attention heads, task-encoding hidden states (Hendel et al. 2023), per-head causal indirect
effects and function vectors (Todd et al. 2023), and steering by activation addition (Turner et al. 2023).
Also the NDIF path (`remote=True`) for online users, which fails at once offline. Importing this module
has no side effects.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import einops
import torch
from jaxtyping import Float, Int
from nnsight import LanguageModel
from torch import Tensor

if TYPE_CHECKING:  # TransformerLens takes seconds to import, and only one exercise uses it
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

# ----------------------------------------------------------------------------- nnsight basics


def last_position_states(
    model: LanguageModel, prompts: list[str], layer: int
) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, "batch d_vocab"]]:
    """The residual stream after block `layer` and the next-token logits, at each prompt's last
    position, from one trace."""
    with model.trace(prompts):
        hidden = model.transformer.h[layer].output[:, -1].save()
        logits = model.lm_head.output[:, -1].save()
    return hidden, logits


def attention_patterns(model: LanguageModel, prompts: list[str], layer: int) -> Float[Tensor, "batch head query key"]:
    """Attention probabilities of every head of block `layer`, computed from the queries and keys that
    its c_attn writes. The prompts have equal token lengths, so there is no padding to mask."""
    with model.trace(prompts):
        qkv = model.transformer.h[layer].attn.c_attn.output.save()
    q, k, _ = qkv.split(model.config.n_embd, dim=-1)
    q, k = (einops.rearrange(x, "b pos (head d_head) -> b head pos d_head", head=model.config.n_head) for x in (q, k))
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


# ----------------------------------------------------------------------------- task-encoding hidden states


def task_hidden_state(model: LanguageModel, prompts: list[str], layer: int) -> Float[Tensor, " d_model"]:
    """The residual stream after block `layer` at the last position, averaged over the prompts."""
    with model.trace(prompts):
        hidden = model.transformer.h[layer].output[:, -1].mean(0).save()
    return hidden


def patched_logits(
    model: LanguageModel, prompts: list[str], hidden: Float[Tensor, " d_model"], layer: int
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits when the residual stream after block `layer` at the last position is replaced
    by `hidden`."""
    with model.trace(prompts):
        model.transformer.h[layer].output[:, -1] = hidden
        logits = model.lm_head.output[:, -1].save()
    return logits


def logits_with_added_vector(
    model: LanguageModel,
    prompts: list[str],
    vector: Float[Tensor, " d_model"],
    layer: int,
    position: int | None = -1,
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits when `vector` is added to the residual stream after block `layer`, at one
    position (by default the last) or, with position=None, at every position."""
    with model.trace(prompts):
        hidden = model.transformer.h[layer].output
        if position is None:
            hidden[:] += vector
        else:
            hidden[:, position] += vector
        logits = model.lm_head.output[:, -1].save()
    return logits


def task_vector_in_one_trace(
    model: LanguageModel, few_shot_prompts: list[str], zero_shot_prompts: list[str], layer: int
) -> tuple[Float[Tensor, "n_few d_vocab"], Float[Tensor, "n_zero d_vocab"]]:
    """One trace, two invokes: the few-shot prompts' next-token logits, and the zero-shot prompts' with
    the task vector added after block `layer` at the last position. The task vector is the few-shot
    prompts' mean hidden state there minus the zero-shot prompts' own mean."""
    with model.trace() as tracer:
        # The invokes run as one batch, each resuming when the model reaches what it asked for: the
        # barrier makes the read of the few-shot mean happen before the write that uses it.
        barrier = tracer.barrier(2)
        with tracer.invoke(few_shot_prompts):
            few_shot_mean = model.transformer.h[layer].output[:, -1].mean(0)
            barrier()
            few_shot_logits = model.lm_head.output[:, -1].save()
        with tracer.invoke(zero_shot_prompts):
            barrier()
            hidden = model.transformer.h[layer].output
            hidden[:, -1] += few_shot_mean - hidden[:, -1].mean(0)
            zero_shot_logits = model.lm_head.output[:, -1].save()
    return few_shot_logits, zero_shot_logits


# ----------------------------------------------------------------------------- function vectors


def shuffled_label_prompts(prompts: list[str], seed: int = 0) -> list[str]:
    """The prompts with each one's example answers moved to other examples (a permutation that moves every
    answer: " hot: cold, big: small, fast:" -> " hot: small, big: cold, fast:"); the query is unchanged."""
    rng = random.Random(seed)
    corrupted = []
    for prompt in prompts:
        *examples, query = prompt.split(",")
        inputs, answers = zip(*(example.split(":") for example in examples))
        order = list(range(len(answers)))
        while len(order) > 1 and any(i == j for i, j in enumerate(order)):
            rng.shuffle(order)
        corrupted.append(",".join(f"{i}:{answers[j]}" for i, j in zip(inputs, order)) + "," + query)
    return corrupted


def mean_head_z(model: LanguageModel, prompts: list[str]) -> Float[Tensor, "layer head d_head"]:
    """Each head's z (its part of c_proj's input, before W_O) at the last position, averaged over the
    prompts."""
    with model.trace(prompts):
        z = torch.stack([block.attn.c_proj.input[:, -1].mean(0) for block in model.transformer.h]).save()
    return einops.rearrange(z, "layer (head d_head) -> layer head d_head", head=model.config.n_head)


def head_indirect_effects(
    model: LanguageModel,
    corrupted_prompts: list[str],
    answer_ids: Int[Tensor, " batch"],
    mean_z: Float[Tensor, "layer head d_head"],
) -> Float[Tensor, "layer head"]:
    """For every head, one at a time: the mean rise in the answer's probability when the head's z at
    the last position of the corrupted prompts is replaced by its clean mean (mean_z)."""
    n_layers, n_heads, d_head = mean_z.shape
    n = len(corrupted_prompts)
    # One batch: the corrupted prompts unpatched, then once more for every head, patched.
    batch = corrupted_prompts * (1 + n_layers * n_heads)
    with model.trace(batch):
        for layer, block in enumerate(model.transformer.h):
            z = block.attn.c_proj.input
            for head in range(n_heads):
                rows = slice((1 + layer * n_heads + head) * n, (2 + layer * n_heads + head) * n)
                z[rows, -1, head * d_head : (head + 1) * d_head] = mean_z[layer, head]
        probs = model.lm_head.output[:, -1].softmax(-1).save()
    answer_probs = probs[torch.arange(len(batch)), answer_ids.repeat(1 + n_layers * n_heads)]
    answer_probs = einops.rearrange(answer_probs, "(run prompt) -> run prompt", prompt=n).mean(-1)
    return einops.rearrange(answer_probs[1:] - answer_probs[0], "(layer head) -> layer head", head=n_heads)


def head_indirect_effects_tl(
    model: HookedTransformer,
    corrupted_prompts: list[str],
    answer_ids: Int[Tensor, " batch"],
    mean_z: Float[Tensor, "layer head d_head"],
) -> Float[Tensor, "layer head"]:
    """head_indirect_effects computed with TransformerLens hooks on hook_z instead of nnsight."""
    tokens = model.to_tokens(corrupted_prompts)
    rows = torch.arange(len(tokens))

    def mean_answer_prob(hooks: list) -> Tensor:
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, -1]
        return logits.softmax(-1)[rows, answer_ids].mean()

    def patch_head(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint, layer: int, head: int) -> Tensor:
        z[:, -1, head] = mean_z[layer, head]
        return z

    baseline = mean_answer_prob([])
    effects = torch.zeros(mean_z.shape[:2])
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = partial(patch_head, layer=layer, head=head)
            effects[layer, head] = mean_answer_prob([(f"blocks.{layer}.attn.hook_z", hook)]) - baseline
    return effects


def function_vector(
    model: LanguageModel, mean_z: Float[Tensor, "layer head d_head"], heads: list[str]
) -> Float[Tensor, " d_model"]:
    """The sum over `heads` (names "L{layer}H{head}") of each head's mean output in the residual
    stream: its mean z times its rows of c_proj's weight (c_proj's bias belongs to no head)."""
    d_head = mean_z.shape[-1]
    vector = torch.zeros(model.config.n_embd)
    for name in heads:
        layer, head = (int(part) for part in name.removeprefix("L").split("H"))
        W_O = model.transformer.h[layer].attn.c_proj.weight[head * d_head : (head + 1) * d_head]
        vector += mean_z[layer, head] @ W_O
    return vector


def generate_with_vector(
    model: LanguageModel, prompts: list[str], vector: Float[Tensor, " d_model"], layer: int, max_new_tokens: int
) -> Int[Tensor, "batch max_new_tokens"]:
    """Greedy continuations of the prompts, `max_new_tokens` long, with `vector` added to the residual
    stream after block `layer` at each prompt's last position only (the first step of generation)."""
    with model.generate(
        prompts, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False
    ) as tracer:
        for step in tracer.iter[:max_new_tokens]:
            if step == 0:  # the whole prompt; later steps see one new token each (the rest is cached)
                model.transformer.h[layer].output[:, -1] += vector
        tokens = tracer.result.save()
    return tokens[:, -max_new_tokens:]


# ----------------------------------------------------------------------------- steering


def contrast_vector(
    model: LanguageModel, positive_prompts: list[str], negative_prompts: list[str], layer: int
) -> Float[Tensor, " d_model"]:
    """The mean over contrast pairs (positive_prompts[i], negative_prompts[i]) of the difference of
    their residual streams after block `layer`, at the last position."""
    with model.trace() as tracer:
        with tracer.invoke(positive_prompts):
            positive = model.transformer.h[layer].output[:, -1].save()
        with tracer.invoke(negative_prompts):
            negative = model.transformer.h[layer].output[:, -1].save()
    return (positive - negative).mean(0)


def steered_loss(
    model: LanguageModel,
    tokens: Int[Tensor, "batch pos"],
    vector: Float[Tensor, " d_model"],
    layer: int,
    coefficient: float,
) -> float:
    """Mean next-token loss on `tokens` when coefficient * vector is added to the residual stream after
    block `layer` at every position."""
    with model.trace(tokens):
        model.transformer.h[layer].output[:] += coefficient * vector
        logits = model.lm_head.output.save()
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()


# ----------------------------------------------------------------------------- NDIF, for online users


class NDIFUnavailableError(ConnectionError):
    """A remote (NDIF) trace cannot run here: no network, no hub, or no NDIF API key."""


LOCAL_ALTERNATIVE = (
    "Offline, trace the zoo's model locally instead: "
    "model = LanguageModel(str(zoo.hf.export_hf('gpt2-mini-truth')), dispatch=True), then model.trace(prompts) "
    "without remote=True."
)


def ndif_reachable(timeout: float = 2.0) -> bool:
    """False when HF_HUB_OFFLINE is set (the model's config comes from the hub) or NDIF's API host does
    not answer within `timeout` seconds."""
    from nnsight import CONFIG

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(CONFIG.API.HOST)
    reachable = []

    def probe() -> None:
        try:
            socket.create_connection((host.hostname, host.port or 443), timeout=timeout).close()
            reachable.append(True)
        except OSError:
            pass

    # A thread bounds the DNS lookup too, which the socket timeout does not cover.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(reachable)


def remote_last_logits(model_id: str, prompts: list[str]) -> Float[Tensor, "batch d_vocab"]:
    """Next-token logits of a hub model run on NDIF's servers (`remote=True`; needs the network and an
    NDIF API key, set once with `nnsight.CONFIG.set_default_api_key`). Offline it fails at once with an
    NDIFUnavailableError that names the local alternative."""
    if not ndif_reachable():
        raise NDIFUnavailableError(f"NDIF cannot be reached, so {model_id} cannot run remotely. {LOCAL_ALTERNATIVE}")
    try:
        model = LanguageModel(model_id)  # weights stay on the meta device: only the config is downloaded
        with model.trace(prompts, remote=True):
            logits = model.lm_head.output[:, -1].save()
    except Exception as error:  # noqa: BLE001 - hub, network and authentication errors all end here
        raise NDIFUnavailableError(
            f"the NDIF request for {model_id} failed ({type(error).__name__}: {error}). {LOCAL_ALTERNATIVE}"
        ) from error
    return logits
