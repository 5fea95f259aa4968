# %% [markdown]
# # 2.4 RLHF on a zoo language model
#
# Reinforcement learning from human feedback fine-tunes a language model with the policy-gradient machinery of
# 2.3: the **policy** is the model, an **action** is the next token, an **episode** is one generated
# continuation of a prompt, and the **reward** comes at the end from a reward model that stands in for human
# judgement. Ziegler et al. (2019, *Fine-Tuning Language Models from Human Preferences*) set out the recipe that
# InstructGPT (Ouyang et al. 2022) scaled up: PPO on generated text, with a penalty on the KL divergence from the
# original model, paid token by token, so that the policy cannot drift into text the original would never write.
# DeepSeekMath (Shao et al. 2024) dropped the value network with **GRPO**: sample a group of continuations of
# the same prompt and score each one against the others.
#
# Here the policy is the zoo's `gpt2-mini`, trained on the story world of `zoo/corpus.py`, so every property a
# reward asks for can be measured exactly on what the policy writes. You will
#
# 1. add a value head to the HookedTransformer and score generated tokens under the policy and a frozen copy,
#    the **reference model**;
# 2. reward a simple, measurable property (the number of periods: ARENA's first RLHF reward too), and normalise it;
# 3. write the per-token KL penalty, generalised advantage estimates, PPO's clipped loss, the value loss and the
#    entropy, and watch a short PPO run raise the reward with the KL to the reference held below a bound;
# 4. see **reward hacking**: with no KL penalty the policy finds that the period count is maximised by text that
#    is nothing but periods, and the KL coefficient decides whether it gets there;
# 5. train a **reward model** (a linear probe on the reference model's activations, trained on text whose label
#    the corpus knows) and fine-tune towards it with **GRPO**, through **LoRA** adapters you write by hand.
#
# **Where this differs from the papers.** Ziegler et al. tuned the 774M-parameter GPT-2 with reward models
# trained on thousands of human comparisons, on continuations of 24 tokens and more; InstructGPT's reward model
# had 6B parameters. `gpt2-mini` has under a million parameters and a word-level vocabulary of 626 tokens, our
# continuations are 12 tokens long, and our reward model is a logistic probe with 129 parameters, trained on
# labels the corpus generator knows rather than on human preferences. The runs are a few dozen PPO steps, which
# a CPU does in seconds. The algorithms are the papers' (the assertions below pin the sizes).
#
# **Prerequisites**: 2.3's PPO (the clipped objective, GAE) and 1.2's hooks in TransformerLens. Each exercise is
# a function whose body raises `NotImplementedError`; the check below it tests your version.

# %%
import copy

import torch
from jaxtyping import Float, Int
from plotly.subplots import make_subplots
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, TransformerLensKeyValueCache

from solutions.chapter2_rl.rlhf import GRPOConfig, RLHFConfig
from tests.checks.chapter2_rl.rlhf import check  # noqa: F401 (used by the check cells the build adds)
from zoo import corpus, load_model

# A 128-wide model runs fastest on one thread, and the machine is shared: with two threads beside other busy
# processes on 2 cores, this notebook ran several times slower (measured).
torch.set_num_threads(1)
ref_model = load_model("gpt2-mini", device="cpu")
ref_model.requires_grad_(False)  # the reference model is frozen: only copies of it train
n_params = sum(p.numel() for p in ref_model.parameters())
print(f"gpt2-mini: {n_params:,} parameters, vocabulary {ref_model.cfg.d_vocab}, context {ref_model.cfg.n_ctx}")
# Ziegler et al.'s policy was GPT-2 with 774M parameters; this one has under a million.
assert n_params < 1_000_000 and ref_model.cfg.d_vocab == 626 and ref_model.cfg.d_model == 128

# %% [markdown]
# ## Part 1: the policy and its samples
#
# The story world's documents start at the beginning of a sentence with no leading space ("Mary walked to the
# park."), and a quarter of the rows the model was trained on are random tokens after the BOS. So a prompt is the
# BOS and one word that opens a sentence in the corpus, and the model continues it as a story. Every prompt is
# two tokens long, which keeps the bookkeeping simple: in a batch of `tokens` [batch, seq], positions 0 and 1 are
# the prompt and positions 2 onwards were generated.
#
# The sampler below draws each token from the model's softmax with a seeded `torch.Generator`, so a run is
# reproducible, and keeps a key-value cache (1.1 built one), so that each step runs the model on the one new
# token instead of the whole prefix.

# %%
PROMPT_WORDS = ["Mary", "John", "When", "The", "After", "Tom", "Alice", "Yesterday"]
PROMPT_LEN = 2  # the BOS and one word
PERIOD = ref_model.to_single_token(".")


def prompt_batch(n: int, generator: torch.Generator) -> Int[Tensor, "n 2"]:
    """n prompts, each the BOS and a sentence-opening word, drawn with replacement."""
    words = [PROMPT_WORDS[i] for i in torch.randint(len(PROMPT_WORDS), (n,), generator=generator)]
    tokens = ref_model.to_tokens(words)
    assert tokens.shape == (n, PROMPT_LEN)
    return tokens


