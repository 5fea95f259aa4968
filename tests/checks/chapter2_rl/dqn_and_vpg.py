"""Checks for 2.2 DQN and VPG.

The deterministic pieces (the network's shape, the epsilon schedule, epsilon-greedy with a seeded
generator, the replay buffer's slots and seeded samples, TD targets, the DQN loss and its gradient,
target updates, returns-to-go, normalisation, the policy-gradient loss and its gradient) are compared
on seeded inputs, each with cases worked by hand in the comments. The two training loops are checked
on probe environments whose true values are known in closed form (after Andy Jones, *Debugging RL,
Without the Agonizing Pain*, 2021): each is trained from a fixed seed for a few hundred steps and its
values (or action probabilities) must land within 0.1 of the known ones. Learning curves are never
compared.
"""

import contextlib
import dataclasses
import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.chapter2_rl import dqn_and_vpg as ref
from tests.harness import Case, Checker, Exercise, Mismatch, compare, describe

# ----------------------------------------------------------------------------- the Q-network


def _qnet_cases(gen):
    for init, shape in [((4, 2), (5, 4)), ((4, 2, (120, 84)), (4,)), ((1, 1, (16,)), (7, 1)),
                        ((3, 5, (8, 8, 8)), (2, 3, 3)), ((6, 3, ()), (10, 6))]:  # fmt: skip
        yield Case((torch.randn(shape, generator=gen) * 2,), f"QNetwork{init} on a batch of shape {shape}", init=init)


class _QNetworkOracle(nn.Module):
    """The same network written without nn.Sequential's forward: each Linear applied in turn, ReLU between."""

    def __init__(self, obs_dim, n_actions, hidden=(120, 84)):
        super().__init__()
        widths = [obs_dim, *hidden, n_actions]
        modules = []
        for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
            modules.append(nn.Linear(fan_in, fan_out))
            if i < len(widths) - 2:
                modules.append(nn.ReLU())
        self.network = nn.Sequential(*modules)

    def forward(self, obs):
        linears = [m for m in self.network if isinstance(m, nn.Linear)]
        x = obs
        for i, linear in enumerate(linears):
            x = x @ linear.weight.T + linear.bias
            x = x.clamp(min=0) if i < len(linears) - 1 else x
        return x


class _QNetworkReluOnOutput(ref.QNetwork):
    def forward(self, obs):
        return F.relu(self.network(obs))


class _QNetworkSoftmaxOnOutput(ref.QNetwork):
    def forward(self, obs):
        return self.network(obs).softmax(-1)


class _QNetworkTanh(ref.QNetwork):
    def __init__(self, obs_dim, n_actions, hidden=(120, 84)):
        super().__init__(obs_dim, n_actions, hidden)
        for i, module in enumerate(self.network):
            if isinstance(module, nn.ReLU):
                self.network[i] = nn.Tanh()


class _QNetworkNoActivations(nn.Module):
    def __init__(self, obs_dim, n_actions, hidden=(120, 84)):
        super().__init__()
        widths = [obs_dim, *hidden, n_actions]
        self.network = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(widths, widths[1:])])

    def forward(self, obs):
        return self.network(obs)


# ----------------------------------------------------------------------------- exploration


def _schedule_cases(gen):
    # From 1 to 0.05 over 100 steps: a slope of -0.0095 per step, so 0.525 halfway; 0.05 from step 100 on.
    for step, expected in [(0, 1.0), (50, 0.525), (100, 0.05), (250, 0.05)]:
        yield Case((step, 1.0, 0.05, 100), f"step {step} of a 100-step decay (worked by hand)", expected=expected)
    # From 0.5 to 0.1 over 8 steps: 0.05 per step, 0.3 at step 4.
    yield Case((4, 0.5, 0.1, 8), "step 4 of an 8-step decay (worked by hand)", expected=0.3)
    for i in range(6):
        duration = int(torch.randint(10, 10_000, (1,), generator=gen))
        step = int(torch.randint(0, 2 * duration, (1,), generator=gen))
        start, end = 1.0 - 0.1 * i, 0.01 * (i + 1)
        yield Case((step, start, end, duration), f"random: step {step} of {duration}")


def _schedule_unclamped(step, start_e, end_e, duration):
    return start_e + (end_e - start_e) / duration * step


def _schedule_to_zero(step, start_e, end_e, duration):
    return max(start_e - start_e / duration * step, end_e)


def _schedule_min(step, start_e, end_e, duration):
    return min(start_e + (end_e - start_e) / duration * step, end_e)


def _schedule_rises(step, start_e, end_e, duration):
    return min(end_e + (start_e - end_e) / duration * step, start_e)


def _net_from_bias(obs_dim, bias):
    """A QNetwork with one Linear layer, zero weights and the given bias: Q(obs, a) = bias[a] for every obs."""
    net = ref.QNetwork(obs_dim, len(bias), ())
    with torch.no_grad():
        net.network[0].weight.zero_()
        net.network[0].bias.copy_(torch.tensor(bias))
    return net


def _seeded_net(obs_dim, n_actions, seed, hidden=(8,)):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ref.QNetwork(obs_dim, n_actions, hidden)


def _run_epsilon_greedy(impl, case):
    """Call impl once per observation, with one generator for the whole sequence; the actions, as a tensor."""
    observations, epsilon, n_actions, rng_seed, net = case.args
    q_network = (
        _net_from_bias(observations.shape[1], net)
        if isinstance(net, list)
        else _seeded_net(observations.shape[1], n_actions, net)
    )
    rng = np.random.default_rng(rng_seed)
    actions = []
    for obs in observations.cpu().numpy():
        action = impl(q_network, obs, epsilon, n_actions, rng)
        if not isinstance(action, (int, np.integer)) or isinstance(action, bool):
            raise Mismatch(f"epsilon_greedy returned {describe(action)}; expected a plain int (use int(...))")
        actions.append(int(action))
    return torch.tensor(actions)


