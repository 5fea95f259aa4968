"""Checks for 2.3 PPO.

Every check compares deterministic pieces on seeded inputs, never a learning curve: initial weights by
their Gram matrices, the networks on random observations, rollouts of seeded vector environments with a
seeded sampler, GAE and the losses on hand-worked examples (worked in the comments), and whole updates and
short training runs by the parameters they end with. Losses are checked with their gradients too, so a
detached ratio or value is caught.
"""

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical

from solutions.chapter2_rl import ppo as ref
from tests.harness import Case, Checker, Exercise

SQRT2 = 2**0.5

# ----------------------------------------------------------------------------- layer_init


def _init_cases(gen):
    # Orthogonal means W W^T = std^2 I for a wide matrix (W^T W for a tall one); every bias is bias_const.
    for out_f, in_f, std, bias in [(64, 4, SQRT2, 0.0), (2, 64, 0.01, 0.0), (1, 64, 1.0, 0.0), (64, 64, SQRT2, 0.0),
                                   (3, 5, 0.5, 0.1), (7, 3, 2.0, -1.0)]:  # fmt: skip
        n = min(out_f, in_f)
        yield Case((out_f, in_f, std, bias), f"Linear({in_f}, {out_f}), std {std:.3g}, bias {bias}",
                   expected=(std**2 * torch.eye(n), torch.full((out_f,), bias), True))  # fmt: skip
    yield Case((6, 6, None, None), "Linear(6, 6) with the default std and bias",
               expected=(2.0 * torch.eye(6), torch.zeros(6), True))  # fmt: skip


def _run_init(impl, case):
    out_f, in_f, std, bias = case.args
    torch.manual_seed(0)
    layer = nn.Linear(in_f, out_f)
    returned = impl(layer) if std is None else impl(layer, std, bias)
    W = layer.weight.detach().double()
    gram = W @ W.T if out_f <= in_f else W.T @ W
    return gram.float(), layer.bias.detach().clone(), returned is layer


def _init_xavier(layer, std=SQRT2, bias_const=0.0):
    nn.init.xavier_normal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def _init_no_gain(layer, std=SQRT2, bias_const=0.0):
    nn.init.orthogonal_(layer.weight)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def _init_gain_squared(layer, std=SQRT2, bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std**2)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def _init_bias_untouched(layer, std=SQRT2, bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    return layer


def _init_returns_nothing(layer, std=SQRT2, bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)


# ----------------------------------------------------------------------------- Agent


def _agent_cases(gen):
    for obs_dim, n_actions, batch in [(4, 2, 5), (6, 3, 8), (2, 3, 1), (8, 5, 32)]:
        obs = torch.randn(batch, obs_dim, generator=gen) * 2
        yield Case((obs,), f"obs_dim {obs_dim}, {n_actions} actions, batch {batch}", init=(obs_dim, n_actions))
    yield Case((torch.randn(4, 3, generator=gen),), "hidden 16", init=(3, 2, 16))
    yield Case((torch.zeros(2, 4),), "zero observations", init=(4, 2))


class _AgentOracle(nn.Module):
    """The same networks, written as explicit matrix products."""

    def __init__(self, obs_dim, n_actions, hidden=64):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                    nn.Linear(hidden, 1))  # fmt: skip
        self.actor = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                   nn.Linear(hidden, n_actions))  # fmt: skip

    def forward(self, obs):
        def mlp(seq):
            h = obs
            for i in (0, 2):
                h = torch.tanh(h @ seq[i].weight.T + seq[i].bias)
            return h @ seq[4].weight.T + seq[4].bias

        return mlp(self.actor), mlp(self.critic)[:, 0]


def _agent_extra(impl):
    """The initialisation, which outputs computed with the reference's weights cannot show."""
    torch.manual_seed(0)
    agent = impl(4, 2)
    for name, last_std in [("critic", 1.0), ("actor", 0.01)]:
        seq = getattr(agent, name, None)
        assert isinstance(seq, nn.Sequential) and len(seq) == 5, f"agent.{name} should be an nn.Sequential of 5 layers"
        for i, std in [(0, SQRT2), (2, SQRT2), (4, last_std)]:
            W = seq[i].weight.detach().double()
            gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
            target = std**2 * torch.eye(gram.shape[0], dtype=torch.float64)
            assert torch.allclose(gram, target, atol=1e-4 * std**2), (
                f"agent.{name}[{i}].weight is not orthogonal with std {std:g} (W W^T should be {std**2:g} I): "
                "initialise it with layer_init"
            )
            assert torch.all(seq[i].bias == 0), f"agent.{name}[{i}].bias should start at 0"
        assert isinstance(seq[1], nn.Tanh) and isinstance(seq[3], nn.Tanh), f"agent.{name} should use Tanh"


class _AgentRelu(ref.Agent):
    def __init__(self, obs_dim, n_actions, hidden=64):
        super().__init__(obs_dim, n_actions, hidden)
        self.critic[1], self.critic[3], self.actor[1], self.actor[3] = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()


class _AgentValueNotSqueezed(ref.Agent):
    def forward(self, obs):
        return self.actor(obs), self.critic(obs)


class _AgentProbabilities(ref.Agent):
    def forward(self, obs):
        return self.actor(obs).softmax(-1), self.critic(obs).squeeze(-1)


class _AgentActorStdSqrt2(ref.Agent):
    def __init__(self, obs_dim, n_actions, hidden=64):
        super().__init__(obs_dim, n_actions, hidden)
        ref.layer_init(self.actor[4])


class _AgentDefaultInit(nn.Module):
    def __init__(self, obs_dim, n_actions, hidden=64):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                    nn.Linear(hidden, 1))  # fmt: skip
        self.actor = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                   nn.Linear(hidden, n_actions))  # fmt: skip

    def forward(self, obs):
        return self.actor(obs), self.critic(obs).squeeze(-1)


# ----------------------------------------------------------------------------- evaluate_actions