@torch.no_grad()
def sample(
    model: HookedTransformer, prompts: Int[Tensor, "batch prompt"], gen_len: int, generator: torch.Generator
) -> Int[Tensor, "batch seq"]:
    """Continue each prompt by gen_len tokens, each drawn from the model's next-token distribution. The key-value
    cache keeps each layer's keys and values, so each step runs the model on the one new token only."""
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, prompts.shape[0])
    tokens, logits = prompts, model(prompts, past_kv_cache=cache)
    for i in range(gen_len):
        new = torch.multinomial(logits[:, -1].softmax(-1), 1, generator=generator)
        tokens = torch.cat([tokens, new], dim=1)
        if i < gen_len - 1:
            logits = model(new, past_kv_cache=cache)
    return tokens


generator = torch.Generator().manual_seed(0)
ref_samples = sample(ref_model, prompt_batch(64, generator), 12, generator)
# The cache changes nothing but speed: rerunning the whole sequence at each step draws the same tokens.
generator = torch.Generator().manual_seed(0)
tokens = prompt_batch(64, generator)
with torch.no_grad():
    for _ in range(12):
        probs = ref_model(tokens)[:, -1].softmax(-1)
        tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], dim=1)
assert torch.equal(tokens, ref_samples)
for text in ref_model.to_string(ref_samples[:4]):
    print(repr(text))

# %% [markdown]
# ### A value head
#
# PPO needs a critic: an estimate $V(s)$ of the reward still to come from each state, here each prefix of the
# text. Here, as in TRL's `AutoModelForCausalLMWithValueHead`, it is a small head on the policy's own final
# residual stream, so the critic shares the policy's features (and its gradients flow into the shared trunk). TransformerLens exposes the
# stream after the final LayerNorm as the hook `ln_final.hook_normalized`: the unembedding reads exactly that.
# Store it with a hook during the forward pass, then apply the head.


# %% [exercise] get_logits_and_values difficulty=2 importance=4 minutes=15
def get_logits_and_values(
    model: HookedTransformer, value_head: nn.Module, tokens: Int[Tensor, "batch seq"]
) -> tuple[Float[Tensor, "batch seq d_vocab"], Float[Tensor, "batch seq"]]:
    """One forward pass returning the model's logits and a value at every position: the value head applied
    to the final residual stream after the final LayerNorm (the hook `ln_final.hook_normalized`, which is what
    the unembedding reads), with its trailing dimension of 1 removed."""
    raise NotImplementedError()


# %% [hint]
# A forward hook can save what it sees into a dict (or list) defined outside it. Which hook point holds what the
# unembedding reads? What shape does a value head with one output return?

# %% [hint]
# Define `store(activation, hook)` that saves `activation`; call `model.run_with_hooks(tokens, fwd_hooks=[(name, store)])`
# for the logits; then `value_head(saved).squeeze(-1)`.

# %%
value_head = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))
logits, values = get_logits_and_values(ref_model, value_head, ref_samples)
# The hook does not change the logits: they are the model's own.
assert torch.allclose(logits, ref_model(ref_samples), atol=1e-5) and values.shape == ref_samples.shape

# %% [markdown]
# ### Log-probabilities of the generated tokens
#
# The logits at position $p$ are the distribution of the token at $p + 1$. So the generated tokens, positions
# `prompt_len` onwards, are scored by the logits at positions `prompt_len - 1` up to the second-to-last; the
# logits at the last position predict a token that was never drawn. This shift, and leaving the prompt out, are
# where RLHF code most often goes quietly wrong: the loss still goes down, but on the wrong tokens.


# %% [exercise] generated_logprobs difficulty=2 importance=5 minutes=10
def generated_logprobs(
    logits: Float[Tensor, "batch seq d_vocab"], tokens: Int[Tensor, "batch seq"], prompt_len: int
) -> Float[Tensor, "batch gen"]:
    """The log-probability of each generated token (positions prompt_len onwards of tokens) under the
    distribution the logits give for it (the logits one position earlier)."""
    raise NotImplementedError()


# %% [hint]
# Which logits predicted the token at position prompt_len? Normalise them over the vocabulary before picking
# each token's entry.

# %% [hint]
# `logits[:, prompt_len - 1 : -1].log_softmax(-1)`, then `.gather(-1, tokens[:, prompt_len:, None]).squeeze(-1)`.

# %%
ref_logprobs = generated_logprobs(logits, ref_samples, PROMPT_LEN)
# With prompt_len = 1 every token after the BOS counts, and minus the mean log-prob is the model's own loss.
loss = ref_model(ref_samples, return_type="loss")
assert torch.allclose(-generated_logprobs(logits, ref_samples, 1).mean(), loss, atol=1e-5)
print(f"mean log-prob of the reference's own samples: {ref_logprobs.mean():.2f} nats per token")
# Sampled at temperature 1, its own text costs the model between 0.7 and 2 nats per token (the corpus: 1.40).
assert -2.0 < ref_logprobs.mean() < -0.7

