"""Reference solutions for 2.2 DQN and VPG.

Deep Q-learning after Mnih et al. 2015 (*Human-level control through deep reinforcement learning*),
written the way CleanRL's `dqn.py` is: one file, hyperparameters in a dataclass at the top, the
training loop in plain sight. Then the vanilla policy gradient (REINFORCE, Williams 1992) with
discounted returns-to-go and return normalisation.

Also here: the probe environments (after Andy Jones, *Debugging RL, Without the Agonizing Pain*,
2021), tiny gymnasium environments whose correct values are known in closed form, so a learner's
agent can be tested where CartPole could only say "it didn't learn".

Importing this module has no side effects; `python -m solutions.chapter2_rl.dqn_and_vpg` trains DQN
and VPG on CartPole-v1 with the benchmark's settings and prints what they reach.
"""

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

# ----------------------------------------------------------------------------- hyperparameters


@dataclass
class DQNConfig:
    """DQN's hyperparameters. The defaults are the settings of CleanRL's `dqn.py` benchmark on
    CartPole-v1 (its documentation, "Deep Q-Learning (DQN)"), the network's widths included."""

    seed: int = 1
    total_timesteps: int = 500_000
    learning_rate: float = 2.5e-4
    buffer_size: int = 10_000
    gamma: float = 0.99
    tau: float = 1.0  # 1.0: the target network is a copy, refreshed every target_network_frequency steps
    target_network_frequency: int = 500
    batch_size: int = 128
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.5  # epsilon reaches end_e after this fraction of total_timesteps
    learning_starts: int = 10_000
    train_frequency: int = 10
    hidden: tuple[int, ...] = (120, 84)
    progress: bool = True  # a tqdm bar over the steps


@dataclass
class VPGConfig:
    """Vanilla policy gradient's hyperparameters (Spinning Up's VPG without its value baseline)."""

    seed: int = 1
    iterations: int = 100
    batch_steps: int = 2000  # each update uses whole episodes, at least this many steps in all
    learning_rate: float = 1e-2
    gamma: float = 0.99
    hidden: tuple[int, ...] = (32,)
    progress: bool = True


# ----------------------------------------------------------------------------- the Q-network