def _evaluate_cases(gen):
    # Equal logits: each of 2 actions has probability 1/2: log-prob -ln 2, entropy ln 2.
    ln2, ln3 = math.log(2), math.log(3)
    yield Case((torch.zeros(1, 2), torch.tensor([1])), "uniform over 2 actions (worked by hand)",
               expected=(torch.tensor([-ln2]), torch.tensor([ln2])))  # fmt: skip
    # Logits (0, ln 3): probabilities (1/4, 3/4); entropy -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623.
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    yield Case((torch.tensor([[0.0, ln3], [0.0, ln3]]), torch.tensor([0, 1])), "probabilities 1/4, 3/4 (worked by hand)",
               expected=(torch.tensor([math.log(0.25), math.log(0.75)]), torch.tensor([entropy, entropy])))  # fmt: skip
    # A shift of all logits changes nothing: (5, 5 + ln 3) is the same policy.
    yield Case((torch.tensor([[5.0, 5.0 + ln3]]), torch.tensor([1])), "shifted logits (worked by hand)",
               expected=(torch.tensor([math.log(0.75)]), torch.tensor([entropy])))  # fmt: skip
    yield Case((torch.tensor([[30.0, 0.0, 0.0]]), torch.tensor([0])), "a nearly certain action")
    for b, a in [(6, 2), (10, 3), (64, 5)]:
        logits = torch.randn(b, a, generator=gen) * 2
        yield Case((logits, torch.randint(0, a, (b,), generator=gen)), f"random logits, batch {b}, {a} actions")


def _evaluate_softmax_over_batch(logits, actions):
    logp = logits.log_softmax(0)
    return logp.gather(1, actions[:, None])[:, 0], -(logp.exp() * logp).sum(-1)


def _evaluate_raw_logits(logits, actions):
    return logits.gather(1, actions[:, None])[:, 0], Categorical(logits=logits).entropy()


def _evaluate_entropy_sign(logits, actions):
    dist = Categorical(logits=logits)
    return dist.log_prob(actions), (dist.probs * dist.logits).sum(-1)


def _evaluate_probability(logits, actions):
    dist = Categorical(logits=logits)
    return dist.probs.gather(1, actions[:, None])[:, 0], dist.entropy()


# ----------------------------------------------------------------------------- collect_rollout


def _rollout_cases(gen):
    yield Case(("CartPole-v1", 2, 0, 8), "CartPole, 2 envs, 8 steps")
    yield Case(("CartPole-v1", 4, 3, 40), "CartPole, 4 envs, 40 steps (episodes end)")
    yield Case(("CartPole-v1", 1, 7, 30), "CartPole, 1 env, 30 steps")
    yield Case(("Acrobot-v1", 3, 1, 12), "Acrobot, 3 envs, 3 actions")
    yield Case(("MountainCar-v0", 2, 5, 205), "MountainCar, 2 envs, 205 steps (truncated at 200)")


def _run_rollout(impl, case):
    env_id, num_envs, seed, num_steps = case.args
    envs, obs = ref.make_envs(env_id, num_envs, seed)
    torch.manual_seed(seed)
    agent = ref.Agent(envs.single_observation_space.shape[0], envs.single_action_space.n)
    for p in agent.actor[4].parameters():  # a policy far from uniform, so that log-probabilities differ
        p.data.normal_(0, 1.0)
    torch.manual_seed(seed + 100)
    out = impl(envs, agent, obs, num_steps)
    envs.close()
    return out


def _rollout_oracle(envs, agent, next_obs, num_steps):
    rows, episodes = [], []
    for _ in range(num_steps):
        with torch.no_grad():
            logits, value = agent(next_obs)
        probs = Categorical(logits=logits)
        action = probs.sample()
        obs, reward, terminated, truncated, info = envs.step(action.numpy())
        rows.append((next_obs, action, logits.log_softmax(-1).gather(1, action[:, None])[:, 0], value,
                     torch.tensor(reward).float(), torch.tensor(np.logical_or(terminated, truncated)).float()))  # fmt: skip
        next_obs = torch.from_numpy(np.asarray(obs, dtype=np.float32))
        for i, ended in enumerate(info.get("_episode", [])):
            if ended:
                episodes.append((float(info["episode"]["r"][i]), int(info["episode"]["l"][i])))
    buffer = ref.RolloutBuffer(*[torch.stack(column) for column in zip(*rows)])
    return buffer, next_obs, episodes


def _rollout_wrapped(obs_after=False, terminated_only=False, greedy=False, probs=False, no_mask=False):
    def collect(envs, agent, next_obs, num_steps):
        n = next_obs.shape[0]
        buf = ref.RolloutBuffer(torch.zeros((num_steps, *next_obs.shape)), torch.zeros((num_steps, n), dtype=torch.long),
                                *[torch.zeros((num_steps, n)) for _ in range(4)])  # fmt: skip
        episodes = []
        for step in range(num_steps):
            if not obs_after:
                buf.obs[step] = next_obs
            with torch.no_grad():
                logits, value = agent(next_obs)
            dist = Categorical(logits=logits)
            action = dist.sample()
            if greedy:
                action = logits.argmax(-1)
            buf.actions[step], buf.values[step] = action, value
            buf.logprobs[step] = dist.probs.gather(1, action[:, None])[:, 0] if probs else dist.log_prob(action)
            obs, reward, terminated, truncated, info = envs.step(action.numpy())
            buf.rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            buf.dones[step] = torch.as_tensor(terminated if terminated_only else terminated | truncated).float()
            next_obs = torch.tensor(obs, dtype=torch.float32)
            if obs_after:
                buf.obs[step] = next_obs
            if "episode" in info:
                ended = range(n) if no_mask else np.flatnonzero(info["_episode"])
                episodes += [(float(info["episode"]["r"][i]), int(info["episode"]["l"][i])) for i in ended]
        return buf, next_obs, episodes

    return collect


# ----------------------------------------------------------------------------- GAE