# %% [markdown]
# ## Part 2: rewards
#
# The first reward is a property anyone can count: the number of periods in the generated text. A policy can earn
# more of them honestly, by writing short sentences ("Tom was happy."), and we will see what else it can do.


# %% [exercise] count_reward difficulty=1 importance=3 minutes=5
def count_reward(tokens: Int[Tensor, "batch seq"], token_id: int, prompt_len: int) -> Float[Tensor, " batch"]:
    """How many of each sequence's generated tokens (positions prompt_len onwards) are token_id, as floats."""
    raise NotImplementedError()


# %% [hint]
# Which positions did the policy write? The result is one number per sequence.

# %% [hint]
# `(tokens[:, prompt_len:] == token_id).float().sum(-1)`.

# %%
ref_periods = count_reward(ref_samples, PERIOD, PROMPT_LEN)
print(f"periods in 12 generated tokens: mean {ref_periods.mean():.2f}, max {ref_periods.max():.0f}")
# The corpus's sentences run from 4 tokens ("Tom was happy.") to 16 (IOI sentences): about one period per 12 tokens,
# and never more than 3 (see Part 4).
assert 0.5 < ref_periods.mean() < 1.5 and ref_periods.max() <= 3

# %% [markdown]
# Raw rewards have whatever scale the reward function gives them. Ziegler et al. normalised their reward model
# once, to mean 0 and variance 1 on the original model's samples, so that a KL coefficient means the same for any
# reward. We normalise each batch's scores instead, which is simpler and keeps the scale fixed as the policy
# moves (the level of the reward no longer counts, only its differences within a batch).


# %% [exercise] normalize_rewards difficulty=1 importance=3 minutes=5
def normalize_rewards(rewards: Float[Tensor, " batch"], eps: float = 1e-5) -> Float[Tensor, " batch"]:
    """Rewards shifted to mean 0 and scaled by their standard deviation over the batch (torch's default,
    unbiased std) plus eps, so a batch of equal rewards becomes all zeros."""
    raise NotImplementedError()


# %% [hint]
# What happens to a batch in which every reward is the same? Where must eps go to keep that finite?

# %% [hint]
# `(rewards - rewards.mean()) / (rewards.std() + eps)`.

# %% [markdown]
# ## Part 3: the KL penalty, advantages and PPO
#
# If the policy maximised the reward alone, nothing would keep its text anything like the corpus. The fix, from
# Ziegler et al., is to subtract $\beta \,\mathrm{KL}(\pi \,\|\, \pi_\text{ref})$ from the reward. The KL of a whole
# continuation is the expectation, under the policy, of $\log \pi(y) - \log \pi_\text{ref}(y)$, which splits
# into one term per token, $\log \pi(y_t \mid y_{<t}) - \log \pi_\text{ref}(y_t \mid y_{<t})$. So each token gets
# the reward $-\beta$ times its term, and the last token also gets the sequence's score: the score is paid once,
# when the episode ends, and the penalty is paid all along (Ziegler et al.'s released code does the same).


# %% [exercise] token_level_rewards difficulty=3 importance=5 minutes=15
def token_level_rewards(
    scores: Float[Tensor, " batch"],
    logprobs: Float[Tensor, "batch gen"],
    ref_logprobs: Float[Tensor, "batch gen"],
    beta: float,
) -> Float[Tensor, "batch gen"]:
    """The reward of each generated token: minus beta times the per-token KL estimate
    log pi(token) - log pi_ref(token), with the sequence's score added at its last token only."""
    raise NotImplementedError()


# %% [hint]
# Which way round is the log-ratio, given that the samples come from the policy? Where in the episode is the
# score earned? Don't write into the inputs.

# %% [hint]
# `rewards = -beta * (logprobs - ref_logprobs)` (a new tensor), then `rewards[:, -1] += scores`.

# %% [markdown]
# ### Advantages
#
# With rewards per token and the critic's values $V_t$ (the value head at the position just before token $t$),
# the advantage of each token is estimated by GAE (Schulman et al. 2016), as in 2.3:
# $\delta_t = r_t + \gamma V_{t+1} - V_t$ and $A_t = \delta_t + \gamma\lambda A_{t+1}$. The episode ends after the
# last generated token, so the value after it is 0. The value head's output at position $p$ is the value of the
# state before token $p + 1$, so the values of the generated tokens' states are `values[:, prompt_len - 1 : -1]`,
# the same shift as for the log-probs.


# %% [exercise] compute_advantages difficulty=3 importance=5 minutes=20
def compute_advantages(
    values: Float[Tensor, "batch gen"], rewards: Float[Tensor, "batch gen"], gamma: float, lam: float
) -> Float[Tensor, "batch gen"]:
    """Generalised advantage estimates (Schulman et al. 2016) for each generated token: with
    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, where the value after
    the last token is 0 (the episode ends there)."""
    raise NotImplementedError()


# %% [hint]
# Which advantage do you need before you can compute A_t? What is V after the last token, and A after it?

# %% [hint]
# Loop `for t in reversed(range(gen))`, keeping the next value and the next advantage (both zeros at first).

