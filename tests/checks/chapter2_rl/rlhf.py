"""Checks for 2.4 RLHF on a zoo language model.

Everything here is deterministic on seeded inputs, never a learning curve: log-probs, rewards, the KL penalty,
GAE, the PPO and GRPO losses on random tensors and on cases worked by hand (in the comments); the value head
and the probe reward on an untrained two-layer model with the zoo tokenizer, against oracles that read the
activations another way (a cache instead of a hook, one sequence at a time); LoRA by loading chosen A and B
into the learner's module, plus its initialisation (B = 0, so the model starts unchanged; A not 0, or B never
gets a gradient).
"""

import functools
import math

import torch
from torch import nn

from solutions.chapter2_rl import rlhf as ref
from tests.harness import Case, Checker, Exercise, Mismatch

# ----------------------------------------------------------------------------- a small model


@functools.lru_cache(maxsize=1)
def _tiny_model():
    """An untrained two-layer model with the zoo tokenizer (d_model 16)."""
    from zoo import build_model
    from zoo.tokenizer import load_tokenizer

    config = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=32, d_vocab=len(load_tokenizer()),
                  act_fn="gelu", normalization_type="LN", seed=1)  # fmt: skip
    return build_model(config, device="cpu").eval()


def _tokens(gen, batch, seq):
    """Random token ids after a BOS (id 0)."""
    return torch.cat(
        [torch.zeros(batch, 1, dtype=torch.long), torch.randint(1, 600, (batch, seq - 1), generator=gen)], 1
    )


def _run_on_model(impl, case):
    """Cases name their model (deep copies of a model per case would be slow): look it up and call impl."""
    with torch.no_grad():
        return impl(_tiny_model(), *case.args[1:])


# ----------------------------------------------------------------------------- the value head


