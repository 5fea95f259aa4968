"""RLHF on the zoo's gpt2-mini, the full runs behind chapter 2.4 (figures, not assertions).

1. PPO with a per-token KL penalty on the period-count reward: the reward curve and the KL to the
   reference model at every step.
2. Reward hacking: the same reward at several KL coefficients, with the share of generated tokens that are
   periods, the share of samples with a "sentence" of at most two words (which the corpus never has), and a sample.
3. GRPO with LoRA (rank 4 on every MLP, the base frozen) towards the notebook's reward model (a probe for
   "the text names a city"), with the reward model's score and the truth before and after.

The loops are the notebook's, built from the reference solutions, with the notebook's hyperparameters
(`solutions.chapter2_rl.rlhf.RLHFConfig` / `GRPOConfig`) except for the number of steps.

    python benchmarks/rlhf.py --threads 1            # the defaults: 40 PPO steps per run, 4 betas, 30 GRPO steps
    python benchmarks/rlhf.py --steps 60 --betas 0 0.05 0.2 0.5
"""

import argparse
import copy
import dataclasses
import time

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformer_lens import TransformerLensKeyValueCache

from solutions.chapter2_rl.rlhf import (
    GRPOConfig,
    LoRA,
    RLHFConfig,
    compute_advantages,
    count_reward,
    generated_logprobs,
    get_logits_and_values,
    group_relative_advantages,
    grpo_loss,
    normalize_rewards,
    ppo_clipped_loss,
    probe_reward,
    token_level_rewards,
    value_loss,
)
from zoo import corpus, load_model

PROMPT_WORDS = ["Mary", "John", "When", "The", "After", "Tom", "Alice", "Yesterday"]


def prompt_batch(model, n: int, generator: torch.Generator) -> torch.Tensor:
    """n prompts (BOS + one story-opening word), drawn with replacement."""
    words = [PROMPT_WORDS[i] for i in torch.randint(len(PROMPT_WORDS), (n,), generator=generator)]
    return model.to_tokens(words)


@torch.no_grad()
def sample(model, prompts: torch.Tensor, gen_len: int, generator: torch.Generator) -> torch.Tensor:
    """The notebook's sampler: temperature 1, seeded, with a key-value cache."""
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, prompts.shape[0])
    tokens, logits = prompts, model(prompts, past_kv_cache=cache)
    for i in range(gen_len):
        new = torch.multinomial(logits[:, -1].softmax(-1), 1, generator=generator)
        tokens = torch.cat([tokens, new], dim=1)
        if i < gen_len - 1:
            logits = model(new, past_kv_cache=cache)
    return tokens


def degeneracy(tokens: torch.Tensor, prompt_len: int, period: int) -> tuple[float, float]:
    """The share of generated tokens that are periods (at most 1/4 in corpus text), and the share of sequences
    with two periods fewer than 4 tokens apart (a sentence of at most two words, which the corpus never has)."""
    is_period = tokens[:, prompt_len:] == period
    too_short = torch.stack([(is_period[:, k:] & is_period[:, :-k]).any(-1) for k in (1, 2, 3)]).any(0)
    return is_period.float().mean().item(), too_short.float().mean().item()