# %% [markdown]
# ### The PPO losses
#
# The policy is updated several times on one batch of samples, so the samples grow stale: PPO weights each token
# by the ratio $\rho_t = \pi(y_t)/\pi_\text{old}(y_t)$ and clips it (Schulman et al. 2017), taking the pessimistic
# of the clipped and unclipped terms. The critic regresses on the returns $A_t + V_t$. An entropy bonus, if used,
# keeps the distributions from collapsing; here we only monitor it.


# %% [exercise] ppo_clipped_loss difficulty=3 importance=5 minutes=15
def ppo_clipped_loss(
    logprobs: Float[Tensor, "batch gen"],
    old_logprobs: Float[Tensor, "batch gen"],
    advantages: Float[Tensor, "batch gen"],
    clip_coef: float,
) -> Float[Tensor, ""]:
    """PPO's clipped surrogate loss (to minimise): minus the mean over every generated token of
    min(ratio * A, clip(ratio, 1 - clip_coef, 1 + clip_coef) * A), where ratio = pi / pi_old."""
    raise NotImplementedError()


# %% [hint]
# Compute the ratio from log-probs. For a positive advantage, what should stop the ratio from growing without
# limit, and for a negative one?

# %% [hint]
# `ratio = (logprobs - old_logprobs).exp()`; `torch.minimum(ratio * A, ratio.clamp(1 - c, 1 + c) * A)`; mean; negate.


# %% [exercise] value_loss difficulty=1 importance=3 minutes=5
def value_loss(values: Float[Tensor, "batch gen"], returns: Float[Tensor, "batch gen"]) -> Float[Tensor, ""]:
    """Half the mean squared error between the value head's predictions and the returns."""
    raise NotImplementedError()


# %% [hint]
# A regression loss, averaged over every token of every sequence.

# %% [hint]
# `0.5 * (values - returns).pow(2).mean()`.


# %% [exercise] entropy_bonus difficulty=2 importance=3 minutes=10
def entropy_bonus(logits: Float[Tensor, "batch seq d_vocab"], prompt_len: int) -> Float[Tensor, ""]:
    """The mean entropy (in nats) of the next-token distributions that chose the generated tokens (the
    logits at positions prompt_len - 1 to seq - 2)."""
    raise NotImplementedError()


# %% [hint]
# The same positions as the log-probs of the generated tokens. Compute the entropy from log-probabilities, not
# from probabilities, to stay finite.

# %% [hint]
# `lp = logits[:, prompt_len - 1 : -1].log_softmax(-1)`; entropy `-(lp.exp() * lp).sum(-1)`, then `.mean()`.

# %%
print(f"entropy of the reference's next-token distributions: {entropy_bonus(logits, PROMPT_LEN):.2f} nats")
# Much less than the uniform distribution's ln 626 = 6.4: the story world is quite predictable.
assert 0.5 < entropy_bonus(logits, PROMPT_LEN) < 3.0

# %% [markdown]
# ### The RLHF loop
#
# Each step samples a batch from the current policy, scores it (normalised score, per-token KL penalty), computes
# advantages with the value head, and takes `epochs` passes of minibatch updates of the PPO loss plus the value
# loss (advantages are whitened per minibatch, as CleanRL does). The hyperparameters are
# `solutions.chapter2_rl.rlhf.RLHFConfig`; the **KL** logged at each step is the mean over the batch of
# $\sum_t \log\pi(y_t) - \log\pi_\text{ref}(y_t)$, a sampled estimate of the KL between the policy's and the
# reference's distributions over whole continuations, in nats.