def _epsilon_greedy_cases(gen):
    obs = torch.randn(20, 3, generator=gen)
    # Q = (0, 0.5, 1, -1) everywhere: greedy always picks action 2.
    yield Case((obs, 0.0, 4, 0, [0.0, 0.5, 1.0, -1.0]), "epsilon 0, action 2 best everywhere (worked by hand)",
               expected=torch.full((20,), 2))  # fmt: skip
    # Q = (1, 1, 0): a tie between actions 0 and 1 goes to 0.
    yield Case((obs, 0.0, 3, 0, [1.0, 1.0, 0.0]), "epsilon 0, a tie between actions 0 and 1 (worked by hand)",
               expected=torch.zeros(20, dtype=torch.int64))  # fmt: skip
    rng = np.random.default_rng(3)
    # Epsilon 1 explores every time: each action is rng.integers(3) right after an rng.random() draw.
    expected = []
    for _ in range(20):
        rng.random()
        expected.append(int(rng.integers(3)))
    yield Case((obs, 1.0, 3, 3, [5.0, 0.0, 0.0]), "epsilon 1: always random", expected=torch.tensor(expected))
    for epsilon, n_actions in [(0.3, 2), (0.5, 4), (0.9, 3), (0.05, 6)]:
        obs = torch.randn(60, 4, generator=gen)
        seed = int(torch.randint(0, 2**31, (1,), generator=gen))
        yield Case((obs, epsilon, n_actions, seed, seed % 1000), f"a random network, epsilon {epsilon}")


def _eg_inverted(q_network, obs, epsilon, n_actions, rng):
    if rng.random() > epsilon:
        return int(rng.integers(n_actions))
    with torch.no_grad():
        return int(q_network(torch.as_tensor(obs, dtype=torch.float32)).argmax())


def _eg_misses_last_action(q_network, obs, epsilon, n_actions, rng):
    if rng.random() < epsilon:
        return int(rng.integers(n_actions - 1))
    with torch.no_grad():
        return int(q_network(torch.as_tensor(obs, dtype=torch.float32)).argmax())


def _eg_argmin(q_network, obs, epsilon, n_actions, rng):
    if rng.random() < epsilon:
        return int(rng.integers(n_actions))
    with torch.no_grad():
        return int(q_network(torch.as_tensor(obs, dtype=torch.float32)).argmin())


# ----------------------------------------------------------------------------- the replay buffer


def _transition(i, obs_dim=1):
    """Transition i of the worked case; observations are tensors here (the harness watches them for in-place
    edits) and arrays when handed to the buffer."""
    return (torch.full((obs_dim,), float(i)), i % 2, float(i), torch.full((obs_dim,), i + 1.0), i == 4)


def _samples(obs, actions, rewards, next_obs, terminated):
    return ref.ReplayBufferSamples(
        obs=torch.tensor(obs, dtype=torch.float32)[:, None],
        actions=torch.tensor(actions, dtype=torch.int64),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        next_obs=torch.tensor(next_obs, dtype=torch.float32)[:, None],
        terminated=torch.tensor(terminated, dtype=torch.float32),
    )


def _buffer_cases(gen):
    # Capacity 3, seed 2. Transition i has obs i, action i % 2, reward i, next_obs i + 1, terminated iff i == 4.
    # np.random.default_rng(2).integers(2, size=3) is [1, 0, 0]; the next integers(3, size=4) is [0, 1, 2, 1].
    # After 2 adds the slots hold t0, t1, so the first sample is t1, t0, t0. After 5 adds t3 and t4 have
    # overwritten slots 0 and 1 (the oldest first): slots hold t3, t4, t2, so the second sample is t3, t4, t2, t4.
    script = [("add", _transition(0)), ("add", _transition(1)), ("sample", 3)]
    script += [("add", _transition(i)) for i in (2, 3, 4)] + [("sample", 4)]
    expected = [1, 2, _samples([1, 0, 0], [1, 0, 0], [1, 0, 0], [2, 1, 1], [0, 0, 0]), 3, 3, 3,
                _samples([3, 4, 2, 4], [1, 0, 0, 0], [3, 4, 2, 4], [4, 5, 3, 5], [0, 1, 0, 1])]  # fmt: skip
    yield Case((3, 1, 2, script), "capacity 3: 2 adds, a sample, 3 more adds (wrapping round), a sample "
               "(worked by hand)", expected=expected)  # fmt: skip
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    for capacity, obs_dim, n_adds in [(10, 4, 7), (10, 4, 25), (64, 3, 200), (1, 2, 5)]:
        script = []
        for i in range(n_adds):
            transition = (torch.from_numpy(rng.normal(size=obs_dim).astype(np.float32)), int(rng.integers(3)), float(rng.normal()),
                          torch.from_numpy(rng.normal(size=obs_dim).astype(np.float32)), bool(rng.random() < 0.2))  # fmt: skip
            script.append(("add", transition))
            if i % 3 == 2:
                script.append(("sample", int(rng.integers(1, 9))))
        seed = int(rng.integers(1000))
        yield Case((capacity, obs_dim, seed, script), f"capacity {capacity}, {n_adds} adds with samples between")


def _run_buffer(impl, case):
    """Run the script of adds and samples; after each add the buffer's len, after each sample the batch."""
    capacity, obs_dim, seed, script = case.args
    buffer = impl(capacity, obs_dim, seed)
    results = []
    for op, arg in script:
        if op == "add":
            obs, action, reward, next_obs, terminated = arg
            buffer.add(obs.cpu().numpy(), action, reward, next_obs.cpu().numpy(), terminated)
            results.append(len(buffer))
        else:
            results.append(buffer.sample(arg))
    return results


class _BufferNoWraparound(ref.ReplayBuffer):
    def add(self, obs, action, reward, next_obs, terminated):
        i = self.position
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.position += 1
        self.size = min(self.size + 1, self.capacity)