class QNetwork(nn.Module):
    """An MLP from observations to one value per action: Linear, ReLU, ..., Linear, with a hidden
    layer of each width in `hidden`, held in `self.network` (an nn.Sequential)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (120, 84)):
        super().__init__()
        layers, width = [], obs_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.network = nn.Sequential(*layers, nn.Linear(width, n_actions))

    def forward(self, obs: Float[Tensor, "*batch obs_dim"]) -> Float[Tensor, "*batch n_actions"]:
        """Q(obs, a) for every action a."""
        return self.network(obs)


# ----------------------------------------------------------------------------- exploration


def linear_schedule(step: int, start_e: float, end_e: float, duration: int) -> float:
    """Epsilon at `step`: falls in a straight line from start_e at step 0 to end_e at step
    `duration`, and stays at end_e from then on."""
    slope = (end_e - start_e) / duration
    return max(start_e + slope * step, end_e)


def epsilon_greedy(
    q_network: nn.Module, obs: Float[np.ndarray, " obs_dim"], epsilon: float, n_actions: int, rng: np.random.Generator
) -> int:
    """An epsilon-greedy action for one observation. Draw u = rng.random(); if u < epsilon, return
    the random action rng.integers(n_actions), else the action with the highest Q-value (ties to the
    lowest index). No other random numbers are drawn."""
    if rng.random() < epsilon:
        return int(rng.integers(n_actions))
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(obs, dtype=torch.float32))
    return int(q_values.argmax())


# ----------------------------------------------------------------------------- the replay buffer


@dataclass
class ReplayBufferSamples:
    """A batch of transitions; `terminated` is 1.0 where the episode ended at next_obs, else 0.0."""

    obs: Float[Tensor, "batch obs_dim"]
    actions: Int[Tensor, " batch"]
    rewards: Float[Tensor, " batch"]
    next_obs: Float[Tensor, "batch obs_dim"]
    terminated: Float[Tensor, " batch"]

    def __repr__(self) -> str:  # one line, for the checks' messages
        return f"ReplayBufferSamples(batch of {len(self.rewards)}, obs_dim {self.obs.shape[-1]})"


class ReplayBuffer:
    """The last `capacity` transitions, in a circular buffer: once it is full, each new transition
    overwrites the oldest. Samples are drawn uniformly, with replacement, from the transitions held."""

    def __init__(self, capacity: int, obs_dim: int, seed: int):
        """Empty storage (float32 observations, rewards and terminated flags, int64 actions) and a
        generator np.random.default_rng(seed) that `sample` draws from."""
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position, self.size = 0, 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """How many transitions the buffer holds (at most capacity)."""
        return self.size

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        """Store one transition in the next slot, wrapping round to slot 0 after the last."""
        i = self.position
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.position = (self.position + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> ReplayBufferSamples:
        """batch_size transitions at the slots self.rng.integers(len(self), size=batch_size), as tensors."""
        i = self.rng.integers(self.size, size=batch_size)
        return ReplayBufferSamples(
            obs=torch.from_numpy(self.obs[i]),
            actions=torch.from_numpy(self.actions[i]),
            rewards=torch.from_numpy(self.rewards[i]),
            next_obs=torch.from_numpy(self.next_obs[i]),
            terminated=torch.from_numpy(self.terminated[i]),
        )


# ----------------------------------------------------------------------------- the TD target and the loss


def td_target(
    rewards: Float[Tensor, " batch"],
    next_q_values: Float[Tensor, "batch n_actions"],
    terminated: Float[Tensor, " batch"],
    gamma: float,
) -> Float[Tensor, " batch"]:
    """The one-step TD target r + gamma * max over a' of Q(s', a'), where the episode did not
    terminate at s' (terminated = 0), and just r where it did (terminated = 1)."""
    return rewards + gamma * next_q_values.max(dim=-1).values * (1 - terminated)


def dqn_loss(
    q_network: nn.Module, target_network: nn.Module, batch: ReplayBufferSamples, gamma: float
) -> Float[Tensor, ""]:
    """The mean squared error between Q(s, a) from q_network, for the actions taken, and the TD
    target computed from target_network's values at s', with no gradient through the target."""
    with torch.no_grad():
        target = td_target(batch.rewards, target_network(batch.next_obs), batch.terminated, gamma)
    q_taken = q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
    return F.mse_loss(q_taken, target)


def update_target_network(target_network: nn.Module, q_network: nn.Module, tau: float) -> None:
    """Move each of target_network's parameters, in place, to tau * (q_network's) + (1 - tau) *
    (its own); tau = 1 copies q_network. q_network is left unchanged."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), q_network.parameters()):
            target_param.copy_(tau * param + (1 - tau) * target_param)


# ----------------------------------------------------------------------------- probe environments


class Probe1(gym.Env):
    """One action, observation 0, one step, reward +1. Q(0) = 1: can the network learn a constant?"""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        return np.array([0.0], dtype=np.float32), 1.0, True, False, {}


class Probe2(gym.Env):
    """One action, observation -1 or +1 at random, one step, reward equal to the observation.
    Q(-1) = -1, Q(+1) = +1: does the value depend on the observation?"""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.value = 1.0 if self.np_random.random() < 0.5 else -1.0
        return np.array([self.value], dtype=np.float32), {}

    def step(self, action):
        return np.array([self.value], dtype=np.float32), self.value, True, False, {}


class Probe3(gym.Env):
    """One action, two steps: observation 0 with reward 0, then observation 1 with reward +1.
    Q(0) = gamma, Q(1) = 1: is the next state's value discounted and bootstrapped?"""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        reward, terminated = (0.0, False) if self.t == 1 else (1.0, True)
        return np.array([1.0], dtype=np.float32), reward, terminated, False, {}