# %%
def train_ppo(reward_fn, cfg: RLHFConfig, desc: str = "PPO"):
    """Fine-tune a copy of the reference model with PPO; return the policy and each step's reward and KL."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    policy = copy.deepcopy(ref_model).requires_grad_(True)
    d_model = ref_model.cfg.d_model
    value_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 1))
    optimizer = torch.optim.Adam(
        [{"params": policy.parameters(), "lr": cfg.lr}, {"params": value_head.parameters(), "lr": cfg.head_lr}]
    )
    history = {"reward": [], "kl": [], "entropy": []}
    for _ in tqdm(range(cfg.steps), desc=desc):
        tokens = sample(policy, prompt_batch(cfg.batch_size, generator), cfg.gen_len, generator)
        with torch.no_grad():
            logits, values = get_logits_and_values(policy, value_head, tokens)
            old_logprobs = generated_logprobs(logits, tokens, PROMPT_LEN)
            ref_logprobs = generated_logprobs(ref_model(tokens), tokens, PROMPT_LEN)
            scores = reward_fn(tokens)
            rewards = token_level_rewards(normalize_rewards(scores), old_logprobs, ref_logprobs, cfg.beta)
            old_values = values[:, PROMPT_LEN - 1 : -1]
            advantages = compute_advantages(old_values, rewards, cfg.gamma, cfg.lam)
            returns = advantages + old_values
        history["reward"].append(scores.mean().item())
        history["kl"].append((old_logprobs - ref_logprobs).sum(-1).mean().item())
        history["entropy"].append(entropy_bonus(logits, PROMPT_LEN).item())
        for _ in range(cfg.epochs):
            for idx in torch.randperm(cfg.batch_size, generator=generator).chunk(cfg.minibatches):
                logits, values = get_logits_and_values(policy, value_head, tokens[idx])
                logprobs = generated_logprobs(logits, tokens[idx], PROMPT_LEN)
                adv = (advantages[idx] - advantages[idx].mean()) / (advantages[idx].std() + 1e-8)
                loss = (
                    ppo_clipped_loss(logprobs, old_logprobs[idx], adv, cfg.clip_coef)
                    + cfg.vf_coef * value_loss(values[:, PROMPT_LEN - 1 : -1], returns[idx])
                    - cfg.ent_coef * entropy_bonus(logits, PROMPT_LEN)
                )
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([*policy.parameters(), *value_head.parameters()], cfg.max_grad_norm)
                optimizer.step()
    return policy.requires_grad_(False), history


def plot_history(histories: dict, title: str):
    fig = make_subplots(rows=1, cols=2, subplot_titles=["reward (mean over the batch)", "KL to the reference (nats)"])
    for name, history in histories.items():
        for col, key in [(1, "reward"), (2, "kl")]:
            fig.add_scatter(y=history[key], name=name, legendgroup=name, showlegend=col == 1, row=1, col=col)
    fig.update_layout(title=title, height=350).update_xaxes(title_text="step").show()


def periods(tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    return count_reward(tokens, PERIOD, PROMPT_LEN)


ppo_cfg = RLHFConfig()
print(ppo_cfg)
policy, history = train_ppo(periods, ppo_cfg)
plot_history({f"beta = {ppo_cfg.beta}": history}, "PPO on the period count")

# %% [markdown]
# The reward rises and the KL to the reference stays bounded. Compare the averages of the first and last five
# steps, and the text on a fresh set of prompts (a seed no training run used):

# %%
first, last = sum(history["reward"][:5]) / 5, sum(history["reward"][-5:]) / 5
print(f"reward: first five steps {first:.2f}, last five {last:.2f}; largest KL {max(history['kl']):.1f} nats")
# The reward rises by more than half a period per continuation, and the KL never passes 12 nats.
assert last > first + 0.5 and max(history["kl"]) < 12.0


@torch.no_grad()
def evaluate(policy, n: int = 128, seed: int = 1000) -> dict:
    """Reward, KL and degeneracy of the policy's samples on fresh prompts (a seed no training run used)."""
    generator = torch.Generator().manual_seed(seed)
    tokens = sample(policy, prompt_batch(n, generator), ppo_cfg.gen_len, generator)
    kl = generated_logprobs(policy(tokens), tokens, PROMPT_LEN) - generated_logprobs(
        ref_model(tokens), tokens, PROMPT_LEN
    )
    is_period = tokens[:, PROMPT_LEN:] == PERIOD
    # Two periods fewer than 4 tokens apart make a sentence of at most two words, which the corpus never has
    # (its shortest, "Tom was happy.", has three).
    too_short = torch.stack([(is_period[:, k:] & is_period[:, :-k]).any(-1) for k in (1, 2, 3)]).any(0)
    return {
        "periods": periods(tokens).mean().item(),
        "kl": kl.sum(-1).mean().item(),
        "period share": is_period.float().mean().item(),
        "too short": too_short.float().mean().item(),
        "samples": ref_model.to_string(tokens[:4]),
    }


ppo_eval = evaluate(policy)
reference_eval = evaluate(ref_model)
for name, result in [("reference", reference_eval), (f"PPO, beta = {ppo_cfg.beta}", ppo_eval)]:
    print(name, {k: round(v, 3) for k, v in result.items() if k != "samples"})
    for text in result["samples"]:
        print("   ", repr(text))
# More periods than the reference writes, and fewer than 1 sample in 20 with a sentence of under three words:
# the policy writes shorter sentences, not broken ones.
assert ppo_eval["periods"] > reference_eval["periods"] + 0.5 and ppo_eval["too short"] < 0.05
assert ppo_cfg.gen_len == 12 and ppo_cfg.steps == 12  # the sizes the introduction states

# %% [markdown]
# ## Part 4: reward hacking
#
# The period count is an **exploitable** reward: it says "more periods", and the cheapest way to more periods is
# not shorter sentences but periods alone. To see it in a few steps, double the learning rate and train twice,
# with no KL penalty and with the penalty of Part 3.

# %%
hack_cfgs = {beta: RLHFConfig(lr=1e-3, steps=8, beta=beta) for beta in (0.0, ppo_cfg.beta)}
hack_runs = {beta: train_ppo(periods, cfg, desc=f"PPO, beta = {beta}") for beta, cfg in hack_cfgs.items()}
plot_history({f"beta = {beta}": history for beta, (_, history) in hack_runs.items()},
             "The period count at learning rate 1e-3, with and without the KL penalty")  # fmt: skip