class _BufferSamplesEmptySlots(ref.ReplayBuffer):
    def sample(self, batch_size):
        self.size, size = self.capacity, self.size
        try:
            return super().sample(batch_size)
        finally:
            self.size = size


class _BufferSamplesNewest(ref.ReplayBuffer):
    def sample(self, batch_size):
        self.rng.integers(self.size, size=batch_size)
        i = (self.position - 1 - np.arange(batch_size)) % self.size
        return ref.ReplayBufferSamples(*(torch.from_numpy(a[i]) for a in (self.obs, self.actions, self.rewards,
                                                                          self.next_obs, self.terminated)))  # fmt: skip


class _BufferOverwritesNewest(ref.ReplayBuffer):
    def add(self, obs, action, reward, next_obs, terminated):
        super().add(obs, action, reward, next_obs, terminated)
        if self.size == self.capacity:
            self.position = self.capacity - 1


# ----------------------------------------------------------------------------- the TD target and the loss


def _td_cases(gen):
    # Step 0: 1 + 0.9 * max(0.5, 3) = 3.7. Step 1 terminated: just its reward, 2.
    yield Case((torch.tensor([1.0, 2.0]), torch.tensor([[0.5, 3.0], [4.0, -1.0]]), torch.tensor([0.0, 1.0]), 0.9),
               "two steps, the second terminated (worked by hand)", expected=torch.tensor([3.7, 2.0]))  # fmt: skip
    # All negative values: -1 + 0.5 * max(-4, -2) = -2; with gamma 0 the target is the reward.
    yield Case((torch.tensor([-1.0]), torch.tensor([[-4.0, -2.0]]), torch.tensor([0.0]), 0.5),
               "negative values (worked by hand)", expected=torch.tensor([-2.0]))  # fmt: skip
    yield Case((torch.tensor([0.5, 0.5]), torch.tensor([[9.0], [1.0]]), torch.tensor([0.0, 0.0]), 0.0),
               "gamma 0 (worked by hand)", expected=torch.tensor([0.5, 0.5]))  # fmt: skip
    for batch, n_actions in [(8, 2), (32, 4), (128, 6)]:
        terminated = (torch.rand(batch, generator=gen) < 0.3).float()
        yield Case((torch.randn(batch, generator=gen), torch.randn(batch, n_actions, generator=gen) * 3, terminated,
                    0.99), f"random, batch {batch}, {n_actions} actions")  # fmt: skip


def _td_bootstraps_through_termination(rewards, next_q_values, terminated, gamma):
    return rewards + gamma * next_q_values.max(dim=-1).values


def _td_mean_over_actions(rewards, next_q_values, terminated, gamma):
    return rewards + gamma * next_q_values.mean(dim=-1) * (1 - terminated)


def _td_masks_the_reward_too(rewards, next_q_values, terminated, gamma):
    return (rewards + gamma * next_q_values.max(dim=-1).values) * (1 - terminated)


def _td_mask_inverted(rewards, next_q_values, terminated, gamma):
    return rewards + gamma * next_q_values.max(dim=-1).values * terminated


def _td_discounts_the_reward(rewards, next_q_values, terminated, gamma):
    return gamma * (rewards + next_q_values.max(dim=-1).values * (1 - terminated))


def _linear_net(weight, bias):
    """QNetwork(1, len(bias), ()): one Linear layer with the given weights, so values can be worked by hand."""
    net = ref.QNetwork(1, len(bias), ())
    with torch.no_grad():
        net.network[0].weight.copy_(torch.tensor(weight)[:, None])
        net.network[0].bias.copy_(torch.tensor(bias))
    return net


def _loss_cases(gen):
    # q_network: Q(s) = (s, 2s); target: Q'(s) = (0.5, s). Batch: (s=1, a=0, r=1, s'=1, not terminated) and
    # (s=2, a=1, r=-1, s'=3, terminated), gamma 0.5. Q(s, a) = 1 and 4; targets 1 + 0.5 * max(0.5, 1) = 1.5 and -1.
    # Loss ((1 - 1.5)^2 + (4 + 1)^2) / 2 = 12.625. dL/dQ = (-0.5, 5), so the weight's gradient is
    # (-0.5 * 1, 5 * 2) = (-0.5, 10) and the bias's (-0.5, 5).
    batch = _samples([1, 2], [0, 1], [1, -1], [1, 3], [0, 1])
    spec = ("linear", [1.0, 2.0], [0.0, 0.0], [0.0, 1.0], [0.5, 0.0])
    yield Case((spec, batch, 0.5), "one-layer networks (worked by hand)",
               expected=(torch.tensor(12.625), torch.tensor([-0.5, 10.0, -0.5, 5.0])))  # fmt: skip
    for batch_size, obs_dim, n_actions in [(8, 4, 2), (32, 3, 4), (128, 4, 2)]:
        done = (torch.rand(batch_size, generator=gen) < 0.3).float()
        batch = ref.ReplayBufferSamples(
            obs=torch.randn(batch_size, obs_dim, generator=gen),
            actions=torch.randint(0, n_actions, (batch_size,), generator=gen),
            rewards=torch.randn(batch_size, generator=gen) * 2,
            next_obs=torch.randn(batch_size, obs_dim, generator=gen),
            terminated=done,
        )
        seed = int(torch.randint(0, 1000, (1,), generator=gen))
        yield Case((("seeded", obs_dim, n_actions, seed), batch, 0.99), f"random batch of {batch_size}, {n_actions} "
                   "actions, different online and target networks")  # fmt: skip


def _loss_networks(spec):
    if spec[0] == "linear":
        return _linear_net(spec[1], spec[2]), _linear_net(spec[3], spec[4])
    _, obs_dim, n_actions, seed = spec
    return _seeded_net(obs_dim, n_actions, seed, (16,)), _seeded_net(obs_dim, n_actions, seed + 1, (16,))