def train_ppo(ref, reward_fn, cfg: RLHFConfig, log=print):
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    policy = copy.deepcopy(ref).train()
    for p in policy.parameters():
        p.requires_grad_(True)
    d = ref.cfg.d_model
    head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))
    optimizer = torch.optim.Adam(
        [{"params": policy.parameters(), "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}]
    )
    history = []
    for step in range(cfg.steps):
        prompts = prompt_batch(ref, cfg.batch_size, generator)
        prompt_len = prompts.shape[1]
        tokens = sample(policy, prompts, cfg.gen_len, generator)
        with torch.no_grad():
            logits, values = get_logits_and_values(policy, head, tokens)
            old_logprobs = generated_logprobs(logits, tokens, prompt_len)
            ref_logprobs = generated_logprobs(ref(tokens), tokens, prompt_len)
            scores = reward_fn(tokens, prompt_len)
            rewards = token_level_rewards(normalize_rewards(scores), old_logprobs, ref_logprobs, cfg.beta)
            old_values = values[:, prompt_len - 1 : -1]
            advantages = compute_advantages(old_values, rewards, cfg.gamma, cfg.lam)
            returns = advantages + old_values
        kl = (old_logprobs - ref_logprobs).sum(-1).mean().item()
        history.append(dict(step=step, reward=scores.mean().item(), kl=kl))
        log(f"step {step:3d}  reward {scores.mean().item():6.3f}  KL {kl:6.3f}")
        for _ in range(cfg.epochs):
            order = torch.randperm(cfg.batch_size, generator=generator)
            for idx in order.chunk(cfg.minibatches):
                logits, values = get_logits_and_values(policy, head, tokens[idx])
                logprobs = generated_logprobs(logits, tokens[idx], prompt_len)
                adv = advantages[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                loss = ppo_clipped_loss(logprobs, old_logprobs[idx], adv, cfg.clip_coef)
                loss = loss + cfg.vf_coef * value_loss(values[:, prompt_len - 1 : -1], returns[idx])
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([*policy.parameters(), *head.parameters()], cfg.max_grad_norm)
                optimizer.step()
    return policy.eval(), history


def add_lora(model, rank: int, alpha: float) -> list[LoRA]:
    adapters = []
    for block in model.blocks:
        for name in ("W_in", "W_out"):
            d_in, d_out = getattr(block.mlp, name).shape
            adapter = LoRA(d_in, d_out, rank, alpha)
            parametrize.register_parametrization(block.mlp, name, adapter)
            adapters.append(adapter)
    return adapters


def train_grpo(ref, reward_fn, cfg: GRPOConfig, log=print):
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    policy = copy.deepcopy(ref)
    for p in policy.parameters():
        p.requires_grad_(False)
    adapters = add_lora(policy, cfg.rank, cfg.alpha)
    optimizer = torch.optim.Adam([p for a in adapters for p in a.parameters()], lr=cfg.lr)
    history = []
    for step in range(cfg.steps):
        prompts = prompt_batch(ref, cfg.n_prompts, generator).repeat_interleave(cfg.group_size, 0)
        prompt_len = prompts.shape[1]
        tokens = sample(policy, prompts, cfg.gen_len, generator)
        with torch.no_grad():
            old_logprobs = generated_logprobs(policy(tokens), tokens, prompt_len)
            ref_logprobs = generated_logprobs(ref(tokens), tokens, prompt_len)
            scores = reward_fn(tokens, prompt_len)
            advantages = group_relative_advantages(scores.view(cfg.n_prompts, cfg.group_size)).flatten()
        kl = (old_logprobs - ref_logprobs).sum(-1).mean().item()
        history.append(dict(step=step, reward=scores.mean().item(), kl=kl))
        log(f"step {step:3d}  reward {scores.mean().item():6.3f}  KL {kl:6.3f}")
        for _ in range(cfg.epochs):
            logprobs = generated_logprobs(policy(tokens), tokens, prompt_len)
            loss = grpo_loss(logprobs, old_logprobs, ref_logprobs, advantages, cfg.clip_coef, cfg.beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return policy.eval(), history


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=40, help="PPO steps of each run (the notebook runs 12)")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    parser.add_argument("--grpo-steps", type=int, default=30, help="GRPO steps (the notebook runs 12)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ppo", "hacking", "grpo"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ref = load_model("gpt2-mini", device="cpu")
    for p in ref.parameters():
        p.requires_grad_(False)
    period = ref.to_single_token(".")

    def periods(tokens, prompt_len):
        return count_reward(tokens, period, prompt_len)

    if "ppo" not in args.skip:
        cfg = dataclasses.replace(RLHFConfig(), steps=args.steps)
        print(f"== PPO on the period count, {cfg}")
        start = time.perf_counter()
        policy, history = train_ppo(ref, periods, cfg)
        print(f"{cfg.steps} steps in {time.perf_counter() - start:.0f} s")

    if "hacking" not in args.skip:
        print(f"== Reward hacking: {args.steps} steps at each beta")
        rows = []
        for beta in args.betas:
            cfg = dataclasses.replace(RLHFConfig(), steps=args.steps, beta=beta)
            start = time.perf_counter()
            policy, history = train_ppo(ref, periods, cfg, log=lambda *_: None)
            generator = torch.Generator().manual_seed(123)
            tokens = sample(policy, prompt_batch(ref, 64, generator), cfg.gen_len, generator)
            share, too_short = degeneracy(tokens, 2, period)
            with torch.no_grad():
                kl = (
                    (generated_logprobs(policy(tokens), tokens, 2) - generated_logprobs(ref(tokens), tokens, 2))
                    .sum(-1)
                    .mean()
                    .item()
                )
            rows.append((beta, periods(tokens, 2).mean().item(), kl, share, too_short))
            print(
                f"beta {beta:4.2f}: reward {rows[-1][1]:5.2f}  KL {kl:6.2f}  periods {share:.2f}  "
                f"too short {too_short:.2f}  ({time.perf_counter() - start:.0f} s)  e.g. {ref.to_string(tokens[0])!r}"
            )

    if "grpo" not in args.skip:
        reward, truth = city_reward_model(ref)
        cfg = dataclasses.replace(GRPOConfig(), steps=args.grpo_steps)
        print(f"== GRPO with LoRA towards the reward model 'names a city', {cfg}")
        start = time.perf_counter()
        policy, history = train_grpo(ref, reward, cfg)
        print(f"{cfg.steps} steps in {time.perf_counter() - start:.0f} s")
        for name, model in [("reference", ref), ("GRPO", policy)]:
            generator = torch.Generator().manual_seed(1000)
            tokens = sample(model, prompt_batch(ref, 128, generator), cfg.gen_len, generator)
            with torch.no_grad():
                print(
                    f"{name}: reward {reward(tokens, 2).mean():.3f}, names a city {truth(tokens, 2).float().mean():.3f}"
                )
            for text in ref.to_string(tokens[:3]):
                print("   ", repr(text))


def city_reward_model(ref):
    """The notebook's reward model: a logistic probe on the reference's final normalised residual stream, averaged
    over the 12 tokens after the first word of corpus windows, labelled by whether they name a city."""
    cities = torch.tensor(sorted({ref.to_single_token(w) for city in corpus.CITY_COUNTRY for w in (city, " " + city)}))

    def truth(tokens, prompt_len):
        return torch.isin(tokens[:, prompt_len:], cities).any(-1)

    windows = ref.to_tokens(corpus.story_documents("train", 800, 20, world=1), padding_side="right")[:, :14]
    with torch.no_grad():
        _, cache = ref.run_with_cache(windows, names_filter="ln_final.hook_normalized")
    x, y = cache["ln_final.hook_normalized"][:, 2:].mean(1), truth(windows, 2).float()
    torch.manual_seed(0)
    probe = nn.Linear(ref.cfg.d_model, 1)
    optimizer = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(300):
        loss = nn.functional.binary_cross_entropy_with_logits(probe(x)[:, 0], y) + 1e-3 * probe.weight.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    direction, bias = probe.weight.detach()[0], probe.bias.item()

    def reward(tokens, prompt_len):
        with torch.no_grad():
            return probe_reward(ref, direction, bias, tokens, prompt_len)

    return reward, truth


if __name__ == "__main__":
    main()