@functools.cache
def _value_head(name):
    """Value heads named in the cases (a module in a case's args would be deep-copied, and compare unequal)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(len(name))
        if name == "linear":
            return nn.Linear(16, 1)
        return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))


def _values_cases(gen):
    yield Case(("untrained", "mlp head", _tokens(gen, 1, 5)), "one sequence of 5 tokens, an MLP value head")
    yield Case(("untrained", "mlp head", _tokens(gen, 3, 9)), "3 sequences of 9 tokens")
    yield Case(("untrained", "linear", _tokens(gen, 2, 12)), "a linear value head, 2 sequences of 12")


def _run_values(impl, case):
    with torch.no_grad():
        return impl(_tiny_model(), _value_head(case.args[1]), case.args[2])


def _oracle_values(model, value_head, tokens):
    logits, cache = model.run_with_cache(tokens)
    return logits, value_head(cache["ln_final.hook_normalized"])[..., 0]


def _values_before_ln_final(model, value_head, tokens):
    logits, cache = model.run_with_cache(tokens)
    return logits, value_head(cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]).squeeze(-1)


def _values_trailing_dim(model, value_head, tokens):
    logits, cache = model.run_with_cache(tokens)
    return logits, value_head(cache["ln_final.hook_normalized"])


def _values_from_embeddings(model, value_head, tokens):
    logits, cache = model.run_with_cache(tokens)
    return logits, value_head(cache["blocks.0.hook_resid_pre"]).squeeze(-1)


# ----------------------------------------------------------------------------- log-probs


def _logprob_cases(gen):
    # Position 0 gives [0, 0], probabilities (1/2, 1/2): token 1 has log(1/2). Position 1 gives [log 3, 0],
    # probabilities (3/4, 1/4): token 0 has log(3/4). Position 2's logits score nothing (no token follows).
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [5.0, -5.0]]])
    yield Case((logits, torch.tensor([[0, 1, 0]]), 1), "1 sequence, vocab 2, prompt of 1 (worked by hand)",
               expected=torch.tensor([[math.log(0.5), math.log(0.75)]]))  # fmt: skip
    for batch, seq, vocab, prompt_len in [(2, 6, 5, 2), (4, 10, 30, 3), (3, 8, 11, 7)]:
        logits = torch.randn(batch, seq, vocab, generator=gen) * 2
        tokens = torch.randint(vocab, (batch, seq), generator=gen)
        yield Case((logits, tokens, prompt_len), f"{batch} sequences of {seq}, vocab {vocab}, prompt of {prompt_len}")


def _logprobs_unshifted(logits, tokens, prompt_len):
    return logits[:, prompt_len:].log_softmax(-1).gather(-1, tokens[:, prompt_len:, None])[..., 0]


def _logprobs_probabilities(logits, tokens, prompt_len):
    return logits[:, prompt_len - 1 : -1].softmax(-1).gather(-1, tokens[:, prompt_len:, None])[..., 0]


def _logprobs_raw_logits(logits, tokens, prompt_len):
    return logits[:, prompt_len - 1 : -1].gather(-1, tokens[:, prompt_len:, None])[..., 0]


def _logprobs_whole_sequence(logits, tokens, prompt_len):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


# ----------------------------------------------------------------------------- rewards


def _count_cases(gen):
    tokens = torch.tensor([[0, 3, 3, 5, 3], [0, 5, 5, 5, 5], [0, 3, 7, 3, 3]])
    # Generated part (prompt of 2): [3, 5, 3] -> 2, [5, 5, 5] -> 0, [7, 3, 3] -> 2; the prompt's 3s don't count.
    yield Case((tokens, 3, 2), "3 sequences, prompt of 2 (worked by hand)", expected=torch.tensor([2.0, 0.0, 2.0]))
    tokens = torch.randint(6, (8, 20), generator=gen)
    yield Case((tokens, 4, 3), "8 random sequences of 20 tokens from a vocab of 6")
    yield Case((torch.full((2, 9), 4), 4, 5), "every token is the one counted")


def _count_with_prompt(tokens, token_id, prompt_len):
    return (tokens == token_id).float().sum(-1)


def _count_integers(tokens, token_id, prompt_len):
    return (tokens[:, prompt_len:] == token_id).sum(-1)


def _count_share(tokens, token_id, prompt_len):
    return (tokens[:, prompt_len:] == token_id).float().mean(-1)


def _normalize_cases(gen):
    # Mean 2, unbiased std 1: (-1, 0, 1) / (1 + 1e-5).
    yield Case((torch.tensor([1.0, 2.0, 3.0]), 1e-5), "rewards 1, 2, 3 (worked by hand)",
               expected=torch.tensor([-1.0, 0.0, 1.0]) / (1 + 1e-5))  # fmt: skip
    yield Case((torch.full((5,), 2.5), 1e-5), "every reward equal: all zeros", expected=torch.zeros(5))
    yield Case((torch.randn(16, generator=gen) * 3 + 7, 1e-5), "16 random rewards, mean 7, std 3")
    yield Case((torch.tensor([0.0, 0.0, 0.0, 4.0]), 1e-3), "one reward apart, eps 1e-3")


def _normalize_population_std(rewards, eps=1e-5):
    return (rewards - rewards.mean()) / (rewards.std(unbiased=False) + eps)


def _normalize_no_eps(rewards, eps=1e-5):
    return (rewards - rewards.mean()) / rewards.std()


def _normalize_variance(rewards, eps=1e-5):
    return (rewards - rewards.mean()) / (rewards.var() + eps)


def _normalize_not_centred(rewards, eps=1e-5):
    return rewards / (rewards.std() + eps)


def _probe_cases(gen):
    direction = torch.randn(16, generator=gen)
    yield Case(("untrained", direction, 0.3, _tokens(gen, 1, 6), 2), "1 sequence of 6 tokens, prompt of 2")
    yield Case(("untrained", direction, -1.0, _tokens(gen, 4, 10), 3), "4 sequences of 10 tokens, prompt of 3")
    yield Case(
        ("untrained", torch.randn(16, generator=gen), 0.0, _tokens(gen, 2, 8), 7), "only the last token generated"
    )


def _oracle_probe(model, direction, bias, tokens, prompt_len):
    scores = []
    for row in tokens:
        _, cache = model.run_with_cache(row[None])
        pooled = sum(cache["ln_final.hook_normalized"][0, p] for p in range(prompt_len, len(row))) / (
            len(row) - prompt_len
        )
        scores.append(1 / (1 + math.exp(-(pooled @ direction + bias).item())))
    return torch.tensor(scores)


def _probe_with(model, direction, bias, tokens, prompt_len, hook="ln_final.hook_normalized", start=None, squash=True):
    _, cache = model.run_with_cache(tokens)
    pooled = cache[hook][:, prompt_len if start is None else start :].mean(1)
    score = pooled @ direction + bias
    return torch.sigmoid(score) if squash else score


def _probe_with_prompt(model, direction, bias, tokens, prompt_len):
    return _probe_with(model, direction, bias, tokens, prompt_len, start=0)


def _probe_last_token(model, direction, bias, tokens, prompt_len):
    return _probe_with(model, direction, bias, tokens, prompt_len, start=-1)


def _probe_logit(model, direction, bias, tokens, prompt_len):
    return _probe_with(model, direction, bias, tokens, prompt_len, squash=False)


def _probe_before_ln_final(model, direction, bias, tokens, prompt_len):
    return _probe_with(
        model, direction, bias, tokens, prompt_len, hook=f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    )


# ----------------------------------------------------------------------------- KL penalty and advantages


def _token_reward_cases(gen):
    # Token KL estimates: -1 - (-2) = 1 and -3 - (-1) = -2; times -0.5 gives -0.5 and 1; the score 4 goes on
    # the last token: [-0.5, 5].
    yield Case((torch.tensor([4.0]), torch.tensor([[-1.0, -3.0]]), torch.tensor([[-2.0, -1.0]]), 0.5),
               "1 sequence of 2 tokens (worked by hand)", expected=torch.tensor([[-0.5, 5.0]]))  # fmt: skip
    for batch, length, beta in [(3, 5, 0.1), (6, 12, 0.02), (2, 1, 1.0)]:
        logprobs = -torch.rand(batch, length, generator=gen) * 4
        ref_logprobs = -torch.rand(batch, length, generator=gen) * 4
        yield Case((torch.randn(batch, generator=gen), logprobs, ref_logprobs, beta),
                   f"{batch} sequences of {length} tokens, beta {beta}")  # fmt: skip
    yield Case((torch.randn(2, generator=gen), torch.zeros(2, 4), torch.zeros(2, 4), 0.0), "beta 0: only the scores")


def _rewards_flipped_kl(scores, logprobs, ref_logprobs, beta):
    return ref.token_level_rewards(scores, ref_logprobs, logprobs, beta)


def _rewards_score_first(scores, logprobs, ref_logprobs, beta):
    rewards = -beta * (logprobs - ref_logprobs)
    rewards[:, 0] += scores
    return rewards


def _rewards_score_everywhere(scores, logprobs, ref_logprobs, beta):
    return -beta * (logprobs - ref_logprobs) + scores[:, None]


def _rewards_kl_sign(scores, logprobs, ref_logprobs, beta):
    return ref.token_level_rewards(scores, logprobs, ref_logprobs, -beta)


def _rewards_probability_ratio(scores, logprobs, ref_logprobs, beta):
    rewards = -beta * (logprobs - ref_logprobs).exp()
    rewards[:, -1] += scores
    return rewards


def _gae_cases(gen):
    # gamma = lam = 1: A_t is the rewards still to come minus V_t. V = (1, 2), r = (0, 3): A_1 = 3 - 2 = 1,
    # A_0 = (0 + 2 - 1) + 1 = 2.
    yield Case((torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 3.0]]), 1.0, 1.0),
               "2 tokens, gamma = lam = 1 (worked by hand)", expected=torch.tensor([[2.0, 1.0]]))  # fmt: skip
    # gamma 0.5, lam 0.5: delta_1 = 3 - 2 = 1, delta_0 = 0 + 0.5 * 2 - 1 = 0; A_1 = 1, A_0 = 0 + 0.25 * 1 = 0.25.
    yield Case((torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 3.0]]), 0.5, 0.5),
               "2 tokens, gamma = lam = 0.5 (worked by hand)", expected=torch.tensor([[0.25, 1.0]]))  # fmt: skip
    for batch, length, gamma, lam in [(3, 6, 1.0, 0.95), (5, 16, 0.99, 0.9), (2, 1, 0.9, 0.5), (4, 8, 1.0, 0.0)]:
        values = torch.randn(batch, length, generator=gen)
        rewards = torch.randn(batch, length, generator=gen)
        yield Case((values, rewards, gamma, lam), f"{batch} sequences of {length}, gamma {gamma}, lam {lam}")


def _gae_with(values, rewards, gamma, lam, last_value=None, decay=None, forwards=False):
    gen = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0]) if last_value is None else last_value(values)
    running = torch.zeros_like(rewards[:, 0])
    steps = range(gen) if forwards else reversed(range(gen))
    for t in steps:
        if forwards:
            next_value = values[:, t + 1] if t + 1 < gen else torch.zeros_like(rewards[:, 0])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + (gamma * lam if decay is None else decay) * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages


def _gae_bootstraps_last_value(values, rewards, gamma, lam):
    return _gae_with(values, rewards, gamma, lam, last_value=lambda v: v[:, -1])


def _gae_lam_only(values, rewards, gamma, lam):
    return _gae_with(values, rewards, gamma, lam, decay=lam)


def _gae_forwards(values, rewards, gamma, lam):
    return _gae_with(values, rewards, gamma, lam, forwards=True)


def _gae_td0(values, rewards, gamma, lam):
    return _gae_with(values, rewards, gamma, lam, decay=0.0)


def _gae_returns(values, rewards, gamma, lam):
    return ref.compute_advantages(values, rewards, gamma, lam) + values


# ----------------------------------------------------------------------------- losses


def _ppo_cases(gen):
    # Both tokens have ratio e^0.5 = 1.649. With A = 1 the clipped 1.2 is smaller; with A = -1, -1.649 is
    # smaller than -1.2. Loss = -(1.2 - 1.649) / 2 = 0.2244.
    lp, old = torch.tensor([[0.5, 0.5]]), torch.zeros(1, 2)
    yield Case((lp, old, torch.tensor([[1.0, -1.0]]), 0.2), "ratio e^0.5, A = +1 and -1 (worked by hand)",
               expected=torch.tensor(-(1.2 - math.exp(0.5)) / 2))  # fmt: skip
    # Ratio e^-0.5 = 0.607: with A = 1, 0.607 < 0.8; with A = -1, -0.8 < -0.607. Loss = -(0.607 - 0.8) / 2.
    yield Case((-lp, old, torch.tensor([[1.0, -1.0]]), 0.2), "ratio e^-0.5, A = +1 and -1 (worked by hand)",
               expected=torch.tensor(-(math.exp(-0.5) - 0.8) / 2))  # fmt: skip
    for batch, length, clip in [(4, 6, 0.2), (8, 16, 0.1), (3, 5, 0.3)]:
        old = -torch.rand(batch, length, generator=gen) * 3
        lp = old + torch.randn(batch, length, generator=gen) * 0.4
        yield Case((lp, old, torch.randn(batch, length, generator=gen), clip), f"{batch} x {length}, clip {clip}")


def _ppo_max(logprobs, old_logprobs, advantages, clip_coef):
    ratio = (logprobs - old_logprobs).exp()
    return -torch.maximum(ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages).mean()


def _ppo_clipped_only(logprobs, old_logprobs, advantages, clip_coef):
    return -((logprobs - old_logprobs).exp().clamp(1 - clip_coef, 1 + clip_coef) * advantages).mean()


def _ppo_ratio_flipped(logprobs, old_logprobs, advantages, clip_coef):
    return ref.ppo_clipped_loss(old_logprobs, logprobs, advantages, clip_coef)


def _ppo_objective(logprobs, old_logprobs, advantages, clip_coef):
    return -ref.ppo_clipped_loss(logprobs, old_logprobs, advantages, clip_coef)


def _ppo_log_ratio(logprobs, old_logprobs, advantages, clip_coef):
    ratio = logprobs - old_logprobs
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages).mean()


def _value_loss_cases(gen):
    # Errors 1 and -3: squares 1 and 9, mean 5, half 2.5.
    yield Case((torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])), "2 values (worked by hand)",
               expected=torch.tensor(2.5))  # fmt: skip
    yield Case((torch.randn(4, 7, generator=gen), torch.randn(4, 7, generator=gen)), "4 x 7 random")
    yield Case((torch.randn(2, 3, generator=gen) * 10, torch.randn(2, 3, generator=gen)), "large errors")


def _value_loss_no_half(values, returns):
    return (values - returns).pow(2).mean()


def _value_loss_summed(values, returns):
    return 0.5 * (values - returns).pow(2).sum()


def _value_loss_absolute(values, returns):
    return 0.5 * (values - returns).abs().mean()


def _entropy_cases(gen):
    # Every distribution uniform over 4 tokens: ln 4, wherever it is read.
    yield Case((torch.zeros(2, 5, 4), 2), "uniform logits over 4 tokens (worked by hand)",
               expected=torch.tensor(math.log(4)))  # fmt: skip
    # Position 0 uniform over 2 (ln 2); position 1 certain (0); position 2 (no token follows) ignored.
    logits = torch.tensor([[[0.0, 0.0], [50.0, -50.0], [0.0, 0.0]]])
    yield Case((logits, 1), "ln 2 then 0 (worked by hand)", expected=torch.tensor(math.log(2) / 2))
    for batch, seq, vocab, prompt_len in [(3, 8, 10, 2), (2, 12, 50, 5), (4, 6, 7, 1)]:
        logits = torch.randn(batch, seq, vocab, generator=gen) * torch.rand(batch, seq, 1, generator=gen) * 4
        yield Case((logits, prompt_len), f"{batch} sequences of {seq}, vocab {vocab}, prompt of {prompt_len}")


def _entropy_of(logits):
    logprobs = logits.log_softmax(-1)
    return -(logprobs.exp() * logprobs).sum(-1)


def _entropy_every_position(logits, prompt_len):
    return _entropy_of(logits).mean()


def _entropy_from_prompt_len(logits, prompt_len):
    return _entropy_of(logits[:, prompt_len:]).mean()


def _entropy_summed_over_positions(logits, prompt_len):
    return _entropy_of(logits[:, prompt_len - 1 : -1]).sum(-1).mean()


def _entropy_of_logits(logits, prompt_len):
    x = logits[:, prompt_len - 1 : -1]
    return -(x.softmax(-1) * x).sum(-1).mean()


# ----------------------------------------------------------------------------- LoRA


def _lora_cases(gen):
    # W = 0, A = [[1], [2]], B = [[3, 4, 5]], rank 1, alpha 2: 2 * A B = [[6, 8, 10], [12, 16, 20]].
    yield Case((torch.zeros(2, 3), torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0, 4.0, 5.0]])),
               "W = 0, rank 1, alpha 2 (worked by hand)", init=(2, 3, 1, 2.0),
               expected=torch.tensor([[6.0, 8.0, 10.0], [12.0, 16.0, 20.0]]))  # fmt: skip
    for d_in, d_out, rank, alpha in [(8, 5, 2, 4.0), (16, 64, 4, 8.0), (6, 6, 3, 1.0)]:
        W = torch.randn(d_in, d_out, generator=gen)
        A = torch.randn(d_in, rank, generator=gen)
        B = torch.randn(rank, d_out, generator=gen)
        yield Case((W, A, B), f"W {d_in} x {d_out}, rank {rank}, alpha {alpha}", init=(d_in, d_out, rank, alpha))


def _run_lora(impl, case):
    """Build the module, load the case's A and B into it, and apply it to W."""
    W, A, B = case.args
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = impl(*case.init)
    names = sorted(name for name, _ in module.named_parameters())
    if names != ["A", "B"]:
        raise Mismatch(f"expected exactly two parameters, A and B, got {names}")
    with torch.no_grad():
        module.A.copy_(A)
        module.B.copy_(B)
        return module(W)