def _run_loss(impl, case):
    """The loss and the gradient it gives q_network's parameters (flattened)."""
    spec, batch, gamma = case.args
    q_network, target_network = _loss_networks(spec)
    loss = impl(q_network, target_network, batch, gamma)
    if not isinstance(loss, torch.Tensor) or loss.shape != ():
        raise Mismatch(f"dqn_loss returned {describe(loss)}; expected a scalar tensor (shape ())")
    if not loss.requires_grad:
        raise Mismatch("the loss has no gradient: q_network's values must not be computed under torch.no_grad()")
    loss.backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in q_network.parameters()]
    return loss.detach(), torch.cat([g.flatten() for g in grads])


def _loss_online_targets(q_network, target_network, batch, gamma):
    with torch.no_grad():
        target = ref.td_target(batch.rewards, q_network(batch.next_obs), batch.terminated, gamma)
    return F.mse_loss(q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1), target)


def _loss_best_not_taken(q_network, target_network, batch, gamma):
    with torch.no_grad():
        target = ref.td_target(batch.rewards, target_network(batch.next_obs), batch.terminated, gamma)
    return F.mse_loss(q_network(batch.obs).max(dim=1).values, target)


def _loss_huber(q_network, target_network, batch, gamma):
    with torch.no_grad():
        target = ref.td_target(batch.rewards, target_network(batch.next_obs), batch.terminated, gamma)
    return F.smooth_l1_loss(q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1), target)


def _loss_sum(q_network, target_network, batch, gamma):
    with torch.no_grad():
        target = ref.td_target(batch.rewards, target_network(batch.next_obs), batch.terminated, gamma)
    return F.mse_loss(q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1), target, reduction="sum")


def _loss_no_termination(q_network, target_network, batch, gamma):
    with torch.no_grad():
        target = batch.rewards + gamma * target_network(batch.next_obs).max(dim=1).values
    return F.mse_loss(q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1), target)


def _update_cases(gen):
    # One-layer networks QNetwork(1, 1, ()): target (weight 0, bias 4), online (weight 2, bias 0), tau 0.25:
    # weight 0.25 * 2 + 0.75 * 0 = 0.5, bias 0.25 * 0 + 0.75 * 4 = 3. The online network stays (2, 0).
    yield Case((1, 1, (), torch.tensor([0.0, 4.0]), torch.tensor([2.0, 0.0]), 0.25), "one weight and one bias "
               "(worked by hand)", expected=(torch.tensor([0.5, 3.0]), torch.tensor([2.0, 0.0])))  # fmt: skip
    target, online = _seeded_net(4, 2, 0, (8,)), _seeded_net(4, 2, 1, (8,))
    flat_target = nn.utils.parameters_to_vector(target.parameters()).detach()
    flat_online = nn.utils.parameters_to_vector(online.parameters()).detach()
    # tau 1 copies the online network; tau 0 leaves the target as it was.
    yield Case((4, 2, (8,), flat_target, flat_online, 1.0), "tau 1: a hard copy", expected=(flat_online, flat_online))
    yield Case((4, 2, (8,), flat_target, flat_online, 0.0), "tau 0: no change", expected=(flat_target, flat_online))
    for tau in [0.005, 0.3, 0.9]:
        target, online = _seeded_net(3, 4, int(tau * 1000), (16, 8)), _seeded_net(3, 4, 7, (16, 8))
        flat_target = nn.utils.parameters_to_vector(target.parameters()).detach()
        flat_online = nn.utils.parameters_to_vector(online.parameters()).detach()
        yield Case((3, 4, (16, 8), flat_target, flat_online, tau), f"random networks, tau {tau}")


def _run_update(impl, case):
    """Both networks' parameters (flattened) after the update: (target, online)."""
    obs_dim, n_actions, hidden, flat_target, flat_online, tau = case.args
    target, online = ref.QNetwork(obs_dim, n_actions, hidden), ref.QNetwork(obs_dim, n_actions, hidden)
    nn.utils.vector_to_parameters(flat_target.clone(), target.parameters())
    nn.utils.vector_to_parameters(flat_online.clone(), online.parameters())
    result = impl(target, online, tau)
    if result is not None:
        raise Mismatch(f"update_target_network returned {describe(result)}; it should change target_network in "
                       "place and return None")  # fmt: skip
    flat = [nn.utils.parameters_to_vector(net.parameters()).detach() for net in (target, online)]
    return tuple(flat)


def _update_the_online_network(target_network, q_network, tau):
    ref.update_target_network(q_network, target_network, tau)


def _update_tau_swapped(target_network, q_network, tau):
    ref.update_target_network(target_network, q_network, 1 - tau)


def _update_hard_copy(target_network, q_network, tau):
    target_network.load_state_dict(q_network.state_dict())


def _update_rebinds_a_name(target_network, q_network, tau):
    for target_param, param in zip(target_network.parameters(), q_network.parameters()):
        target_param = tau * param + (1 - tau) * target_param  # noqa: F841 (the mistake: a new tensor, not an update)


# ----------------------------------------------------------------------------- probe 5


def _probe5_cases(gen):
    # The four (observation, action) pairs and their outcomes: reward +1 when the action matches the
    # observation's sign, one step, terminated and not truncated, the observation unchanged by step.
    table = torch.tensor([[-1.0, 0, 1, 1, 0, -1], [-1, 1, -1, 1, 0, -1], [1, 0, -1, 1, 0, 1], [1, 1, 1, 1, 0, 1]])
    expected = {"outcomes": table, "observation": "ndarray float32 (1,)", "n_actions": 2, "reset is seeded": True}
    yield Case((list(range(40)),), "40 episodes, actions 0, 1, 0, 1, ... (worked by hand)", expected=expected)
    yield Case((list(range(1000, 1060, 2)),), "30 episodes, other seeds", expected=expected)


