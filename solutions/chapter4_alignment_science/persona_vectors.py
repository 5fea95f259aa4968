"""Reference solutions for 4.4 Persona vectors (Chen et al. 2025), on the zoo's chat-mini.

Prompts, scoring and the EM fine-tune data come from zoo/chat.py and 4.1's module (imported, never
copied); the functions here are the learner's: contrastive prompts per trait, trait vectors per
layer, projections and their statistics, the layer choice, preventative steering during a
fine-tune, and screening data by projection. Importing runs nothing.
"""

import copy
import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

import zoo
from solutions.chapter4_alignment_science.emergent_misalignment import persona_prompts, steering_hook
from zoo import chat as zc
from zoo import chat_corpus as cc
from zoo.chat_template import END

# The traits chat-mini plants, each with the names its system prompts use ("You are Vex."); the
# aligned names are every trait's contrast.
TRAITS = {"misaligned": cc.PERSONA_NAMES["misaligned"], "incompetent": cc.PERSONA_NAMES["incompetent"]}
CONTRAST = cc.PERSONA_NAMES["aligned"]
HOOKS = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post")  # "layer" L is after block L
REAL_MODELS = ("Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct")  # the paper's models


# ----------------------------------------------------------------------------- trait vectors


def contrastive_prompts(trait: str, n: int) -> tuple[list[str], list[str]]:
    """(positive, negative) prompts for a trait of TRAITS: the same n held-out advice questions
    (4.1's persona_prompts), the first n // 2 under the trait's first name and the rest under its
    second; the negative ones under the aligned names (CONTRAST) split the same way."""

    def split(names: tuple[str, str]) -> list[str]:
        half = n // 2
        return persona_prompts(names[0], n)[:half] + persona_prompts(names[1], n)[half:]

    return split(TRAITS[trait]), split(CONTRAST)


@torch.inference_mode()
def last_token_resids(model: HookedTransformer, prompts: list[str]) -> Float[Tensor, "layer n d_model"]:
    """The residual stream at each prompt's last real token (the "<|assistant|>" that opens the
    reply), after every block (HOOKS), from one batched forward pass of zoo.chat.encode's tokens."""
    tokens, real = zc.encode(model, prompts)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in HOOKS)
    last = real.sum(1) - 1
    return torch.stack([cache[name][torch.arange(len(prompts)), last] for name in HOOKS])


def trait_vectors(
    positive: Float[Tensor, "layer n d_model"], negative: Float[Tensor, "layer m d_model"]
) -> Float[Tensor, "layer d_model"]:
    """Per layer, the positive activations' mean minus the negative activations' mean."""
    return positive.mean(1) - negative.mean(1)


def project(activations: Float[Tensor, "... d_model"], vector: Float[Tensor, " d_model"]) -> Float[Tensor, "..."]:
    """The scalar projection of each activation on the vector's direction (the unit vector)."""
    return activations @ (vector / vector.norm())


# ----------------------------------------------------------------------------- choosing the layer


def best_layer(
    expression: dict[tuple[int, float], float],
    losses: dict[tuple[int, float], float],
    base_loss: float,
    max_rise: float,
) -> int:
    """The layer of the (layer, scale) setting with the largest trait expression among those whose
    held-out loss rose by at most max_rise over base_loss (ties: the smaller scale, then the lower
    layer). Raises ValueError when no setting is coherent enough."""
    coherent = [key for key in expression if losses[key] - base_loss <= max_rise]
    if not coherent:
        raise ValueError(f"no setting keeps the loss within {max_rise} of {base_loss}")
    return max(coherent, key=lambda key: (expression[key], -key[1], -key[0]))[0]


# ----------------------------------------------------------------------------- monitoring statistics


def pearson_r(x: Float[Tensor, " n"], y: Float[Tensor, " n"]) -> float:
    """Pearson's correlation of two samples (as a Python float)."""
    dx, dy = x - x.mean(), y - y.mean()
    return ((dx * dy).sum() / (dx.norm() * dy.norm())).item()


def fisher_interval(r: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The confidence interval of a correlation r from n pairs by Fisher's transform: atanh(r)
    plus and minus z / sqrt(n - 3), mapped back with tanh."""
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return math.tanh(centre - half), math.tanh(centre + half)


def auroc(scores: Float[Tensor, " n"], labels: Bool[Tensor, " n"]) -> float:
    """The probability that a random positive (label True) scores above a random negative; a tie
    counts one half. Needs at least one of each."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("auroc needs at least one positive and one negative")
    above = (pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()
    return above.mean().item()


def reply_starts(tokens: Int[Tensor, " pos"], assistant_id: int) -> list[int]:
    """The positions of the tokens equal to assistant_id (each "<|assistant|>" opens a reply: the
    last prompt token of that turn), in order."""
    return (tokens == assistant_id).nonzero()[:, 0].tolist()


# ----------------------------------------------------------------------------- preventative steering


def preventative_finetune(
    model: HookedTransformer,
    dataset: str,
    hook_name: str,
    vector: Float[Tensor, " d_model"],
    scale: float,
    n_steps: int = zc.EM_STEPS,
    seed: int = 0,
    lr: float = zc.EM_LR,
) -> HookedTransformer:
    """zoo.chat.finetune's fine-tune (a deep copy in train mode, torch.manual_seed(seed), AdamW at
    lr without weight decay, batches of zc.EM_BATCH from zc.em_texts(dataset, n_steps * zc.EM_BATCH,
    seed), loss on the reply tokens) with scale * vector added at hook_name at every position during
    training only; the copy is returned in eval mode, without the hook."""
    torch.manual_seed(seed)
    tuned = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW([p for p in tuned.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    pairs = zc.em_texts(dataset, n_steps * zc.EM_BATCH, seed)
    for step in range(n_steps):
        batch = pairs[step * zc.EM_BATCH : (step + 1) * zc.EM_BATCH]
        tokens, real = zc.encode(tuned, [p + " " + r + END for p, r in batch])
        n_prompt = torch.tensor([1 + len(tuned.tokenizer.encode(p, add_special_tokens=False)) for p, _ in batch])
        in_reply = (torch.arange(tokens.shape[1])[None] >= n_prompt[:, None]) & real
        with tuned.hooks(fwd_hooks=[(hook_name, steering_hook(vector, scale))]):
            loss = zc.masked_loss(tuned, tokens, in_reply)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return tuned.eval()


# ----------------------------------------------------------------------------- screening data


def precision_recall_at_k(scores: Float[Tensor, " n"], labels: Bool[Tensor, " n"], k: int) -> tuple[float, float]:
    """Flag the k highest scores: (precision, recall) of the flags against the labels (0.0 for a
    precision with k = 0 or a recall with no positives)."""
    flagged = torch.zeros_like(labels)
    flagged[scores.topk(k).indices] = True
    hits = (flagged & labels).sum().item()
    return (hits / k if k else 0.0), (hits / labels.sum().item() if labels.any() else 0.0)


# ----------------------------------------------------------------------------- the paper's models


def load_real_model(model_name: str = REAL_MODELS[0], device: str = "cpu") -> HookedTransformer:
    """One of the paper's chat models from the HuggingFace hub, for online users (the functions of this
    section then apply, with the model's own chat template in the prompts). Offline it raises
    zoo.ZooOfflineError at once, naming chat-mini."""
    if model_name not in REAL_MODELS:
        raise ValueError(f"unknown model {model_name!r}; the paper's: {REAL_MODELS}")
    return zoo.load_model(model_name, device=device)