hack_evals = {beta: evaluate(policy) for beta, (policy, _) in hack_runs.items()}
for beta, result in hack_evals.items():
    print(f"beta = {beta}:", {k: round(v, 3) for k, v in result.items() if k != "samples"})
    for text in result["samples"]:
        print("   ", repr(text))

# %% [markdown]
# Without the penalty the policy finds the hack within a few steps: most tokens are periods, more than six per
# continuation of twelve, and the KL to the reference passes 30 nats. With the penalty, at the same learning
# rate, the KL stays under 15 nats and the policy writes sentences, though it gains less reward than Part 3's
# gentler learning rate did. `benchmarks/rlhf.py` runs more values of $\beta$, for longer.

# %%
hacked, held = hack_evals[0.0], hack_evals[ppo_cfg.beta]
# At beta = 0 more than half of the generated tokens are periods (corpus text has at most a quarter) and most
# samples hold a "sentence" of at most two words; with the penalty the share stays below a quarter and no
# more than a tenth of the samples hold such a sentence.
assert hacked["periods"] > 6 and hacked["period share"] > 0.5 and hacked["too short"] > 0.5
assert held["period share"] < 0.25 and held["too short"] < 0.1
assert held["periods"] < ppo_eval["periods"]  # less reward than Part 3's policy
assert hacked["kl"] > 30 and held["kl"] < 15

# %% [markdown]
# ## Part 5: a reward model
#
# Real RLHF has no formula for the reward: a **reward model** is trained to predict human judgements, and the
# policy is trained against the reward model. Ours predicts a property whose truth the corpus knows: **does the
# text name a city?** We take windows of corpus text that start like our prompts (the BOS and a sentence's first
# word), label each by whether its next 12 tokens contain one of the 24 city names, and fit a logistic probe on
# the reference model's final normalised residual stream, averaged over those 12 positions (as in 1.3.1, but
# pooled over a span). Because the label is known exactly, we can later check what the policy really does,
# not only what the reward model says it does.

# %%
CITY_TOKENS = torch.tensor(
    sorted({ref_model.to_single_token(w) for city in corpus.CITY_COUNTRY for w in (city, " " + city)})
)