def _gae_cases(gen):
    # gamma = lambda = 0.5. t = 2: delta = 3 + 0.5 * 4 - 2 = 3, A = 3. t = 1 ends its episode: delta = 2 - 1 = 1,
    # A = 1 (nothing flows back across the end). t = 0: delta = 1 + 0.5 * 1 - 0.5 = 1, A = 1 + 0.25 * 1 = 1.25.
    yield Case((torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[0.5], [1.0], [2.0]]), torch.tensor([[0.0], [1.0], [0.0]]),
                torch.tensor([4.0]), 0.5, 0.5), "1 env, an episode ends at step 1 (worked by hand)",
               expected=torch.tensor([[1.25], [1.0], [3.0]]))  # fmt: skip
    # gamma 0.9, lambda 1, values 0. Env 0 never ends: A_1 = 1 + 0.9 * 10 = 10, A_0 = 1 + 0.9 * 10 = 10.
    # Env 1 ends at the last step, so next_value is not used: A_1 = 1, A_0 = 1 + 0.9 * 1 = 1.9.
    yield Case((torch.ones(2, 2), torch.zeros(2, 2), torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor([10.0, 10.0]),
                0.9, 1.0), "2 envs, one ends at the last step (worked by hand)",
               expected=torch.tensor([[10.0, 1.9], [10.0, 1.0]]))  # fmt: skip
    # lambda 0: the advantage is the one-step TD error. r = 1, V = (1, 2), next 3, gamma 0.5: (1 + 1 - 1, 1 + 1.5 - 2).
    yield Case((torch.ones(2, 1), torch.tensor([[1.0], [2.0]]), torch.zeros(2, 1), torch.tensor([3.0]), 0.5, 0.0),
               "lambda 0: TD errors (worked by hand)", expected=torch.tensor([[1.0], [0.5]]))  # fmt: skip
    for T, N, p in [(16, 4, 0.1), (64, 2, 0.05), (5, 8, 0.5), (1, 3, 0.5), (10, 2, 1.0)]:
        rewards = torch.randn(T, N, generator=gen)
        values = torch.randn(T, N, generator=gen)
        dones = (torch.rand(T, N, generator=gen) < p).float()
        next_value = torch.randn(N, generator=gen)
        label = "every step ends an episode" if p == 1.0 else f"random, {T} steps, {N} envs"
        yield Case((rewards, values, dones, next_value, 0.99, 0.95), label)


def _gae(rewards, values, dones, next_value, gamma, lam, delta_done, trace_done, bootstrap=True, shift=False):
    T = rewards.shape[0]
    advantages, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
    for t in reversed(range(T)):
        next_values = (next_value if bootstrap else torch.zeros_like(next_value)) if t == T - 1 else values[t + 1]
        done = (dones[t + 1] if t < T - 1 else torch.zeros_like(next_value)) if shift else dones[t]
        delta = rewards[t] + gamma * next_values * (1 - done * delta_done) - values[t]
        last = delta + gamma * lam * (1 - done * trace_done) * last
        advantages[t] = last
    return advantages


def _gae_trace_not_reset(rewards, values, dones, next_value, gamma, gae_lambda):
    return _gae(rewards, values, dones, next_value, gamma, gae_lambda, 1.0, 0.0)


def _gae_dones_ignored(rewards, values, dones, next_value, gamma, gae_lambda):
    return _gae(rewards, values, dones, next_value, gamma, gae_lambda, 0.0, 0.0)


def _gae_no_bootstrap(rewards, values, dones, next_value, gamma, gae_lambda):
    return _gae(rewards, values, dones, next_value, gamma, gae_lambda, 1.0, 1.0, bootstrap=False)


def _gae_dones_shifted(rewards, values, dones, next_value, gamma, gae_lambda):
    return _gae(rewards, values, dones, next_value, gamma, gae_lambda, 1.0, 1.0, shift=True)


def _gae_no_lambda(rewards, values, dones, next_value, gamma, gae_lambda):
    return _gae(rewards, values, dones, next_value, gamma, 1.0, 1.0, 1.0)


def _gae_returns_not_advantages(rewards, values, dones, next_value, gamma, gae_lambda):
    return ref.compute_gae(rewards, values, dones, next_value, gamma, gae_lambda) + values


# ----------------------------------------------------------------------------- minibatches


def _minibatch_cases(gen):
    # np.random.default_rng(0).permutation(8) is [2, 4, 3, 6, 5, 0, 1, 7]; the second epoch continues the stream.
    first = [[2, 4, 3, 6], [5, 0, 1, 7]]
    second = np.random.default_rng(0)
    second.permutation(8)
    yield Case((0, 8, 4), "seed 0, 8 into 2 minibatches of 4, two epochs",
               expected=torch.tensor([first, second.permutation(8).reshape(2, 4).tolist()]))  # fmt: skip
    # default_rng(3) gives the permutations [2, 5, 4, 1, 3, 0] and then [3, 5, 0, 2, 1, 4].
    yield Case((3, 6, 3), "seed 3, 6 into 2 minibatches of 3, two epochs",
               expected=torch.tensor([[[2, 5, 4], [1, 3, 0]], [[3, 5, 0], [2, 1, 4]]]))  # fmt: skip
    yield Case((1, 16, 16), "one minibatch holding the whole batch")
    yield Case((2, 512, 128), "CleanRL's CartPole sizes: 512 into 4 of 128")
    yield Case((4, 12, 1), "minibatches of 1")


def _run_minibatches(impl, case):
    seed, batch_size, minibatch_size = case.args
    rng = np.random.default_rng(seed)
    epochs = [np.asarray(impl(rng, batch_size, minibatch_size)) for _ in range(2)]
    return torch.from_numpy(np.stack(epochs)).long()


def _mb_in_order(rng, batch_size, minibatch_size):
    return np.arange(batch_size).reshape(-1, minibatch_size)


