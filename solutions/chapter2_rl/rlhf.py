"""Reference solutions for 2.4 RLHF on a zoo language model (after Ziegler et al. 2019, *Fine-Tuning Language
Models from Human Preferences*; Ouyang et al. 2022, InstructGPT; Shao et al. 2024, DeepSeekMath's GRPO; Hu et al.
2021, LoRA).

The policy is the zoo's gpt2-mini with a value head read from its final (normalised) residual stream. A batch is
`tokens` [batch, seq]: `prompt_len` prompt tokens (BOS first) followed by the generated tokens, every prompt the
same length. Logits at position p predict token p + 1, so the generated tokens are scored by the logits at
positions prompt_len - 1 to seq - 2, and the value of the state before generated token t is the value head's
output at position prompt_len - 1 + t. Per-token quantities (log-probs, rewards, values, advantages) are
[batch, gen] over the generated tokens only.

The hyperparameters of the notebook's runs (and of `benchmarks/rlhf.py`, which trains longer) are the
dataclasses at the top. Importing this module has no side effects.
"""

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import HookedTransformer


@dataclass
class RLHFConfig:
    """PPO on generated text with a per-token KL penalty to the reference model (Ziegler et al. 2019)."""

    steps: int = 12  # rollouts, each followed by `epochs` passes over it in minibatches
    batch_size: int = 64
    gen_len: int = 12  # generated tokens per prompt
    epochs: int = 2
    minibatches: int = 2
    lr: float = 5e-4  # the policy's weights
    head_lr: float = 3e-3  # the value head's (it starts from scratch)
    beta: float = 0.3  # the KL coefficient
    clip_coef: float = 0.2
    vf_coef: float = 0.1  # the value loss's weight (its gradients reach the shared trunk too)
    ent_coef: float = 0.0  # the entropy is logged, not rewarded
    gamma: float = 1.0
    lam: float = 0.95
    max_grad_norm: float = 1.0
    seed: int = 0


@dataclass
class GRPOConfig:
    """GRPO (Shao et al. 2024): a group of samples per prompt, group-relative advantages, no value head."""

    steps: int = 12
    n_prompts: int = 8
    group_size: int = 8
    gen_len: int = 12
    epochs: int = 2
    lr: float = 3e-3  # the LoRA adapters' (the base model is frozen)
    rank: int = 4
    alpha: float = 8.0
    beta: float = 0.05  # the KL coefficient (the k3 estimator, inside the loss)
    clip_coef: float = 0.2
    seed: int = 0


# ----------------------------------------------------------------------------- the policy and its samples


def get_logits_and_values(
    model: HookedTransformer, value_head: nn.Module, tokens: Int[Tensor, "batch seq"]
) -> tuple[Float[Tensor, "batch seq d_vocab"], Float[Tensor, "batch seq"]]:
    """One forward pass returning the model's logits and a value at every position: the value head applied
    to the final residual stream after the final LayerNorm (the hook `ln_final.hook_normalized`, which is what
    the unembedding reads), with its trailing dimension of 1 removed."""
    stored = {}

    def store(activation: Tensor, hook) -> None:
        stored["resid"] = activation

    logits = model.run_with_hooks(tokens, fwd_hooks=[("ln_final.hook_normalized", store)])
    return logits, value_head(stored["resid"]).squeeze(-1)


def generated_logprobs(
    logits: Float[Tensor, "batch seq d_vocab"], tokens: Int[Tensor, "batch seq"], prompt_len: int
) -> Float[Tensor, "batch gen"]:
    """The log-probability of each generated token (positions prompt_len onwards of tokens) under the
    distribution the logits give for it (the logits one position earlier)."""
    logprobs = logits[:, prompt_len - 1 : -1].log_softmax(-1)
    return logprobs.gather(-1, tokens[:, prompt_len:, None]).squeeze(-1)


# ----------------------------------------------------------------------------- rewards


def count_reward(tokens: Int[Tensor, "batch seq"], token_id: int, prompt_len: int) -> Float[Tensor, " batch"]:
    """How many of each sequence's generated tokens (positions prompt_len onwards) are token_id, as floats."""
    return (tokens[:, prompt_len:] == token_id).float().sum(-1)


def normalize_rewards(rewards: Float[Tensor, " batch"], eps: float = 1e-5) -> Float[Tensor, " batch"]:
    """Rewards shifted to mean 0 and scaled by their standard deviation over the batch (torch's default,
    unbiased std) plus eps, so a batch of equal rewards becomes all zeros."""
    return (rewards - rewards.mean()) / (rewards.std() + eps)


def probe_reward(
    model: HookedTransformer,
    direction: Float[Tensor, " d_model"],
    bias: float,
    tokens: Int[Tensor, "batch seq"],
    prompt_len: int,
) -> Float[Tensor, " batch"]:
    """A reward model made of a linear probe: the mean of the final normalised residual stream
    (`ln_final.hook_normalized`) over the generated positions (prompt_len onwards), dotted with direction,
    plus bias, through a sigmoid (the probe's probability that the text has the property)."""
    _, cache = model.run_with_cache(tokens, names_filter="ln_final.hook_normalized")
    pooled = cache["ln_final.hook_normalized"][:, prompt_len:].mean(1)
    return torch.sigmoid(pooled @ direction + bias)