def names_a_city(tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    """The truth: 1.0 where the generated tokens contain a city name."""
    return torch.isin(tokens[:, PROMPT_LEN:], CITY_TOKENS).any(-1).float()


def corpus_windows(split: str, n: int) -> Int[Tensor, "n seq"]:
    documents = corpus.story_documents(split, n, 20, world=1)  # gpt2-mini's story world
    return ref_model.to_tokens(documents, padding_side="right")[:, : PROMPT_LEN + ppo_cfg.gen_len]


@torch.no_grad()
def pooled_activations(tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch d_model"]:
    _, cache = ref_model.run_with_cache(tokens, names_filter="ln_final.hook_normalized")
    return cache["ln_final.hook_normalized"][:, PROMPT_LEN:].mean(1)


train_windows, test_windows = corpus_windows("train", 800), corpus_windows("validation", 400)
train_x, train_y = pooled_activations(train_windows), names_a_city(train_windows)
test_x, test_y = pooled_activations(test_windows), names_a_city(test_windows)
torch.manual_seed(0)
probe = nn.Linear(128, 1)
optimizer = torch.optim.Adam(probe.parameters(), lr=0.05)
for _ in range(300):
    loss = (
        nn.functional.binary_cross_entropy_with_logits(probe(train_x)[:, 0], train_y) + 1e-3 * probe.weight.pow(2).sum()
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
probe_direction, probe_bias = probe.weight.detach()[0], probe.bias.item()
predicted = probe(test_x)[:, 0] > 0
balanced = 0.5 * (predicted[test_y == 1].float().mean() + (~predicted[test_y == 0]).float().mean())
print(f"windows naming a city: {train_y.mean():.2f} of train; probe's balanced accuracy on validation {balanced:.3f}")
# The probe (129 parameters) reads "names a city" from the pooled activations: balanced accuracy above 0.9.
assert sum(p.numel() for p in probe.parameters()) == 129 and balanced > 0.9


# %% [exercise] probe_reward difficulty=2 importance=4 minutes=15
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
    raise NotImplementedError()


# %% [hint]
# Which positions did the policy write? The probe was trained on averages over exactly those, read from the
# reference model, which the policy cannot change.

# %% [hint]
# `run_with_cache(tokens, names_filter="ln_final.hook_normalized")`, slice `[:, prompt_len:]`, `.mean(1)`,
# then `torch.sigmoid(pooled @ direction + bias)`.


# %%
def city_reward(tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, " batch"]:
    with torch.no_grad():
        return probe_reward(ref_model, probe_direction, probe_bias, tokens, PROMPT_LEN)


reward_on_ref = city_reward(ref_samples)
truth_on_ref = names_a_city(ref_samples)
print(f"reference samples: {truth_on_ref.mean():.2f} name a city; reward {reward_on_ref.mean():.2f}")
# On the reference's own samples the reward model separates the two kinds of text.
assert reward_on_ref[truth_on_ref == 1].mean() > reward_on_ref[truth_on_ref == 0].mean() + 0.5

# %% [markdown]
# ## Part 6: GRPO with LoRA
#
# GRPO (Shao et al. 2024) drops the critic. For each prompt it samples a **group** of continuations and uses each
# one's reward, normalised within its group, as the advantage of all its tokens: the group is the baseline. The
# KL to the reference moves out of the reward and into the loss, estimated per token with Schulman's "k3"
# estimator $e^{d} - d - 1$, $d = \log\pi_\text{ref} - \log\pi$, which is never negative.
#
# And instead of the whole model we train **LoRA** adapters (Hu et al. 2021): each chosen weight matrix $W$ is
# replaced by $W + \frac{\alpha}{r} A B$ with $A$ of shape [d_in, r] and $B$ [r, d_out], $r$ small, $W$ frozen.
# $B$ starts at zero so the model starts unchanged, and $A$ random so that $B$ gets a gradient. TransformerLens's
# MLPs multiply by `W_in` [d_model, d_mlp] and `W_out` [d_mlp, d_model] directly, so the simplest way in is a
# **parametrisation** (`torch.nn.utils.parametrize`): the model reads `mlp.W_in` as your module's output applied
# to the original weight, with no change to the model's code.


# %% [exercise] LoRA difficulty=3 importance=4 minutes=20
class LoRA(nn.Module):
    """A low-rank update for a weight matrix W [d_in, d_out] (used as a parametrisation: the model sees
    forward(W) in place of W). Parameters `A` [d_in, rank] (random normal, std 1 / sqrt(d_in)) and `B`
    [rank, d_out] (zeros, so the model is unchanged at initialisation); forward(W) = W + (alpha / rank) A B."""

    def __init__(self, d_in: int, d_out: int, rank: int, alpha: float):
        super().__init__()
        raise NotImplementedError()

    def forward(self, W: Float[Tensor, "d_in d_out"]) -> Float[Tensor, "d_in d_out"]:
        """W plus the scaled low-rank update."""
        raise NotImplementedError()


# %% [hint]
# Which of A and B must start at zero for the model to start unchanged, and why can't both? What is the
# scale of the update?

# %% [hint]
# `self.A = nn.Parameter(torch.randn(d_in, rank) / d_in**0.5)`, `self.B = nn.Parameter(torch.zeros(rank, d_out))`,
# and `return W + (alpha / rank) * self.A @ self.B`.


# %%
def add_lora(model: HookedTransformer, rank: int, alpha: float) -> list[LoRA]:
    """Put a LoRA parametrisation on W_in and W_out of every MLP; return the adapters (the only trainable parts)."""
    adapters = []
    for block in model.blocks:
        for name in ("W_in", "W_out"):
            d_in, d_out = getattr(block.mlp, name).shape
            adapter = LoRA(d_in, d_out, rank, alpha)
            parametrize.register_parametrization(block.mlp, name, adapter)
            adapters.append(adapter)
    return adapters


def merge_lora(model: HookedTransformer) -> None:
    """Fold each adapter into its weight (W + (alpha / rank) A B), leaving plain parameters."""
    for block in model.blocks:
        for name in ("W_in", "W_out"):
            parametrize.remove_parametrizations(block.mlp, name, leave_parametrized=True)


torch.manual_seed(0)
lora_model = copy.deepcopy(ref_model)
adapters = add_lora(lora_model, rank=4, alpha=8.0)
n_lora = sum(p.numel() for a in adapters for p in a.parameters())
print(f"LoRA parameters: {n_lora:,} ({n_lora / n_params:.1%} of the model)")
# At initialisation the adapted model computes exactly the reference's logits.
assert torch.equal(lora_model(ref_samples), ref_model(ref_samples))
# Give B random values: the model changes; merging the adapters into the weights changes nothing further.
with torch.no_grad():
    for adapter in adapters:
        adapter.B.normal_(0, 0.05)
adapted_logits = lora_model(ref_samples)
merge_lora(lora_model)
assert not torch.allclose(adapted_logits, ref_model(ref_samples), atol=1e-2)
assert torch.allclose(lora_model(ref_samples), adapted_logits, atol=1e-5)
assert not any("parametrizations" in name for name, _ in lora_model.named_parameters())
# Rank 4 on all 8 MLP matrices: 8 * 4 * (128 + 512) = 20,480 parameters, about 2% of the model.
assert n_lora == 20_480


# %% [exercise] group_relative_advantages difficulty=2 importance=4 minutes=10
def group_relative_advantages(
    rewards: Float[Tensor, "n_prompts group"], eps: float = 1e-5
) -> Float[Tensor, "n_prompts group"]:
    """GRPO's advantages: each reward minus the mean of its group (the samples of the same prompt, one row),
    divided by that group's standard deviation (torch's default, unbiased) plus eps. A group whose rewards are
    all equal gets advantages of 0."""
    raise NotImplementedError()


# %% [hint]
# Along which dimension do the samples of one prompt lie? What should a group whose samples all scored the same
# teach the policy?

# %% [hint]
# `rewards.mean(-1, keepdim=True)` and `rewards.std(-1, keepdim=True)`, then `(rewards - mean) / (std + eps)`.


# %% [exercise] grpo_loss difficulty=3 importance=5 minutes=20
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
    raise NotImplementedError()


# %% [hint]
# The advantages are one per sequence but the ratios one per token: how do you line them up? Which way round is
# d, so that the estimator's expectation under the policy is KL(pi || pi_ref)?

# %% [hint]
# `adv = advantages[:, None]`; the surrogate as in `ppo_clipped_loss`; `d = ref_logprobs - logprobs`,
# `kl = d.exp() - d - 1`; return `(-surrogate + beta * kl).mean()`.

# %% [markdown]
# The GRPO loop: each step draws `n_prompts` prompts, samples `group_size` continuations of each from the
# policy, scores them with the reward model, and takes `epochs` full-batch steps on the GRPO loss. Only the
# adapters train. We aim it at the reward model of Part 5, and watch the truth as well as the reward.


# %%
def train_grpo(reward_fn, cfg: GRPOConfig, desc: str = "GRPO"):
    """Fine-tune LoRA adapters on a copy of the reference model with GRPO; return the policy and its history."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    policy = copy.deepcopy(ref_model)
    adapters = add_lora(policy, cfg.rank, cfg.alpha)
    optimizer = torch.optim.Adam([p for adapter in adapters for p in adapter.parameters()], lr=cfg.lr)
    history = {"reward": [], "kl": [], "truth": []}
    for _ in tqdm(range(cfg.steps), desc=desc):
        prompts = prompt_batch(cfg.n_prompts, generator).repeat_interleave(cfg.group_size, dim=0)
        tokens = sample(policy, prompts, cfg.gen_len, generator)
        with torch.no_grad():
            old_logprobs = generated_logprobs(policy(tokens), tokens, PROMPT_LEN)
            ref_logprobs = generated_logprobs(ref_model(tokens), tokens, PROMPT_LEN)
            scores = reward_fn(tokens)
            advantages = group_relative_advantages(scores.view(cfg.n_prompts, cfg.group_size)).flatten()
        history["reward"].append(scores.mean().item())
        history["kl"].append((old_logprobs - ref_logprobs).sum(-1).mean().item())
        history["truth"].append(names_a_city(tokens).mean().item())
        for _ in range(cfg.epochs):
            logprobs = generated_logprobs(policy(tokens), tokens, PROMPT_LEN)
            loss = grpo_loss(logprobs, old_logprobs, ref_logprobs, advantages, cfg.clip_coef, cfg.beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return policy.requires_grad_(False), history


grpo_cfg = GRPOConfig()
print(grpo_cfg)
grpo_policy, grpo_history = train_grpo(city_reward, grpo_cfg)
plot_history({"GRPO + LoRA": grpo_history}, "GRPO towards the reward model's 'names a city'")

# %%
generator = torch.Generator().manual_seed(1000)
grpo_samples = sample(grpo_policy, prompt_batch(128, generator), grpo_cfg.gen_len, generator)
generator = torch.Generator().manual_seed(1000)
base_samples = sample(ref_model, prompt_batch(128, generator), grpo_cfg.gen_len, generator)
before = {"reward": city_reward(base_samples).mean().item(), "truth": names_a_city(base_samples).mean().item()}
after = {"reward": city_reward(grpo_samples).mean().item(), "truth": names_a_city(grpo_samples).mean().item()}
print(f"reference: {before}\nGRPO:      {after}\nlargest KL during training: {max(grpo_history['kl']):.1f} nats")
for text in ref_model.to_string(grpo_samples[:4]):
    print("   ", repr(text))
# On fresh prompts the reward model's score and the truth both rise by more than 0.4: the policy names a city
# far more often, having trained about 2% of the weights, and its KL to the reference stays under 10 nats.
assert after["reward"] > before["reward"] + 0.4 and after["truth"] > before["truth"] + 0.4
assert max(grpo_history["kl"]) < 10.0 and grpo_cfg.steps == 12 and grpo_cfg.gen_len == 12

# %% [markdown]
# Here the reward model and the truth rose together over twelve steps. Real reward models are less exact: Gao et al.
# (2023, *Scaling Laws for Reward Model Overoptimization*) measured that as a policy optimises a proxy reward
# model and moves further (in KL) from where it started, the true ("gold") reward first rises and then falls.
# The period count of Part 4 is the extreme case, a proxy that is cheap to satisfy without the property it was
# meant to reward.
#
# ## Summary
#
# - RLHF is PPO on text: an action is a token, the episode ends with the reward model's score, and a per-token
#   penalty $-\beta(\log\pi - \log\pi_\text{ref})$ keeps the policy near the model it started from.
# - Getting the positions right (logits at $p$ score the token at $p + 1$; only generated tokens count) is most of
#   the work; the losses are 2.3's.
# - An exploitable reward is exploited: with no KL penalty the period count is maximised by runs of periods. The
#   KL coefficient chose between short sentences and degenerate text.
# - GRPO replaces the critic with group-relative advantages, and LoRA trains 2% of the weights through a
#   parametrisation that merges back into the model exactly.