def _run_probe5(impl, case):
    """The distinct (obs, action, reward, terminated, truncated, next obs) rows seen over episodes reset
    with the given seeds, the type of the observation, the number of actions and whether a seed
    reproduces its observation."""
    (seeds,) = case.args
    env = impl()
    rows, kinds = set(), set()
    for i, seed in enumerate(seeds):
        obs, _ = env.reset(seed=seed)
        kinds.add(f"{type(obs).__name__} {getattr(obs, 'dtype', '')} {getattr(obs, 'shape', '')}")
        action = i % 2
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.add((float(np.asarray(obs).flat[0]), action, float(reward), float(terminated), float(truncated),
                  float(np.asarray(next_obs).flat[0])))  # fmt: skip
    fresh = impl()
    again = [np.asarray(env.reset(seed=seed)[0]).tolist() for seed in seeds[:20]]
    first = [np.asarray(fresh.reset(seed=seed)[0]).tolist() for seed in seeds[:20]]
    return {
        "outcomes": torch.tensor(sorted(rows)),
        "observation": " | ".join(sorted(kinds)),
        "n_actions": int(env.action_space.n),
        "reset is seeded": again == first,
    }


class _Probe5RewardReversed(ref.Probe5):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, -reward, terminated, truncated, info


class _Probe5NeverTerminates(ref.Probe5):
    def step(self, action):
        obs, reward, _, _, info = super().step(action)
        return obs, reward, False, True, info


class _Probe5PlainFloat(ref.Probe5):
    def reset(self, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return np.array(obs, dtype=np.float64), info


class _Probe5AlwaysPositive(ref.Probe5):
    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.value = 1.0
        return np.array([1.0], dtype=np.float32), {}


class _Probe5UnseededRandom(ref.Probe5):
    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.value = 1.0 if np.random.default_rng().random() < 0.5 else -1.0
        return np.array([self.value], dtype=np.float32), {}


# ----------------------------------------------------------------------------- DQN on the probes

# A few hundred steps are enough on the probes: the reference lands within 0.01 of every known value with
# seeds 0, 1 and 2 (measured), so 0.1 leaves room for a learner's different but correct order of random draws.
PROBE_DQN = ref.DQNConfig(
    total_timesteps=400, learning_rate=5e-3, buffer_size=1000, gamma=0.5, target_network_frequency=25,
    batch_size=32, exploration_fraction=0.5, learning_starts=50, train_frequency=1, hidden=(16,), progress=False,
)  # fmt: skip
PROBE_TOLERANCE = 0.1

# (probe, observations to read the values at, their known values with gamma 0.5, what it tests)
DQN_PROBES = [
    ("Probe1", [[0.0]], [[1.0]], "a constant value"),
    ("Probe2", [[-1.0], [1.0]], [[-1.0], [1.0]], "a value that depends on the observation"),
    ("Probe3", [[0.0], [1.0]], [[0.5], [1.0]], "discounting and bootstrapping: Q(0) = gamma Q(1)"),
    ("Probe4", [[0.0]], [[-1.0, 1.0]], "values of different actions"),
    ("Probe5", [[-1.0], [1.0]], [[1.0, -1.0], [-1.0, 1.0]], "values of actions that depend on the observation"),
    ("Probe6", [[0.0]], [[2.0]], "bootstrapping through truncation: 1 / (1 - gamma)"),
]


def _dqn_probe_cases(gen):
    for name, observations, values, what in DQN_PROBES:
        yield Case((name, torch.tensor(observations), 0), f"{name}, {what}", expected=torch.tensor(values))


def _within_tolerance(expected, got):
    compare(expected, got, float("inf"), 0.0)  # type, shape and dtype only
    far = (got - expected).abs() > PROBE_TOLERANCE
    if far.any():
        index = tuple(far.nonzero()[0].tolist())
        raise Mismatch(
            f"output: the learned value at index {index} is {got[index].item():.3f}, but the probe's true value is "
            f"{expected[index].item():g} (allowed: within {PROBE_TOLERANCE}); all learned values: "
            f"{[round(v, 3) for v in got.flatten().tolist()]}"
        )


@contextlib.contextmanager
def _one_thread():
    """Networks this small train fastest on one thread: on 2 busy cores, two threads made a probe run 5-10x
    slower (measured: 0.6 s against 3-6 s for 400 steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_dqn_on_probe(impl, case):
    """Train on the probe from a fixed seed; the network's values at the probe's observations."""
    name, observations, seed = case.args
    with _one_thread():
        result = impl(getattr(ref, name)(), dataclasses.replace(PROBE_DQN, seed=seed))
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module)):
        raise Mismatch(f"dqn_train returned {describe(result)}; expected (q_network, episode_returns)")
    with torch.no_grad():
        return result[0](observations.cpu()).detach()


def _dqn_variant(env, cfg, done_flag="terminated", update_target=True, advance_obs=True):
    """The reference loop with one switch flipped: what each wrong implementation below gets wrong."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    q_network = ref.QNetwork(obs_dim, n_actions, cfg.hidden)
    target_network = ref.QNetwork(obs_dim, n_actions, cfg.hidden)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.learning_rate)
    buffer = ref.ReplayBuffer(cfg.buffer_size, obs_dim, cfg.seed)
    obs, _ = env.reset(seed=cfg.seed)
    for step in range(cfg.total_timesteps):
        epsilon = ref.linear_schedule(step, cfg.start_e, cfg.end_e, int(cfg.exploration_fraction * cfg.total_timesteps))
        action = ref.epsilon_greedy(q_network, obs, epsilon, n_actions, rng)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        done = {"terminated": terminated, "either": terminated or truncated, "never": False}[done_flag]
        buffer.add(obs, action, reward, next_obs, done)
        obs = next_obs if advance_obs else obs
        if terminated or truncated:
            obs, _ = env.reset()
        if step >= cfg.learning_starts and step % cfg.train_frequency == 0:
            loss = ref.dqn_loss(q_network, target_network, buffer.sample(cfg.batch_size), cfg.gamma)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if update_target and step % cfg.target_network_frequency == 0:
            ref.update_target_network(target_network, q_network, cfg.tau)
    return q_network, []