# ----------------------------------------------------------------------------- KL penalty, advantages, PPO


def token_level_rewards(
    scores: Float[Tensor, " batch"],
    logprobs: Float[Tensor, "batch gen"],
    ref_logprobs: Float[Tensor, "batch gen"],
    beta: float,
) -> Float[Tensor, "batch gen"]:
    """The reward of each generated token: minus beta times the per-token KL estimate
    log pi(token) - log pi_ref(token), with the sequence's score added at its last token only."""
    rewards = -beta * (logprobs - ref_logprobs)
    rewards[:, -1] += scores
    return rewards


def compute_advantages(
    values: Float[Tensor, "batch gen"], rewards: Float[Tensor, "batch gen"], gamma: float, lam: float
) -> Float[Tensor, "batch gen"]:
    """Generalised advantage estimates (Schulman et al. 2016) for each generated token: with
    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, where the value after
    the last token is 0 (the episode ends there)."""
    gen = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(gen)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages


def ppo_clipped_loss(
    logprobs: Float[Tensor, "batch gen"],
    old_logprobs: Float[Tensor, "batch gen"],
    advantages: Float[Tensor, "batch gen"],
    clip_coef: float,
) -> Float[Tensor, ""]:
    """PPO's clipped surrogate loss (to minimise): minus the mean over every generated token of
    min(ratio * A, clip(ratio, 1 - clip_coef, 1 + clip_coef) * A), where ratio = pi / pi_old."""
    ratio = (logprobs - old_logprobs).exp()
    clipped = ratio.clamp(1 - clip_coef, 1 + clip_coef)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean()


def value_loss(values: Float[Tensor, "batch gen"], returns: Float[Tensor, "batch gen"]) -> Float[Tensor, ""]:
    """Half the mean squared error between the value head's predictions and the returns."""
    return 0.5 * (values - returns).pow(2).mean()


def entropy_bonus(logits: Float[Tensor, "batch seq d_vocab"], prompt_len: int) -> Float[Tensor, ""]:
    """The mean entropy (in nats) of the next-token distributions that chose the generated tokens (the
    logits at positions prompt_len - 1 to seq - 2)."""
    logprobs = logits[:, prompt_len - 1 : -1].log_softmax(-1)
    return -(logprobs.exp() * logprobs).sum(-1).mean()


# ----------------------------------------------------------------------------- LoRA and GRPO


class LoRA(nn.Module):
    """A low-rank update for a weight matrix W [d_in, d_out] (used as a parametrisation: the model sees
    forward(W) in place of W). Parameters `A` [d_in, rank] (random normal, std 1 / sqrt(d_in)) and `B`
    [rank, d_out] (zeros, so the model is unchanged at initialisation); forward(W) = W + (alpha / rank) A B."""

    def __init__(self, d_in: int, d_out: int, rank: int, alpha: float):
        super().__init__()
        self.scale = alpha / rank
        self.A = nn.Parameter(torch.randn(d_in, rank) / d_in**0.5)
        self.B = nn.Parameter(torch.zeros(rank, d_out))

    def forward(self, W: Float[Tensor, "d_in d_out"]) -> Float[Tensor, "d_in d_out"]:
        """W plus the scaled low-rank update."""
        return W + self.scale * self.A @ self.B


def group_relative_advantages(
    rewards: Float[Tensor, "n_prompts group"], eps: float = 1e-5
) -> Float[Tensor, "n_prompts group"]:
    """GRPO's advantages: each reward minus the mean of its group (the samples of the same prompt, one row),
    divided by that group's standard deviation (torch's default, unbiased) plus eps. A group whose rewards are
    all equal gets advantages of 0."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True)
    return (rewards - mean) / (std + eps)


def grpo_loss(
    logprobs: Float[Tensor, "batch gen"],
    old_logprobs: Float[Tensor, "batch gen"],
    ref_logprobs: Float[Tensor, "batch gen"],
    advantages: Float[Tensor, " batch"],
    clip_coef: float,
    beta: float,
) -> Float[Tensor, ""]:
    """GRPO's loss (to minimise), the mean over every generated token of
    -min(ratio * A, clip(ratio, 1 - clip_coef, 1 + clip_coef) * A) + beta * KL_t, where ratio = pi / pi_old, A is
    the sequence's advantage for each of its tokens, and KL_t = exp(d) - d - 1 with d = log pi_ref - log pi
    (Schulman's k3 estimator: non-negative, and unbiased for KL(pi || pi_ref) under samples from pi)."""
    ratio = (logprobs - old_logprobs).exp()
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_coef, 1 + clip_coef) * adv)
    d = ref_logprobs - logprobs
    kl = d.exp() - d - 1
    return (-surrogate + beta * kl).mean()