def _lora_init(impl):
    """At initialisation the update is 0 (B = 0) but A is not, or no gradient ever reaches B."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = impl(32, 24, 4, 8.0)
        W = torch.randn(32, 24)
    with torch.no_grad():
        assert torch.equal(module(W), W), "at initialisation forward(W) must equal W exactly: start B at zero"
        assert module.A.abs().sum() > 0, (
            "A starts at zero too: then the gradient of B (which is A's transpose times the gradient of the "
            "update) is zero and the adapter never learns; start A random"
        )
        assert 0.5 / 32**0.5 < module.A.std() < 2 / 32**0.5, f"A's std is {module.A.std():.3f}, not 1 / sqrt(d_in)"


class _LoRAAlphaUnscaled(ref.LoRA):
    def forward(self, W):
        return W + self.scale * self.A.shape[1] * self.A @ self.B


class _LoRARankOverAlpha(ref.LoRA):
    def forward(self, W):
        return W + self.A @ self.B / self.scale


class _LoRAUpdateOnly(ref.LoRA):
    def forward(self, W):
        return self.scale * self.A @ self.B


class _LoRABothZero(ref.LoRA):
    def __init__(self, d_in, d_out, rank, alpha):
        super().__init__(d_in, d_out, rank, alpha)
        self.A = nn.Parameter(torch.zeros(d_in, rank))


class _LoRABRandom(ref.LoRA):
    def __init__(self, d_in, d_out, rank, alpha):
        super().__init__(d_in, d_out, rank, alpha)
        self.B = nn.Parameter(torch.randn(rank, d_out) / rank**0.5)


# ----------------------------------------------------------------------------- GRPO


def _group_cases(gen):
    # Row 1: mean 2, unbiased std 1. Row 2: all equal, so zeros (not 0 / 0).
    yield Case((torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]), 1e-5), "2 groups of 3 (worked by hand)",
               expected=torch.tensor([[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]) / (1 + 1e-5))  # fmt: skip
    yield Case((torch.randn(4, 8, generator=gen) + torch.arange(4.0)[:, None] * 5, 1e-5),
               "4 groups of 8 with different means")  # fmt: skip
    yield Case((torch.randn(3, 3, generator=gen) * torch.tensor([[0.1], [1.0], [10.0]]), 1e-5),
               "3 groups of 3 with different spreads")  # fmt: skip
    yield Case((torch.tensor([[0.0, 1.0], [1.0, 1.0]]), 1e-3), "groups of 2, one constant, eps 1e-3")


def _groups_over_prompts(rewards, eps=1e-5):
    return (rewards - rewards.mean(0, keepdim=True)) / (rewards.std(0, keepdim=True) + eps)


def _groups_whole_batch(rewards, eps=1e-5):
    return ref.normalize_rewards(rewards.flatten(), eps).view_as(rewards)


def _groups_no_eps(rewards, eps=1e-5):
    return (rewards - rewards.mean(-1, keepdim=True)) / rewards.std(-1, keepdim=True)


def _groups_population_std(rewards, eps=1e-5):
    return (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True, unbiased=False) + eps)


def _groups_mean_only(rewards, eps=1e-5):
    return rewards - rewards.mean(-1, keepdim=True)


def _grpo_cases(gen):
    # Ratio 1 and A = 1: the surrogate is 1. d = log 2: KL = 2 - log 2 - 1 = 0.3069, times beta 0.1.
    # Loss = -1 + 0.03069.
    yield Case((torch.zeros(1, 1), torch.zeros(1, 1), torch.full((1, 1), math.log(2)), torch.tensor([1.0]), 0.2, 0.1),
               "1 token, ratio 1, pi_ref = 2 pi (worked by hand)",
               expected=torch.tensor(-1 + 0.1 * (1 - math.log(2))))  # fmt: skip
    # Two sequences of one token each, ratio e^0.5 clipped to 1.2 for A = 2, unclipped for A = -1; no KL.
    lp = torch.full((2, 1), 0.5)
    yield Case((lp, torch.zeros(2, 1), lp.clone(), torch.tensor([2.0, -1.0]), 0.2, 0.3),
               "2 sequences, clipping with A = 2 and A = -1 (worked by hand)",
               expected=torch.tensor(-(2.4 - math.exp(0.5)) / 2))  # fmt: skip
    for batch, length, clip, beta in [(4, 6, 0.2, 0.05), (8, 5, 0.1, 0.5), (3, 10, 0.3, 0.0)]:
        old = -torch.rand(batch, length, generator=gen) * 3
        lp = old + torch.randn(batch, length, generator=gen) * 0.3
        ref_lp = old + torch.randn(batch, length, generator=gen) * 0.5
        yield Case((lp, old, ref_lp, torch.randn(batch, generator=gen), clip, beta),
                   f"{batch} sequences of {length}, clip {clip}, beta {beta}")  # fmt: skip


def _grpo_with(logprobs, old_logprobs, ref_logprobs, advantages, clip_coef, beta, kl=None, sign=1.0, clip=True):
    ratio = (logprobs - old_logprobs).exp()
    adv = advantages[:, None]
    clipped = ratio.clamp(1 - clip_coef, 1 + clip_coef) if clip else ratio
    surrogate = torch.minimum(ratio * adv, clipped * adv)
    d = ref_logprobs - logprobs
    penalty = d.exp() - d - 1 if kl is None else kl(logprobs, ref_logprobs)
    return (-surrogate + sign * beta * penalty).mean()


def _grpo_k3_flipped(*args):
    return _grpo_with(*args, kl=lambda lp, r: (lp - r).exp() - (lp - r) - 1)


def _grpo_log_ratio_kl(*args):
    return _grpo_with(*args, kl=lambda lp, r: lp - r)


def _grpo_kl_rewarded(*args):
    return _grpo_with(*args, sign=-1.0)


def _grpo_unclipped(*args):
    return _grpo_with(*args, clip=False)


# ----------------------------------------------------------------------------- the section's checks

check = Checker(
    "2.4",
    [
        Exercise(
            ref.get_logits_and_values, _values_cases, run=_run_values, oracle=_oracle_values,
            hint="Add a hook on `ln_final.hook_normalized` that stores its activation (and returns nothing); run "
                 "the model with it, then apply the value head and drop the last dimension of size 1.",
            wrong={"the value read before the final LayerNorm (the last block's hook_resid_post)": _values_before_ln_final,
                   "the trailing dimension of 1 kept": _values_trailing_dim,
                   "the value read from the embeddings": _values_from_embeddings},
        ),
        Exercise(
            ref.generated_logprobs, _logprob_cases,
            hint="Take the log-softmax over the vocabulary. The token at position p is predicted by the logits at "
                 "p - 1, so the generated tokens tokens[:, prompt_len:] use logits[:, prompt_len - 1 : -1].",
            wrong={"logits not shifted: position p scores token p": _logprobs_unshifted,
                   "probabilities, not log-probabilities": _logprobs_probabilities,
                   "raw logits, not normalised with log-softmax": _logprobs_raw_logits,
                   "the prompt's tokens included": _logprobs_whole_sequence},
        ),
        Exercise(
            ref.count_reward, _count_cases,
            hint="Compare only the generated part, tokens[:, prompt_len:], with token_id; count per sequence "
                 "(over the last dimension) and return floats.",
            wrong={"the prompt's tokens counted too": _count_with_prompt, "integer counts, not floats": _count_integers,
                   "the share of tokens, not their count": _count_share},
        ),
        Exercise(
            ref.normalize_rewards, _normalize_cases,
            hint="Subtract the mean, divide by the std plus eps (eps outside the std keeps equal rewards at 0). "
                 "torch's .std() is the unbiased one, which is what is asked.",
            wrong={"the population std (unbiased=False)": _normalize_population_std,
                   "no eps: equal rewards give 0 / 0 = nan": _normalize_no_eps,
                   "divided by the variance, not the std": _normalize_variance,
                   "scaled but not centred": _normalize_not_centred},
        ),
        Exercise(
            ref.probe_reward, _probe_cases, run=_run_on_model, oracle=_oracle_probe,
            hint="Cache `ln_final.hook_normalized`, keep positions prompt_len onwards, average them over the "
                 "sequence dimension, then dot with direction, add bias and apply a sigmoid.",
            wrong={"the prompt's positions averaged in": _probe_with_prompt,
                   "the last position only": _probe_last_token,
                   "the probe's logit, with no sigmoid": _probe_logit,
                   "read before the final LayerNorm": _probe_before_ln_final},
        ),
        Exercise(
            ref.token_level_rewards, _token_reward_cases,
            hint="The KL estimate of a token is log pi - log pi_ref (policy first); each token's reward is minus "
                 "beta times it, and the score is added to the last token's reward only. Don't edit the inputs.",
            wrong={"KL estimate with the ratio flipped (log pi_ref - log pi)": _rewards_flipped_kl,
                   "the score added to the first token": _rewards_score_first,
                   "the score added to every token": _rewards_score_everywhere,
                   "the KL penalty added, not subtracted": _rewards_kl_sign,
                   "the probability ratio, not its log": _rewards_probability_ratio},
        ),
        Exercise(
            ref.compute_advantages, _gae_cases,
            hint="Loop backwards over the generated tokens. The value after the last token is 0; the running "
                 "advantage decays by gamma * lam at each step back.",
            wrong={"bootstraps from the last token's own value after the end": _gae_bootstraps_last_value,
                   "decays by lam, not gamma * lam": _gae_lam_only,
                   "accumulated forwards in time": _gae_forwards,
                   "one-step TD errors only (no accumulation)": _gae_td0,
                   "returns (advantages plus values), not advantages": _gae_returns},
        ),
        Exercise(
            ref.ppo_clipped_loss, _ppo_cases,
            hint="ratio = exp(logprobs - old_logprobs). Take the elementwise minimum of the unclipped and clipped "
                 "terms (the pessimistic one), average over every token, and negate (a loss to minimise).",
            wrong={"max instead of min": _ppo_max, "only the clipped term": _ppo_clipped_only,
                   "ratio flipped (pi_old / pi)": _ppo_ratio_flipped,
                   "the objective, not its negative": _ppo_objective,
                   "the log-ratio used as the ratio": _ppo_log_ratio},
        ),
        Exercise(
            ref.value_loss, _value_loss_cases,
            hint="0.5 times the mean (over every element) of the squared difference.",
            wrong={"no factor of 0.5": _value_loss_no_half, "summed, not averaged": _value_loss_summed,
                   "absolute errors": _value_loss_absolute},
        ),
        Exercise(
            ref.entropy_bonus, _entropy_cases,
            hint="Only the distributions that produced generated tokens count: positions prompt_len - 1 to -2. "
                 "Entropy is -sum p log p over the vocabulary; then average over batch and positions.",
            wrong={"every position, the prompt's included": _entropy_every_position,
                   "positions shifted by one (prompt_len onwards)": _entropy_from_prompt_len,
                   "summed over positions, not averaged": _entropy_summed_over_positions,
                   "p times the logits, not p times log p": _entropy_of_logits},
        ),
        Exercise(
            ref.LoRA, _lora_cases, run=_run_lora, extra=_lora_init,
            hint="Two parameters named A [d_in, rank] and B [rank, d_out]; forward returns W + (alpha / rank) A @ B. "
                 "B starts at zero (so nothing changes at first); A starts random with std 1 / sqrt(d_in).",
            wrong={"scaled by alpha, not alpha / rank": _LoRAAlphaUnscaled,
                   "scaled by rank / alpha": _LoRARankOverAlpha,
                   "returns the update without W": _LoRAUpdateOnly,
                   "A and B both start at zero (B never gets a gradient)": _LoRABothZero,
                   "B starts random (the model changes before training)": _LoRABRandom},
        ),
        Exercise(
            ref.group_relative_advantages, _group_cases,
            hint="Each row is a group: take the mean and std along the last dimension (keepdim, so they broadcast), "
                 "with eps added to the std so constant groups give 0.",
            wrong={"normalised over prompts (dim 0), not within each group": _groups_over_prompts,
                   "normalised over the whole batch": _groups_whole_batch,
                   "no eps: a constant group gives 0 / 0 = nan": _groups_no_eps,
                   "the population std (unbiased=False)": _groups_population_std,
                   "centred but not scaled": _groups_mean_only},
        ),
        Exercise(
            ref.grpo_loss, _grpo_cases,
            hint="Broadcast each sequence's advantage over its tokens (advantages[:, None]). With d = ref_logprobs "
                 "- logprobs, the k3 estimate is exp(d) - d - 1; add beta times it to the negated clipped "
                 "surrogate, then average over all tokens.",
            wrong={"k3 with the log-ratio flipped (d = log pi - log pi_ref)": _grpo_k3_flipped,
                   "the plain log-ratio as the KL estimate": _grpo_log_ratio_kl,
                   "the KL term subtracted, not added": _grpo_kl_rewarded,
                   "no clipping": _grpo_unclipped},
        ),
    ],
)  # fmt: skip