def _dqn_truncation_is_termination(env, cfg):
    return _dqn_variant(env, cfg, done_flag="either")


def _dqn_termination_never_stored(env, cfg):
    return _dqn_variant(env, cfg, done_flag="never")


def _dqn_target_never_updated(env, cfg):
    return _dqn_variant(env, cfg, update_target=False)


def _dqn_obs_not_advanced(env, cfg):
    return _dqn_variant(env, cfg, advance_obs=False)


# ----------------------------------------------------------------------------- VPG


def _rtg_cases(gen):
    # One episode, gamma 0.5: G2 = 1, G1 = 1 + 0.5 * 1 = 1.5, G0 = 1 + 0.5 * 1.5 = 1.75.
    yield Case((torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0]), 0.5), "one episode (worked by hand)",
               expected=torch.tensor([1.75, 1.5, 1.0]))  # fmt: skip
    # Two episodes, gamma 0.9: (1 + 0.9 * 2, 2) and (3 + 0.9 * 4, 4): the first episode never sees 3 or 4.
    yield Case((torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 1.0, 0.0, 1.0]), 0.9),
               "two episodes (worked by hand)", expected=torch.tensor([2.8, 2.0, 6.6, 4.0]))  # fmt: skip
    # Episodes of one step each: every return is its own reward, whatever gamma is.
    yield Case((torch.tensor([5.0, -1.0, 2.0]), torch.ones(3), 0.99), "three one-step episodes (worked by hand)",
               expected=torch.tensor([5.0, -1.0, 2.0]))  # fmt: skip
    # gamma 1: plain sums to the end of each episode.
    yield Case((torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0]), 1.0),
               "gamma 1 (worked by hand)", expected=torch.tensor([6.0, 5.0, 3.0, 9.0, 5.0]))  # fmt: skip
    for steps, p_done in [(20, 0.2), (200, 0.05), (1000, 0.01)]:
        dones = (torch.rand(steps, generator=gen) < p_done).float()
        dones[-1] = 1.0
        yield Case((torch.randn(steps, generator=gen), dones, 0.97), f"random, {steps} steps")


def _rtg_loop(rewards, dones, gamma, include_current=True, done_of_next=False, use_dones=True):
    returns = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        if done_of_next:
            done = dones[t + 1] if t + 1 < len(rewards) else 1.0
        else:
            done = dones[t] if use_dones else 0.0
        future = gamma * running * (1 - done)
        running = rewards[t] + future
        returns[t] = running if include_current else future
    return returns


def _rtg_ignores_episode_ends(rewards, dones, gamma):
    return _rtg_loop(rewards, dones, gamma, use_dones=False)


def _rtg_excludes_current_reward(rewards, dones, gamma):
    return _rtg_loop(rewards, dones, gamma, include_current=False)


def _rtg_done_flag_off_by_one(rewards, dones, gamma):
    return _rtg_loop(rewards, dones, gamma, done_of_next=True)


def _rtg_undiscounted(rewards, dones, gamma):
    return _rtg_loop(rewards, dones, 1.0)


def _rtg_from_the_start(rewards, dones, gamma):
    returns = torch.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards)):
        running = rewards[t] + gamma * running
        returns[t] = running
        running = running * (1 - dones[t])
    return returns


def _norm_cases(gen):
    # Returns (1.75, 1.5, 1) from the first returns_to_go case: mean 17/12, unbiased std sqrt(0.2917 / 2) = 0.3819,
    # so (0.3333, 0.0833, -0.4167) / 0.3819.
    yield Case((torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0]), 0.5), "one episode (worked by hand)",
               expected=torch.tensor([0.872872, 0.218218, -1.091089]))  # fmt: skip
    # All returns equal: mean subtracted, nothing left, 0 / (0 + eps) = 0.
    yield Case((torch.ones(4), torch.ones(4), 0.9), "all returns equal (worked by hand)", expected=torch.zeros(4))
    for steps, p_done in [(30, 0.2), (500, 0.02)]:
        dones = (torch.rand(steps, generator=gen) < p_done).float()
        dones[-1] = 1.0
        yield Case((torch.rand(steps, generator=gen) * 2, dones, 0.99), f"random, {steps} steps")


def _norm_rewards_first(rewards, dones, gamma, eps=1e-8):
    return ref.returns_to_go((rewards - rewards.mean()) / (rewards.std() + eps), dones, gamma)


def _norm_no_centring(rewards, dones, gamma, eps=1e-8):
    returns = ref.returns_to_go(rewards, dones, gamma)
    return returns / (returns.std() + eps)


def _norm_no_eps(rewards, dones, gamma, eps=1e-8):
    returns = ref.returns_to_go(rewards, dones, gamma)
    return (returns - returns.mean()) / returns.std()


def _norm_biased_std(rewards, dones, gamma, eps=1e-8):
    returns = ref.returns_to_go(rewards, dones, gamma)
    return (returns - returns.mean()) / (returns.std(unbiased=False) + eps)


def _pg_cases(gen):
    # log pi = (log 0.5, log 0.75) for the actions taken (softmax of (0, ln 3) is (0.25, 0.75)), weights (1, -2):
    # loss = -(log 0.5 - 2 log 0.75) / 2 = 0.058892. dL/dlogits = -(weight / n) (onehot - pi):
    # row 0: -(1/2) ((1, 0) - (0.5, 0.5)) = (-0.25, 0.25); row 1: (2/2) ((0, 1) - (0.25, 0.75)) = (-0.25, 0.25).
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    yield Case((logits, torch.tensor([0, 1]), torch.tensor([1.0, -2.0])), "two steps (worked by hand)",
               expected=(torch.tensor(0.0588915), torch.tensor([[-0.25, 0.25], [-0.25, 0.25]])))  # fmt: skip
    for steps, n_actions in [(10, 2), (64, 4), (500, 3)]:
        yield Case((torch.randn(steps, n_actions, generator=gen) * 2, torch.randint(0, n_actions, (steps,), generator=gen),
                    torch.randn(steps, generator=gen)), f"random, {steps} steps, {n_actions} actions")  # fmt: skip