class Probe4(gym.Env):
    """Two actions, observation 0, one step, reward -1 for action 0 and +1 for action 1.
    Q(0, 0) = -1, Q(0, 1) = +1: are the values of different actions kept apart?"""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        reward = 1.0 if action == 1 else -1.0
        return np.array([0.0], dtype=np.float32), reward, True, False, {}


class Probe5(gym.Env):
    """Two actions (action_space Discrete(2)); the observation (observation_space a Box from -1 to 1
    of shape (1,), float32) is -1.0 or +1.0 at random, drawn from self.np_random on reset; one step,
    after which the episode terminates (never truncates). The reward is +1 when the action matches
    the observation (action 1 for +1, action 0 for -1), else -1. The observation returned by step is
    the same as reset's."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        """Seed self.np_random (through gym.Env.reset) and draw the observation; return (obs, {})."""
        super().reset(seed=seed)
        self.value = 1.0 if self.np_random.random() < 0.5 else -1.0
        return np.array([self.value], dtype=np.float32), {}

    def step(self, action):
        """Return (obs, reward, terminated, truncated, info) for the one step."""
        reward = 1.0 if (action == 1) == (self.value > 0) else -1.0
        return np.array([self.value], dtype=np.float32), reward, True, False, {}


class Probe6(gym.Env):
    """One action, observation 0, reward +1 every step, never terminates: a time limit truncates each
    episode after 2 steps. Q(0) = 1 / (1 - gamma): is truncation bootstrapped through, not treated as
    termination?"""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([0.0], dtype=np.float32), 1.0, False, self.t >= 2, {}


# ----------------------------------------------------------------------------- training DQN


def dqn_train(env: gym.Env, cfg: DQNConfig) -> tuple[QNetwork, list[float]]:
    """Train DQN on env; return the Q-network and the return of each episode finished in training.

    Seed torch with cfg.seed, a generator np.random.default_rng(cfg.seed) for exploration, the replay
    buffer with cfg.seed, and the first env.reset with cfg.seed. At each step: epsilon from the linear
    schedule (end_e after exploration_fraction * total_timesteps steps), act, store the transition
    with its terminated flag (truncation is not termination), reset when the episode ends; from step
    learning_starts on, every train_frequency steps one Adam step on the DQN loss of a sampled batch;
    every target_network_frequency steps, update the target network with tau."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    q_network = QNetwork(obs_dim, n_actions, cfg.hidden)
    target_network = QNetwork(obs_dim, n_actions, cfg.hidden)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.learning_rate)
    buffer = ReplayBuffer(cfg.buffer_size, obs_dim, cfg.seed)
    exploration_steps = int(cfg.exploration_fraction * cfg.total_timesteps)
    episode_returns = []

    obs, _ = env.reset(seed=cfg.seed)
    for step in tqdm(range(cfg.total_timesteps), desc="DQN", disable=not cfg.progress):
        epsilon = linear_schedule(step, cfg.start_e, cfg.end_e, exploration_steps)
        action = epsilon_greedy(q_network, obs, epsilon, n_actions, rng)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        if terminated or truncated:
            episode_returns.append(float(info["episode"]["r"]))
            obs, _ = env.reset()

        if step >= cfg.learning_starts and step % cfg.train_frequency == 0:
            loss = dqn_loss(q_network, target_network, buffer.sample(cfg.batch_size), cfg.gamma)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if step % cfg.target_network_frequency == 0:
            update_target_network(target_network, q_network, cfg.tau)
    return q_network, episode_returns


# ----------------------------------------------------------------------------- VPG


def returns_to_go(
    rewards: Float[Tensor, " steps"], dones: Float[Tensor, " steps"], gamma: float
) -> Float[Tensor, " steps"]:
    """The discounted return from each step to the end of its episode,
    G_t = r_t + gamma * G_{t+1}, where the steps of several episodes are laid end to end and
    dones[t] = 1 marks the last step of an episode (so G_t = r_t there)."""
    returns = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running * (1 - dones[t])
        returns[t] = running
    return returns