def _mb_with_replacement(rng, batch_size, minibatch_size):
    return rng.integers(batch_size, size=(batch_size // minibatch_size, minibatch_size))


def _mb_fresh_permutation_each(rng, batch_size, minibatch_size):
    return np.stack([rng.permutation(batch_size)[:minibatch_size] for _ in range(batch_size // minibatch_size)])


def _mb_fixed_seed(rng, batch_size, minibatch_size):
    return np.random.default_rng(0).permutation(batch_size).reshape(-1, minibatch_size)


def _mb_transposed(rng, batch_size, minibatch_size):
    return rng.permutation(batch_size).reshape(minibatch_size, -1).T


# ----------------------------------------------------------------------------- losses (with gradients)


def _run_with_grad(impl, case):
    """The loss and its gradient with respect to the first input (new log-probabilities or new values)."""
    first = case.args[0].detach().clone().requires_grad_(True)
    loss = impl(first, *case.args[1:])
    (grad,) = torch.autograd.grad(loss, first, allow_unused=True)
    return loss.detach(), torch.zeros_like(first) if grad is None else grad


def _policy_cases(gen):
    # A = (1, -1) normalises to (1, -1) / sqrt 2 (unbiased std sqrt 2). Ratio 1.5 for both: the first (A > 0)
    # is clipped to 1.2, -A * 1.2 = -1.2 / sqrt 2; the second (A < 0) keeps the worse term, -A * 1.5 = 1.5 / sqrt 2.
    # Mean: 0.3 / (2 sqrt 2) = 0.10607. Gradient: 0 for the clipped one, d(1.5 / sqrt 2 * r) / d log r / 2 = 0.53033.
    ln15 = math.log(1.5)
    yield Case((torch.tensor([ln15, ln15]), torch.zeros(2), torch.tensor([1.0, -1.0]), 0.2),
               "ratio 1.5, advantages (1, -1) (worked by hand)",
               expected=(torch.tensor(0.3 / (2 * SQRT2)), torch.tensor([0.0, 1.5 / SQRT2 / 2])))  # fmt: skip
    # Ratio 0.5: the first keeps -A * 0.5 = -0.5 / sqrt 2 (gradient -0.5 / sqrt 2 / 2), the second is clipped at 0.8.
    yield Case((torch.tensor([-1.0, -1.0]) * math.log(2), torch.zeros(2), torch.tensor([3.0, 1.0]), 0.2),
               "ratio 0.5, advantages (3, 1) (worked by hand)",
               expected=(torch.tensor(0.3 / (2 * SQRT2)), torch.tensor([-0.5 / SQRT2 / 2, 0.0])))  # fmt: skip
    for b, clip, spread in [(8, 0.2, 0.3), (64, 0.1, 0.5), (256, 0.2, 0.05), (32, 0.3, 1.0)]:
        new = -torch.rand(b, generator=gen) * 2
        old = new + torch.randn(b, generator=gen) * spread
        advantages = torch.randn(b, generator=gen) * 3 + 1
        yield Case((new, old, advantages, clip), f"random, batch {b}, clip {clip}")
    same = -torch.rand(16, generator=gen)
    yield Case((same, same.clone(), torch.randn(16, generator=gen), 0.2), "ratio 1 everywhere (the first minibatch)")


def _normalise(a, unbiased=True):
    return (a - a.mean()) / (a.std(unbiased=unbiased) + 1e-8)


def _pg_objective_not_negated(new_logprobs, old_logprobs, advantages, clip_coef):
    return -ref.policy_loss(new_logprobs, old_logprobs, advantages, clip_coef)


def _pg_min(new_logprobs, old_logprobs, advantages, clip_coef):
    a, ratio = _normalise(advantages), (new_logprobs - old_logprobs).exp()
    return torch.min(-a * ratio, -a * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def _pg_clips_advantage(new_logprobs, old_logprobs, advantages, clip_coef):
    a, ratio = _normalise(advantages), (new_logprobs - old_logprobs).exp()
    return torch.max(-a * ratio, -a.clamp(1 - clip_coef, 1 + clip_coef) * ratio).mean()


def _pg_not_normalised(new_logprobs, old_logprobs, advantages, clip_coef):
    ratio = (new_logprobs - old_logprobs).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def _pg_ratio_inverted(new_logprobs, old_logprobs, advantages, clip_coef):
    return ref.policy_loss(old_logprobs, new_logprobs, advantages, clip_coef)


def _pg_biased_std(new_logprobs, old_logprobs, advantages, clip_coef):
    a, ratio = _normalise(advantages, unbiased=False), (new_logprobs - old_logprobs).exp()
    return torch.max(-a * ratio, -a * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def _pg_ratio_detached(new_logprobs, old_logprobs, advantages, clip_coef):
    a, ratio = _normalise(advantages), (new_logprobs - old_logprobs).exp().detach()
    return torch.max(-a * ratio, -a * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def _value_cases(gen):
    # Step 0: new 1 is 1 from old 0, so v_clipped = 0.2; (1 - 2)^2 = 1 < (0.2 - 2)^2 = 3.24, the max is 3.24 (no
    # gradient: the clipped value does not move with new). Step 1: new = old, (3 - 3.5)^2 = 0.25 both ways.
    # Loss 0.5 * (3.24 + 0.25) / 2 = 0.8725; gradient at step 1: 0.5 * 2 * (3 - 3.5) / 2 = -0.25 (torch.max gives
    # a tie's gradient half to each side: -0.125 + -0.125).
    yield Case((torch.tensor([1.0, 3.0]), torch.tensor([0.0, 3.0]), torch.tensor([2.0, 3.5]), 0.2),
               "one value clipped (worked by hand)", expected=(torch.tensor(0.8725), torch.tensor([0.0, -0.25])))  # fmt: skip
    # Inside the clip range the loss is half the squared error: 0.5 * ((0.1 - 1)^2 + (-0.1 + 1)^2) / 2 = 0.405.
    yield Case((torch.tensor([0.1, -0.1]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0]), 0.2),
               "within the clip range (worked by hand)", expected=(torch.tensor(0.405), torch.tensor([-0.45, 0.45])))  # fmt: skip
    for b, clip, spread in [(8, 0.2, 0.3), (64, 0.2, 1.0), (128, 0.5, 0.1)]:
        old = torch.randn(b, generator=gen) * 5
        new = old + torch.randn(b, generator=gen) * spread
        returns = old + torch.randn(b, generator=gen) * 2
        yield Case((new, old, returns, clip), f"random, batch {b}, clip {clip}")


def _vl_min(new_values, old_values, returns, clip_coef):
    clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
    return 0.5 * torch.min((new_values - returns) ** 2, (clipped - returns) ** 2).mean()


def _vl_clamps_values(new_values, old_values, returns, clip_coef):
    clipped = new_values.clamp(-clip_coef, clip_coef)
    return 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean()


def _vl_no_half(new_values, old_values, returns, clip_coef):
    return 2 * ref.value_loss(new_values, old_values, returns, clip_coef)


def _vl_unclipped(new_values, old_values, returns, clip_coef):
    return 0.5 * ((new_values - returns) ** 2).mean()


def _vl_clipped_only(new_values, old_values, returns, clip_coef):
    clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
    return 0.5 * ((clipped - returns) ** 2).mean()


def _total_cases(gen):
    # 0.5 + 0.5 * 2 - 0.01 * mean(0.6, 0.8) = 1.5 - 0.007 = 1.493.
    yield Case((torch.tensor(0.5), torch.tensor(2.0), torch.tensor([0.6, 0.8]), 0.5, 0.01), "worked by hand",
               expected=torch.tensor(1.493))  # fmt: skip
    # With no value or entropy weight the loss is the policy loss alone.
    yield Case((torch.tensor(-0.3), torch.tensor(5.0), torch.tensor([1.0]), 0.0, 0.0), "only the policy loss",
               expected=torch.tensor(-0.3))  # fmt: skip
    for b in [4, 64]:
        yield Case((torch.randn((), generator=gen), torch.rand((), generator=gen) * 3, torch.rand(b, generator=gen),
                    0.5, 0.1), f"random, batch {b}")  # fmt: skip


def _total_entropy_penalised(pg_loss, v_loss, entropy, vf_coef, ent_coef):
    return pg_loss + vf_coef * v_loss + ent_coef * entropy.mean()


def _total_entropy_summed(pg_loss, v_loss, entropy, vf_coef, ent_coef):
    return pg_loss + vf_coef * v_loss - ent_coef * entropy.sum()


def _total_coefficients_swapped(pg_loss, v_loss, entropy, vf_coef, ent_coef):
    return pg_loss + ent_coef * v_loss - vf_coef * entropy.mean()


def _lr_cases(gen):
    yield Case((0, 10, 1e-3), "the first update (worked by hand)", expected=1e-3)
    yield Case((9, 10, 1e-3), "the last update: 1e-3 / 10 (worked by hand)", expected=1e-4)
    yield Case((5, 10, 2.5e-4), "half way (worked by hand)", expected=1.25e-4)
    yield Case((0, 1, 0.01), "a single update", expected=0.01)
    yield Case((733, 976, 2.5e-4), "CleanRL's CartPole run, update 733 of 976")


def _lr_one_indexed(update, num_updates, initial_lr):
    return initial_lr * (1.0 - (update + 1) / num_updates)


def _lr_increasing(update, num_updates, initial_lr):
    return initial_lr * update / num_updates


def _lr_exponential(update, num_updates, initial_lr):
    return initial_lr * 0.99**update


# ----------------------------------------------------------------------------- the update


def _update_cases(gen):
    for T, N, obs_dim, n_actions, epochs, minibatches in [(8, 2, 4, 2, 2, 2), (16, 4, 6, 3, 3, 4), (4, 1, 2, 2, 1, 1)]:
        seed = int(torch.randint(0, 2**31, (1,), generator=gen))
        yield Case((seed, T, N, obs_dim, n_actions, epochs, minibatches),
                   f"{T} steps x {N} envs, {epochs} epochs of {minibatches} minibatches")  # fmt: skip


def _run_update(impl, case):
    seed, T, N, obs_dim, n_actions, epochs, minibatches = case.args
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    agent = ref.Agent(obs_dim, n_actions, hidden=16)
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-3, eps=1e-5)
    obs = torch.randn(T, N, obs_dim, generator=g)
    with torch.no_grad():
        logits, values = agent(obs)
    actions = torch.randint(0, n_actions, (T, N), generator=g)
    logprobs = logits.log_softmax(-1).gather(-1, actions[..., None])[..., 0] + 0.1 * torch.randn(T, N, generator=g)
    buffer = ref.RolloutBuffer(obs, actions, logprobs, values, torch.randn(T, N, generator=g),
                               (torch.rand(T, N, generator=g) < 0.1).float())  # fmt: skip
    advantages = torch.randn(T, N, generator=g)
    returns = advantages + values + torch.randn(T, N, generator=g)
    args = ref.PPOArgs(num_envs=N, num_steps=T, update_epochs=epochs, num_minibatches=minibatches, ent_coef=0.1)
    stats = impl(agent, optimizer, buffer, advantages, returns, args, np.random.default_rng(seed))
    params = {k: v.detach().clone() for k, v in agent.state_dict().items()}
    return params, stats


def _update_oracle(agent, optimizer, buffer, advantages, returns, args, rng, bugs=()):
    """The update written out inline, with no helpers; `bugs` switches on known mistakes."""
    b = buffer.obs.shape[0] * buffer.obs.shape[1]
    obs, actions = buffer.obs.reshape(b, -1), buffer.actions.reshape(b)
    old_logp, old_v = buffer.logprobs.reshape(b), buffer.values.reshape(b)
    adv_all, ret_all = advantages.reshape(b), returns.reshape(b)
    if "value target is the advantage" in bugs:
        ret_all = adv_all
    fixed = rng.permutation(b).reshape(-1, args.minibatch_size) if "same minibatches every epoch" in bugs else None
    for _ in range(args.update_epochs):
        order = fixed if "same minibatches every epoch" in bugs else rng.permutation(b).reshape(-1, args.minibatch_size)
        for mb in order:
            logits, v = agent(obs[mb])
            if "values from the buffer" in bugs:
                v = old_v[mb]
            logp_all = F.log_softmax(logits, -1)
            logp = logp_all.gather(1, actions[mb][:, None])[:, 0]
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            a = adv_all[mb]
            a = (a - a.mean()) / (a.std() + 1e-8)
            ratio = torch.exp(logp - old_logp[mb])
            pg = torch.mean(torch.maximum(-a * ratio, -a * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)))
            v_clip = old_v[mb] + torch.clamp(v - old_v[mb], -args.clip_coef, args.clip_coef)
            vl = 0.5 * torch.mean(torch.maximum((v - ret_all[mb]) ** 2, (v_clip - ret_all[mb]) ** 2))
            sign = 1.0 if "entropy penalised" in bugs else -1.0
            loss = pg + args.vf_coef * vl + sign * args.ent_coef * entropy.mean()
            if "gradients never zeroed" not in bugs:
                optimizer.zero_grad()
            loss.backward()
            if "gradient norm not clipped" not in bugs:
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()
    log_ratio = (logp - old_logp[mb]).detach()
    return {"policy_loss": pg.item(), "value_loss": vl.item(), "entropy": entropy.mean().item(),
            "approx_kl": (log_ratio.exp() - 1 - log_ratio).mean().item()}  # fmt: skip


def _update_with(*bugs):
    def update(agent, optimizer, buffer, advantages, returns, args, rng):
        return _update_oracle(agent, optimizer, buffer, advantages, returns, args, rng, bugs)

    return update


def _update_clip_after_step(agent, optimizer, buffer, advantages, returns, args, rng):
    obs, actions = buffer.obs.flatten(0, 1), buffer.actions.flatten()
    old_logprobs, old_values = buffer.logprobs.flatten(), buffer.values.flatten()
    advantages, returns = advantages.flatten(), returns.flatten()
    for _ in range(args.update_epochs):
        for mb in ref.minibatch_indices(rng, len(obs), args.minibatch_size):
            logits, new_values = agent(obs[mb])
            new_logprobs, entropy = ref.evaluate_actions(logits, actions[mb])
            pg = ref.policy_loss(new_logprobs, old_logprobs[mb], advantages[mb], args.clip_coef)
            vl = ref.value_loss(new_values, old_values[mb], returns[mb], args.clip_coef)
            optimizer.zero_grad()
            ref.total_loss(pg, vl, entropy, args.vf_coef, args.ent_coef).backward()
            optimizer.step()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
    log_ratio = (new_logprobs - old_logprobs[mb]).detach()
    return {"policy_loss": pg.item(), "value_loss": vl.item(), "entropy": entropy.mean().item(),
            "approx_kl": (log_ratio.exp() - 1 - log_ratio).mean().item()}  # fmt: skip


# ----------------------------------------------------------------------------- training


def _train_cases(gen):
    yield Case((ref.PPOArgs(total_timesteps=128, num_envs=2, num_steps=16, update_epochs=2, num_minibatches=2),),
               "CartPole, 4 updates of 2 envs x 16 steps")  # fmt: skip
    yield Case((ref.PPOArgs(env_id="Acrobot-v1", seed=3, total_timesteps=96, num_envs=3, num_steps=8,
                            num_minibatches=3, update_epochs=1, anneal_lr=False),), "Acrobot, no annealing")  # fmt: skip
    yield Case((ref.PPOArgs(env_id="MountainCar-v0", total_timesteps=64, num_envs=2, num_steps=16, learning_rate=1e-2,
                            update_epochs=2, num_minibatches=2, rescale_obs=True), _energy_shaping),
               "MountainCar with shaping and rescaled observations, 2 updates")  # fmt: skip
    yield Case((ref.PPOArgs(seed=5, total_timesteps=1024, num_envs=4, num_steps=32, update_epochs=1, num_minibatches=2,
                            target_return=15.0),), "CartPole, stops early at a mean return of 15")  # fmt: skip


def _energy_shaping(reward, obs, next_obs, terminated):
    """A plain function, not a partial, so that the harness's copy of the case compares equal to it."""
    return ref.shaped_reward(reward, obs, next_obs, terminated, 0.99, 300.0)


def _run_train(impl, case):
    agent, history = impl(dataclasses.replace(case.args[0]), *case.args[1:], progress=False)
    return {k: v.detach().clone() for k, v in agent.state_dict().items()}, {
        k: history[k] for k in ("return", "length", "step")
    }


def _train_oracle(args, shaping=None, progress=True, bugs=()):
    """The loop written as a while over environment steps; `bugs` switches on known mistakes."""
    torch.manual_seed(args.seed)
    envs, obs = ref.make_envs(args.env_id, args.num_envs, args.seed, shaping, args.rescale_obs)
    agent = ref.Agent(envs.single_observation_space.shape[0], envs.single_action_space.n, args.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    rng = np.random.default_rng(args.seed)
    history = {"return": [], "length": [], "step": [], "stats": []}
    steps, update = 0, 0
    while update < args.num_updates:
        if "rng re-seeded every update" in bugs:
            rng = np.random.default_rng(args.seed)
        if args.anneal_lr and "no annealing" not in bugs:
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * (1 - update / args.num_updates)
        buffer, obs, episodes = ref.collect_rollout(envs, agent, obs, args.num_steps)
        steps += args.batch_size
        with torch.no_grad():
            next_value = agent(obs)[1] * (0.0 if "no bootstrap at the end" in bugs else 1.0)
        adv = ref.compute_gae(buffer.rewards, buffer.values, buffer.dones, next_value, args.gamma, args.gae_lambda)
        returns = adv if "returns = advantages" in bugs else adv + buffer.values
        history["stats"].append(ref.ppo_update(agent, optimizer, buffer, adv, returns, args, rng))
        for r, length in episodes:
            history["return"].append(r), history["length"].append(length), history["step"].append(steps)
        update += 1
        last = history["return"][-20:]
        if args.target_return is not None and "never stops early" not in bugs:
            if len(last) == 20 and sum(last) / 20 >= args.target_return:
                break
    envs.close()
    return agent, history


def _train_with(*bugs):
    def train_ppo(args, shaping=None, progress=True):
        return _train_oracle(args, shaping, progress, bugs)

    return train_ppo


# ----------------------------------------------------------------------------- shaping (NumPy)


def _shaping_cases(gen):
    # scale 3000, x = -pi/6 (sin 3x = -1), v = 0: phi = 3000 * (-0.0025 / 3) = -2.5. Next v = 0.02 at the same x:
    # phi' = 3000 * 0.5 * 0.0004 - 2.5 = -1.9. Shaped: -1 + 0.9 * (-1.9) + 2.5 = -0.21.
    x0 = -math.pi / 6
    yield Case((-1.0, torch.tensor([x0, 0.0]), torch.tensor([x0, 0.02]), False, 0.9, 3000.0),
               "gaining speed at the bottom (worked by hand)", expected=torch.tensor(-0.21, dtype=torch.float64))  # fmt: skip
    # Terminated: phi' = 0, so -1 + 0 + 2.5 = 1.5.
    yield Case((-1.0, torch.tensor([x0, 0.0]), torch.tensor([math.pi / 6, 0.02]), True, 0.9, 3000.0),
               "a terminal step (worked by hand)", expected=torch.tensor(1.5, dtype=torch.float64))  # fmt: skip
    # At x = 0 the potential energy is 0 and at rest the kinetic energy too: the reward is unchanged.
    yield Case((-1.0, torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]), False, 0.99, 100.0), "at rest at x = 0",
               expected=torch.tensor(-1.0, dtype=torch.float64))  # fmt: skip
    for i in range(4):
        obs = torch.stack([torch.rand(2, generator=gen) * 1.8 - 1.2, (torch.rand(2, generator=gen) - 0.5) * 0.14])
        obs = obs.T.double()
        yield Case((-1.0, obs[0], obs[1], i == 3, 0.99, [100.0, 1000.0, 3000.0, 500.0][i]), f"random states {i}")
    batch = torch.rand(5, 2, generator=gen).double() * 0.1 - 0.5
    yield Case((-1.0, batch, batch.flip(0), False, 0.99, 1000.0), "a batch of 5 transitions")


def _run_shaping(impl, case):
    args = [a.numpy() if isinstance(a, torch.Tensor) else a for a in case.args]
    out = impl(*args)
    return (
        torch.as_tensor(np.asarray(out, dtype=np.float64)) if isinstance(out, (float, np.ndarray, np.floating)) else out
    )


def _shaping(reward, obs, next_obs, terminated, gamma, scale, height=False, no_gamma=False, no_half=False,
             terminal_kept=False, reversed_=False):  # fmt: skip
    def phi(o):
        kinetic = (1.0 if no_half else 0.5) * o[..., 1] ** 2
        potential = 0.45 * np.sin(3 * o[..., 0]) + 0.55 if height else 0.0025 / 3 * np.sin(3 * o[..., 0])
        return scale * (kinetic + potential)

    g = 1.0 if no_gamma else gamma
    end = 1.0 if terminal_kept else 1.0 - terminated
    if reversed_:
        return reward + phi(obs) - g * phi(next_obs) * end
    return reward + g * phi(next_obs) * end - phi(obs)


def _shaping_with(**bug):
    def shaped_reward(reward, obs, next_obs, terminated, gamma, scale):
        return _shaping(reward, obs, next_obs, terminated, gamma, scale, **bug)

    return shaped_reward


# ----------------------------------------------------------------------------- the checker


check = Checker(
    "2.3",
    [
        Exercise(
            ref.layer_init, _init_cases, run=_run_init,
            hint="torch.nn.init has an orthogonal initialiser that takes a gain, and a constant one for the bias; "
                 "change the layer in place and return the same layer.",
            wrong={"Xavier (Glorot) initialisation, not orthogonal": _init_xavier,
                   "orthogonal without the gain std": _init_no_gain, "the gain squared": _init_gain_squared,
                   "the bias left at PyTorch's default": _init_bias_untouched,
                   "the layer is not returned": _init_returns_nothing},
        ),
        Exercise(
            ref.Agent, _agent_cases, extra=_agent_extra, oracle=_AgentOracle,
            hint="Two separate nn.Sequentials named critic and actor, Linear/Tanh/Linear/Tanh/Linear, every Linear "
                 "through layer_init (std 1 for the critic's last, 0.01 for the actor's last); the value is one number "
                 "per observation, so drop the last dimension.",
            wrong={"ReLU instead of Tanh": _AgentRelu, "the value keeps its trailing dimension of 1": _AgentValueNotSqueezed,
                   "probabilities returned instead of logits": _AgentProbabilities,
                   "the actor's output layer initialised with std sqrt(2), not 0.01": _AgentActorStdSqrt2,
                   "PyTorch's default initialisation (layer_init not used)": _AgentDefaultInit},
        ),
        Exercise(
            ref.evaluate_actions, _evaluate_cases,
            hint="A categorical distribution over the last dimension of the logits: normalise them (log-softmax) "
                 "before picking the taken action's entry; entropy is minus the sum of p log p.",
            wrong={"softmax over the batch (dim 0), not the actions": _evaluate_softmax_over_batch,
                   "raw logits as log-probabilities": _evaluate_raw_logits,
                   "entropy with the wrong sign": _evaluate_entropy_sign,
                   "probabilities, not log-probabilities": _evaluate_probability},
        ),
        Exercise(
            ref.collect_rollout, _rollout_cases, run=_run_rollout, oracle=_rollout_oracle,
            hint="Store obs[t] before stepping; one Categorical(logits=...).sample() per step under torch.no_grad(); "
                 "dones are terminated OR truncated; an episode's statistics are in info['episode'] only for the envs "
                 "marked in info['_episode'].",
            wrong={"obs[t] stored after stepping (the next observation)": _rollout_wrapped(obs_after=True),
                   "truncation not counted as an end": _rollout_wrapped(terminated_only=True),
                   "greedy actions, not sampled": _rollout_wrapped(greedy=True),
                   "probabilities stored, not log-probabilities": _rollout_wrapped(probs=True),
                   "episode statistics read without the info['_episode'] mask": _rollout_wrapped(no_mask=True)},
        ),
        Exercise(
            ref.compute_gae, _gae_cases,
            hint="Go backwards from the last step, carrying one advantage per env. At the last step the next value "
                 "is next_value; after a step that ended an episode, neither the next value nor the carried "
                 "advantage may flow back.",
            wrong={"the carried advantage is not reset where an episode ended": _gae_trace_not_reset,
                   "dones ignored": _gae_dones_ignored,
                   "next_value not used at the last step (bootstraps from 0)": _gae_no_bootstrap,
                   "dones off by one (dones[t + 1] used for step t)": _gae_dones_shifted,
                   "lambda left out of the recursion": _gae_no_lambda,
                   "returns (advantages + values), not advantages": _gae_returns_not_advantages},
        ),
        Exercise(
            ref.minibatch_indices, _minibatch_cases, run=_run_minibatches,
            hint="One permutation from the given rng per call (a new one each epoch), cut into rows; every index "
                 "appears exactly once.",
            wrong={"no shuffling": _mb_in_order, "indices drawn with replacement": _mb_with_replacement,
                   "a fresh permutation for every minibatch": _mb_fresh_permutation_each,
                   "a new generator with a fixed seed (every epoch the same)": _mb_fixed_seed,
                   "reshaped to (minibatch_size, -1) and transposed": _mb_transposed},
        ),
        Exercise(
            ref.policy_loss, _policy_cases, run=_run_with_grad,
            hint="Normalise the advantages first; the ratio is exp of the log-ratio; clip the ratio, not the "
                 "advantage; as a loss (negated), take the larger of the two terms, then the mean.",
            wrong={"the objective, not the loss (sign)": _pg_objective_not_negated,
                   "min instead of max of the negated terms": _pg_min,
                   "the advantage clipped instead of the ratio": _pg_clips_advantage,
                   "advantages not normalised": _pg_not_normalised,
                   "ratio exp(old - new)": _pg_ratio_inverted,
                   "biased std (unbiased=False) in the normalisation": _pg_biased_std,
                   "the ratio detached (no gradient)": _pg_ratio_detached},
        ),
        Exercise(
            ref.value_loss, _value_cases, run=_run_with_grad,
            hint="Clip how far the new value moves from the old one, not the value itself; take the larger of "
                 "the two squared errors, then 0.5 times the mean.",
            wrong={"min instead of max": _vl_min, "the value clamped to [-clip, clip]": _vl_clamps_values,
                   "no factor 0.5": _vl_no_half, "no clipping": _vl_unclipped,
                   "only the clipped error": _vl_clipped_only},
        ),
        Exercise(
            ref.total_loss, _total_cases,
            hint="Minimising the loss should raise the entropy; the value loss is weighted by vf_coef; the "
                 "entropy is averaged over the minibatch.",
            wrong={"the entropy penalised instead of rewarded": _total_entropy_penalised,
                   "entropy summed, not averaged": _total_entropy_summed,
                   "vf_coef and ent_coef swapped": _total_coefficients_swapped},
        ),
        Exercise(
            ref.annealed_lr, _lr_cases,
            hint="Update 0 gets initial_lr; the fraction left falls by 1 / num_updates per update.",
            wrong={"1-indexed fraction (update + 1) with 0-indexed updates": _lr_one_indexed,
                   "rising instead of falling": _lr_increasing, "exponential decay": _lr_exponential},
        ),
        Exercise(
            ref.ppo_update, _update_cases, run=_run_update, oracle=_update_oracle, atol=1e-4,
            hint="Flatten [step, env] into one batch; new minibatch indices each epoch; for each minibatch: the "
                 "agent's new logits and values, the three losses, zero_grad, backward, clip_grad_norm_, step.",
            wrong={"gradients never zeroed": _update_with("gradients never zeroed"),
                   "gradient norm not clipped": _update_with("gradient norm not clipped"),
                   "the gradient clipped after the step": _update_clip_after_step,
                   "the same minibatches every epoch": _update_with("same minibatches every epoch"),
                   "the value loss against the advantages, not the returns": _update_with("value target is the advantage"),
                   "the values from the buffer, not recomputed": _update_with("values from the buffer"),
                   "the entropy penalised": _update_with("entropy penalised")},
        ),
        Exercise(
            ref.train_ppo, _train_cases, run=_run_train, oracle=_train_oracle, atol=1e-4,
            hint="Seed torch before building the envs and the agent; one np.random.default_rng(args.seed) for the "
                 "whole run; per update: the learning rate, a rollout, the next value without gradients, GAE, "
                 "returns = advantages + values, the update; then the early stop.",
            wrong={"the learning rate never annealed": _train_with("no annealing"),
                   "next_value 0 at the end of each rollout": _train_with("no bootstrap at the end"),
                   "returns = advantages (values not added)": _train_with("returns = advantages"),
                   "the minibatch rng re-seeded every update": _train_with("rng re-seeded every update"),
                   "no early stop at target_return": _train_with("never stops early")},
        ),
        Exercise(
            ref.shaped_reward, _shaping_cases, run=_run_shaping, arrays=True,
            hint="The potential is the mechanical energy per unit mass: kinetic plus the potential energy whose "
                 "slope is the environment's gravity term; shaping adds gamma phi(next) - phi(now), with phi 0 "
                 "after termination.",
            wrong={"the rendered height 0.45 sin(3x) + 0.55 as potential energy": _shaping_with(height=True),
                   "gamma left out": _shaping_with(no_gamma=True), "kinetic energy without the 1/2": _shaping_with(no_half=True),
                   "phi not zeroed at a terminal state": _shaping_with(terminal_kept=True),
                   "phi(now) - gamma phi(next) (sign reversed)": _shaping_with(reversed_=True)},
        ),
    ],
)  # fmt: skip