def _run_pg_loss(impl, case):
    """The loss and its gradient with respect to the logits."""
    logits, actions, weights = case.args
    logits = logits.clone().requires_grad_(True)
    loss = impl(logits, actions, weights)
    if not isinstance(loss, torch.Tensor) or loss.shape != ():
        raise Mismatch(f"policy_gradient_loss returned {describe(loss)}; expected a scalar tensor (shape ())")
    if not loss.requires_grad:
        raise Mismatch("the loss has no gradient with respect to the logits")
    loss.backward()
    return loss.detach(), logits.grad


def _pg_no_minus(logits, actions, weights):
    return -ref.policy_gradient_loss(logits, actions, weights)


def _pg_probabilities(logits, actions, weights):
    return -(logits.softmax(-1).gather(1, actions[:, None]).squeeze(1) * weights).mean()


def _pg_sum(logits, actions, weights):
    return ref.policy_gradient_loss(logits, actions, weights) * len(actions)


def _pg_softmax_over_batch(logits, actions, weights):
    return -(logits.log_softmax(dim=0).gather(1, actions[:, None]).squeeze(1) * weights).mean()


PROBE_VPG = ref.VPGConfig(iterations=40, batch_steps=32, learning_rate=3e-2, gamma=0.5, hidden=(16,), progress=False)

# (probe, observations, the optimal policy's action probabilities there)
VPG_PROBES = [
    ("Probe4", [[0.0]], [[0.0, 1.0]], "action 1 is always better"),
    ("Probe5", [[-1.0], [1.0]], [[1.0, 0.0], [0.0, 1.0]], "the better action depends on the observation"),
]


def _vpg_probe_cases(gen):
    for name, observations, probabilities, what in VPG_PROBES:
        yield Case((name, torch.tensor(observations), 0), f"{name}, {what}", expected=torch.tensor(probabilities))


def _run_vpg_on_probe(impl, case):
    """Train on the probe from a fixed seed; the policy's action probabilities at the probe's observations."""
    name, observations, seed = case.args
    with _one_thread():
        result = impl(getattr(ref, name)(), dataclasses.replace(PROBE_VPG, seed=seed))
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module)):
        raise Mismatch(f"vpg_train returned {describe(result)}; expected (policy, episode_returns)")
    with torch.no_grad():
        return result[0](observations.cpu()).softmax(-1).detach()