def normalized_returns(
    rewards: Float[Tensor, " steps"], dones: Float[Tensor, " steps"], gamma: float, eps: float = 1e-8
) -> Float[Tensor, " steps"]:
    """The returns-to-go of the batch, shifted to mean 0 and divided by (their standard deviation
    (torch's default, unbiased) + eps)."""
    returns = returns_to_go(rewards, dones, gamma)
    return (returns - returns.mean()) / (returns.std() + eps)


def policy_gradient_loss(
    logits: Float[Tensor, "steps n_actions"], actions: Int[Tensor, " steps"], weights: Float[Tensor, " steps"]
) -> Float[Tensor, ""]:
    """The loss whose gradient is minus the policy gradient estimate: minus the mean over steps of
    log pi(a_t | s_t) * weights[t], with pi the softmax of the logits."""
    log_probs = logits.log_softmax(dim=-1).gather(1, actions[:, None]).squeeze(1)
    return -(log_probs * weights).mean()


def vpg_train(env: gym.Env, cfg: VPGConfig) -> tuple[QNetwork, list[float]]:
    """Train a policy by vanilla policy gradient on env; return the policy network (a QNetwork whose
    outputs are read as logits) and the return of each episode.

    Seed torch with cfg.seed and the first env.reset with cfg.seed. Each iteration: sample actions
    from the softmax of the logits (torch.distributions.Categorical) for whole episodes until at least
    cfg.batch_steps steps are collected, weight each step by the normalized returns-to-go (an episode
    ends when it terminates or is truncated), and take one Adam step on the policy-gradient loss."""
    torch.manual_seed(cfg.seed)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    policy = QNetwork(env.observation_space.shape[0], env.action_space.n, cfg.hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
    episode_returns = []

    obs, _ = env.reset(seed=cfg.seed)
    for _ in tqdm(range(cfg.iterations), desc="VPG", disable=not cfg.progress):
        observations, actions, rewards, dones = [], [], [], []
        while True:
            with torch.no_grad():
                logits = policy(torch.as_tensor(obs, dtype=torch.float32))
            action = int(torch.distributions.Categorical(logits=logits).sample())
            next_obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            dones.append(terminated or truncated)
            obs = next_obs
            if terminated or truncated:
                episode_returns.append(float(info["episode"]["r"]))
                obs, _ = env.reset()
                if len(rewards) >= cfg.batch_steps:
                    break
        weights = normalized_returns(
            torch.tensor(rewards, dtype=torch.float32), torch.tensor(dones, dtype=torch.float32), cfg.gamma
        )
        logits = policy(torch.as_tensor(np.array(observations), dtype=torch.float32))
        loss = policy_gradient_loss(logits, torch.tensor(actions), weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy, episode_returns


# ----------------------------------------------------------------------------- evaluation


def play_episodes(act: Callable[[np.ndarray], int], env: gym.Env, episodes: int, seed: int) -> list[float]:
    """The return of each of `episodes` episodes on env, taking the action act(observation), episode i
    reset with seed + i."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return returns


def evaluate_greedy(network: nn.Module, env_id: str, episodes: int, seed: int) -> list[float]:
    """The return of each of `episodes` episodes acting greedily (the highest output) on env_id,
    episode i reset with seed + i."""

    @torch.no_grad()
    def act(obs: np.ndarray) -> int:
        return int(network(torch.as_tensor(obs, dtype=torch.float32)).argmax())

    return play_episodes(act, gym.make(env_id), episodes, seed)


if __name__ == "__main__":
    torch.set_num_threads(1)
    _, dqn_returns = dqn_train(gym.make("CartPole-v1"), DQNConfig())
    print(f"DQN: mean return over the last 20 episodes {np.mean(dqn_returns[-20:]):.1f}")
    _, vpg_returns = vpg_train(gym.make("CartPole-v1"), VPGConfig())
    print(f"VPG: mean return over the last 20 episodes {np.mean(vpg_returns[-20:]):.1f}")