def _vpg_variant(env, cfg, sign=1.0, greedy=False):
    torch.manual_seed(cfg.seed)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    policy = ref.QNetwork(env.observation_space.shape[0], env.action_space.n, cfg.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
    obs, _ = env.reset(seed=cfg.seed)
    for _ in range(cfg.iterations):
        observations, actions, rewards, dones = [], [], [], []
        while True:
            with torch.no_grad():
                logits = policy(torch.as_tensor(obs, dtype=torch.float32))
            dist = torch.distributions.Categorical(logits=logits)
            action = int(logits.argmax()) if greedy else int(dist.sample())
            next_obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            dones.append(terminated or truncated)
            obs = next_obs
            if terminated or truncated:
                obs, _ = env.reset()
                if len(rewards) >= cfg.batch_steps:
                    break
        weights = ref.normalized_returns(torch.tensor(rewards, dtype=torch.float32),
                                         torch.tensor(dones, dtype=torch.float32), cfg.gamma)  # fmt: skip
        logits = policy(torch.as_tensor(np.array(observations), dtype=torch.float32))
        loss = sign * ref.policy_gradient_loss(logits, torch.tensor(actions), weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy, []


def _vpg_ascends_the_loss(env, cfg):
    return _vpg_variant(env, cfg, sign=-1.0)


def _vpg_greedy_actions(env, cfg):
    return _vpg_variant(env, cfg, greedy=True)


check = Checker(
    "2.2",
    [
        Exercise(
            ref.QNetwork, _qnet_cases, oracle=_QNetworkOracle,
            hint="self.network = nn.Sequential(...) of Linear layers with a ReLU after every one but the last: the "
                 "values of actions can be negative and need not sum to anything.",
            wrong={"a ReLU on the output too (values can never be negative)": _QNetworkReluOnOutput,
                   "a softmax on the output (those are a policy's probabilities, not values)": _QNetworkSoftmaxOnOutput,
                   "Tanh instead of ReLU between layers": _QNetworkTanh,
                   "no activations between the layers (a linear model)": _QNetworkNoActivations},
        ),
        Exercise(
            ref.linear_schedule, _schedule_cases,
            hint="A straight line from (0, start_e) to (duration, end_e), then flat: which of max and min keeps it "
                 "from going below end_e?",
            wrong={"never clamped at end_e (keeps falling after duration)": _schedule_unclamped,
                   "decays towards 0, not end_e": _schedule_to_zero,
                   "min instead of max (end_e from the start)": _schedule_min,
                   "rises from end_e to start_e": _schedule_rises},
        ),
        Exercise(
            ref.epsilon_greedy, _epsilon_greedy_cases, run=_run_epsilon_greedy,
            hint="Exactly one rng.random() per call, compared with `< epsilon`; explore with rng.integers(n_actions) "
                 "(its upper bound is exclusive); otherwise the argmax of the Q-values, as a plain int.",
            wrong={"explores when the draw is above epsilon (with probability 1 - epsilon)": _eg_inverted,
                   "rng.integers(n_actions - 1): the last action is never explored": _eg_misses_last_action,
                   "argmin instead of argmax": _eg_argmin},
        ),
        Exercise(
            ref.ReplayBuffer, _buffer_cases, run=_run_buffer,
            hint="Keep the next slot to write and the number held; the slot advances modulo capacity, so the oldest "
                 "transition is overwritten first; sample only among the slots written so far.",
            wrong={"no wraparound: the slot index runs past the end": _BufferNoWraparound,
                   "samples from all capacity slots before the buffer is full (empty, zero transitions)":
                       _BufferSamplesEmptySlots,
                   "returns the newest transitions instead of random ones": _BufferSamplesNewest,
                   "once full, overwrites the newest slot instead of the oldest": _BufferOverwritesNewest},
        ),
        Exercise(
            ref.td_target, _td_cases,
            hint="The max over actions of the next values, discounted, is added only where terminated is 0; the "
                 "reward itself is always kept.",
            wrong={"forgets (1 - terminated): bootstraps through termination": _td_bootstraps_through_termination,
                   "the mean over next actions, not the max": _td_mean_over_actions,
                   "(1 - terminated) multiplies the reward too": _td_masks_the_reward_too,
                   "multiplies by terminated instead of (1 - terminated)": _td_mask_inverted,
                   "gamma discounts the reward as well": _td_discounts_the_reward},
        ),
        Exercise(
            ref.dqn_loss, _loss_cases, run=_run_loss,
            hint="The target comes from target_network at next_obs, under torch.no_grad(); the prediction is "
                 "q_network at obs, picked out at the action taken with gather; then the mean squared error.",
            wrong={"uses the online network for the targets": _loss_online_targets,
                   "the value of the best action, not of the action taken": _loss_best_not_taken,
                   "Huber (smooth L1) loss, not the mean squared error": _loss_huber,
                   "the sum of squared errors, not the mean": _loss_sum,
                   "bootstraps through termination": _loss_no_termination},
        ),
        Exercise(
            ref.update_target_network, _update_cases, run=_run_update,
            hint="Change target_network's parameters in place (copy_ under torch.no_grad(), or .data), weighting the "
                 "online network's by tau; return nothing, and leave q_network alone.",
            wrong={"updates q_network towards the target instead": _update_the_online_network,
                   "tau and 1 - tau swapped": _update_tau_swapped,
                   "a hard copy whatever tau is": _update_hard_copy,
                   "rebinds the loop variable, so nothing changes": _update_rebinds_a_name},
        ),
        Exercise(
            ref.Probe5, _probe5_cases, run=_run_probe5,
            hint="reset seeds self.np_random through super().reset(seed=seed) and draws the sign from it; step "
                 "returns a float32 array of shape (1,), the reward, terminated=True and truncated=False.",
            wrong={"the reward reversed (+1 for the mismatching action)": _Probe5RewardReversed,
                   "truncates instead of terminating": _Probe5NeverTerminates,
                   "a float64 observation": _Probe5PlainFloat,
                   "the observation is always +1": _Probe5AlwaysPositive,
                   "draws from an unseeded generator, not self.np_random": _Probe5UnseededRandom},
        ),
        Exercise(
            ref.dqn_train, _dqn_probe_cases, run=_run_dqn_on_probe, compare=_within_tolerance,
            hint="Test the probes in order: the first one that fails names the bug. Probe 1 fails if termination is "
                 "bootstrapped through, 3 if the next state or the target network is wrong, 4 and 5 if actions get "
                 "mixed up, 6 if truncation is stored as termination.",
            wrong={"stores terminated or truncated as the done flag (truncation treated as termination)":
                       _dqn_truncation_is_termination,
                   "never stores a termination (bootstraps through the end of every episode)":
                       _dqn_termination_never_stored,
                   "never updates the target network": _dqn_target_never_updated,
                   "obs never advanced to next_obs": _dqn_obs_not_advanced},
        ),
        Exercise(
            ref.returns_to_go, _rtg_cases,
            hint="Walk backwards from the last step, carrying the running return; reset it where dones[t] is 1, "
                 "before adding r_t (the last step of an episode keeps its own reward).",
            wrong={"ignores episode ends (returns leak across episodes)": _rtg_ignores_episode_ends,
                   "excludes the current reward (off by one)": _rtg_excludes_current_reward,
                   "resets at the step after the episode's last (off by one at boundaries)": _rtg_done_flag_off_by_one,
                   "not discounted": _rtg_undiscounted,
                   "sums rewards from the start of the episode, not to its end": _rtg_from_the_start},
        ),
        Exercise(
            ref.normalized_returns, _norm_cases,
            hint="Compute the returns-to-go first, then normalise them (not the rewards): subtract the mean, divide "
                 "by std() + eps.",
            wrong={"normalises the rewards before computing returns": _norm_rewards_first,
                   "divides by the std without subtracting the mean": _norm_no_centring,
                   "no eps: NaN when all returns are equal": _norm_no_eps,
                   "the biased standard deviation (unbiased=False)": _norm_biased_std},
        ),
        Exercise(
            ref.policy_gradient_loss, _pg_cases, run=_run_pg_loss,
            hint="log_softmax over the action dimension, gather the actions taken, weight, average, and negate (the "
                 "optimizer minimises).",
            wrong={"no minus sign (gradient descent then makes good actions less likely)": _pg_no_minus,
                   "probabilities instead of log-probabilities": _pg_probabilities,
                   "the sum over steps, not the mean": _pg_sum,
                   "softmax over the batch dimension, not the actions": _pg_softmax_over_batch},
        ),
        Exercise(
            ref.vpg_train, _vpg_probe_cases, run=_run_vpg_on_probe, compare=_within_tolerance,
            hint="On probes 4 and 5 the policy should end up taking the better action almost always. If it learns the "
                 "opposite, look at the loss's sign; if it learns nothing, at how actions are chosen (sampled, not argmax).",
            wrong={"steps up the loss instead of down (the sign flipped)": _vpg_ascends_the_loss,
                   "acts greedily (argmax) instead of sampling": _vpg_greedy_actions},
        ),
    ],
)  # fmt: skip
