"""Reference solutions for 2.3 PPO (Schulman et al. 2017, *Proximal Policy Optimization Algorithms*), written
in the style of CleanRL's single-file `ppo.py` (Huang et al. 2022): hyperparameters in a dataclass at the top,
one readable training loop, the same defaults for CartPole-v1.

Conventions: a rollout holds `num_steps` steps of `num_envs` environments, every tensor indexed [step, env].
`dones[t]` marks that the step taken at t ended its episode (terminated or truncated): `obs[t + 1]` is then
the first observation of the next episode (gymnasium's same-step autoreset). Like CleanRL, a truncation is
treated as an end (no bootstrapping from the final observation).

Importing this module has no side effects; `python -m solutions.chapter2_rl.ppo --env-id Acrobot-v1` trains.
"""

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from jaxtyping import Float, Int
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.distributions import Categorical
from tqdm.auto import tqdm

from solutions.chapter2_rl.dqn_and_vpg import play_episodes


@dataclass
class PPOArgs:
    """CleanRL's `ppo.py` defaults (CartPole-v1), plus an early stop and observation normalisation."""

    env_id: str = "CartPole-v1"
    seed: int = 1
    total_timesteps: int = 500_000
    num_envs: int = 4
    num_steps: int = 128  # steps per environment per rollout
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    rescale_obs: bool = False  # map the observation box onto [-1, 1] (MountainCar's velocity is ~0.01)
    target_return: float | None = None  # stop once the mean return of the last 20 episodes reaches it

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size


# ----------------------------------------------------------------------------- networks


def layer_init(layer: nn.Linear, std: float = 2**0.5, bias_const: float = 0.0) -> nn.Linear:
    """Initialise a linear layer in place as CleanRL does and return it: an orthogonal weight matrix
    scaled by std (torch.nn.init.orthogonal_ with gain std), and every bias equal to bias_const."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate actor and critic MLPs, each Linear(obs_dim, hidden), Tanh, Linear(hidden, hidden), Tanh,
    Linear(hidden, out) as `nn.Sequential`s named `critic` (out 1) and `actor` (out n_actions), every
    layer made with layer_init: std sqrt(2) for hidden layers, 1 for the critic's output and 0.01 for the
    actor's (so the first policy is nearly uniform)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, n_actions), std=0.01),
        )

    def forward(self, obs: Float[Tensor, "b obs"]) -> tuple[Float[Tensor, "b a"], Float[Tensor, " b"]]:
        """The policy's logits and the critic's value estimate (one number per observation)."""
        return self.actor(obs), self.critic(obs).squeeze(-1)


def evaluate_actions(
    logits: Float[Tensor, "b a"], actions: Int[Tensor, " b"]
) -> tuple[Float[Tensor, " b"], Float[Tensor, " b"]]:
    """The log-probability of each taken action under the categorical policy with these logits,
    and the policy's entropy at each observation (in nats)."""
    dist = Categorical(logits=logits)
    return dist.log_prob(actions), dist.entropy()


# ----------------------------------------------------------------------------- rollouts


@dataclass
class RolloutBuffer:
    """One rollout, every tensor indexed [step, env]: obs[t] is what the agent saw before acting at t,
    dones[t] (0. or 1.) whether that step ended its episode."""

    obs: Float[Tensor, "t n obs"]
    actions: Int[Tensor, "t n"]
    logprobs: Float[Tensor, "t n"]
    values: Float[Tensor, "t n"]
    rewards: Float[Tensor, "t n"]
    dones: Float[Tensor, "t n"]


def make_envs(
    env_id: str, num_envs: int, seed: int, shaping: Callable | None = None, rescale_obs: bool = False
) -> tuple[gym.vector.VectorEnv, Tensor]:
    """`num_envs` copies of env_id stepped in turn (SyncVectorEnv, same-step autoreset, as CleanRL's
    gymnasium 0.29 did), wrapped to record each episode's return and length; reset with seeds
    seed, seed + 1, ...; returns the vector env and the first observations as a float tensor.
    `shaping(reward, obs, next_obs, terminated)`, if given, replaces each environment's reward (it sees
    the raw observations); rescale_obs maps the observation space's box onto [-1, 1] for the agent."""

    def make() -> gym.Env:
        env = gym.make(env_id)
        env = _Shaped(env, shaping) if shaping else env
        return _rescaled(env) if rescale_obs else env

    envs = gym.vector.SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    obs, _ = envs.reset(seed=[seed + i for i in range(num_envs)])
    return envs, torch.tensor(obs, dtype=torch.float32)


def _rescaled(env: gym.Env) -> gym.Env:
    low, high = env.observation_space.low, env.observation_space.high
    center, half = (high + low) / 2, (high - low) / 2
    box = gym.spaces.Box(-1.0, 1.0, low.shape, np.float32)
    return gym.wrappers.TransformObservation(env, lambda obs: ((obs - center) / half).astype(np.float32), box)


class _Shaped(gym.Wrapper):
    def __init__(self, env: gym.Env, shaping: Callable):
        super().__init__(env)
        self.shaping, self.last_obs = shaping, None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.last_obs = obs
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward = float(self.shaping(float(reward), self.last_obs, obs, bool(terminated)))
        self.last_obs = obs
        return obs, reward, terminated, truncated, info


def collect_rollout(
    envs: gym.vector.VectorEnv, agent: nn.Module, next_obs: Float[Tensor, "n obs"], num_steps: int
) -> tuple[RolloutBuffer, Float[Tensor, "n obs"], list[tuple[float, int]]]:
    """Run the agent for num_steps steps in every environment, without gradients. At each step store
    the observation, sample actions with Categorical(logits=logits).sample() (one call per step, nothing
    else random), store them with their log-probabilities and the critic's values, step the envs, and
    store the rewards and dones (terminated or truncated, as floats). Returns the buffer, the
    observations after the last step (a float tensor), and (return, length) of each episode that ended,
    in order of step then env, read from the info that RecordEpisodeStatistics adds."""
    n = next_obs.shape[0]
    buffer = RolloutBuffer(
        obs=torch.zeros((num_steps, *next_obs.shape)),
        actions=torch.zeros((num_steps, n), dtype=torch.long),
        logprobs=torch.zeros((num_steps, n)),
        values=torch.zeros((num_steps, n)),
        rewards=torch.zeros((num_steps, n)),
        dones=torch.zeros((num_steps, n)),
    )
    episodes = []
    for step in range(num_steps):
        buffer.obs[step] = next_obs
        with torch.no_grad():
            logits, value = agent(next_obs)
        dist = Categorical(logits=logits)
        action = dist.sample()
        buffer.actions[step], buffer.logprobs[step], buffer.values[step] = action, dist.log_prob(action), value
        obs, reward, terminated, truncated, info = envs.step(action.numpy())
        buffer.rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
        buffer.dones[step] = torch.as_tensor(terminated | truncated, dtype=torch.float32)
        next_obs = torch.tensor(obs, dtype=torch.float32)
        if "episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                episodes.append((float(info["episode"]["r"][i]), int(info["episode"]["l"][i])))
    return buffer, next_obs, episodes


# ----------------------------------------------------------------------------- advantages


def compute_gae(
    rewards: Float[Tensor, "t n"],
    values: Float[Tensor, "t n"],
    dones: Float[Tensor, "t n"],
    next_value: Float[Tensor, " n"],
    gamma: float,
    gae_lambda: float,
) -> Float[Tensor, "t n"]:
    """Generalised advantage estimates (Schulman et al. 2016), computed backwards from the last step:
    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t) and
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}, where V(s_{t+1}) is values[t + 1], or
    next_value (the critic's value of the observation after the rollout) at the last step, and the
    sum restarts wherever an episode ended."""
    advantages = torch.zeros_like(rewards)
    last_advantage = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        next_values = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * not_done - values[t]
        last_advantage = delta + gamma * gae_lambda * not_done * last_advantage
        advantages[t] = last_advantage
    return advantages


def minibatch_indices(rng: np.random.Generator, batch_size: int, minibatch_size: int) -> Int[np.ndarray, "m size"]:
    """One epoch's minibatches: a single rng.permutation(batch_size) cut into consecutive rows of
    minibatch_size indices (batch_size is a multiple of minibatch_size), so every index is used once."""
    return rng.permutation(batch_size).reshape(-1, minibatch_size)


# ----------------------------------------------------------------------------- losses


def policy_loss(
    new_logprobs: Float[Tensor, " b"],
    old_logprobs: Float[Tensor, " b"],
    advantages: Float[Tensor, " b"],
    clip_coef: float,
) -> Float[Tensor, ""]:
    """PPO's clipped surrogate objective, negated to be a loss to minimise. The advantages are first
    normalised over this minibatch, (A - mean) / (std + 1e-8) with torch's default (unbiased) std; with
    ratio = exp(new - old), the loss is the mean of
    max(-A * ratio, -A * clamp(ratio, 1 - clip_coef, 1 + clip_coef))."""
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = (new_logprobs - old_logprobs).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)
    return torch.max(unclipped, clipped).mean()


def value_loss(
    new_values: Float[Tensor, " b"], old_values: Float[Tensor, " b"], returns: Float[Tensor, " b"], clip_coef: float
) -> Float[Tensor, ""]:
    """CleanRL's clipped value loss: with the new value moved at most clip_coef away from the value
    recorded in the rollout, v_clipped = old + clamp(new - old, -clip_coef, clip_coef), the loss is
    0.5 * mean(max((new - returns)^2, (v_clipped - returns)^2))."""
    clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
    return 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean()


def total_loss(
    pg_loss: Float[Tensor, ""], v_loss: Float[Tensor, ""], entropy: Float[Tensor, " b"], vf_coef: float, ent_coef: float
) -> Float[Tensor, ""]:
    """The loss PPO minimises: the policy loss, plus vf_coef times the value loss, minus ent_coef times
    the mean entropy (an entropy bonus: higher entropy lowers the loss)."""
    return pg_loss + vf_coef * v_loss - ent_coef * entropy.mean()


def annealed_lr(update: int, num_updates: int, initial_lr: float) -> float:
    """The learning rate for update number `update` (0, 1, ..., num_updates - 1): falls linearly from
    initial_lr at update 0 towards 0, reaching initial_lr / num_updates at the last update."""
    return initial_lr * (1.0 - update / num_updates)


# ----------------------------------------------------------------------------- the update and the loop


def ppo_update(
    agent: nn.Module,
    optimizer: torch.optim.Optimizer,
    buffer: RolloutBuffer,
    advantages: Float[Tensor, "t n"],
    returns: Float[Tensor, "t n"],
    args: PPOArgs,
    rng: np.random.Generator,
) -> dict[str, float]:
    """args.update_epochs epochs over the flattened rollout. Each epoch draws minibatch_indices(rng,
    batch_size, args.minibatch_size); for each minibatch in order: rerun the agent, evaluate_actions,
    policy_loss, value_loss (both with args.clip_coef) and total_loss, then zero the gradients,
    backpropagate, clip the gradient norm to args.max_grad_norm and step. Returns the last minibatch's
    policy_loss, value_loss, entropy (mean) and approx_kl (the mean of (ratio - 1) - log ratio)."""
    obs = buffer.obs.flatten(0, 1)
    actions, old_logprobs, old_values = buffer.actions.flatten(), buffer.logprobs.flatten(), buffer.values.flatten()
    advantages, returns = advantages.flatten(), returns.flatten()
    for _ in range(args.update_epochs):
        for mb in minibatch_indices(rng, len(obs), args.minibatch_size):
            logits, new_values = agent(obs[mb])
            new_logprobs, entropy = evaluate_actions(logits, actions[mb])
            pg_loss = policy_loss(new_logprobs, old_logprobs[mb], advantages[mb], args.clip_coef)
            v_loss = value_loss(new_values, old_values[mb], returns[mb], args.clip_coef)
            loss = total_loss(pg_loss, v_loss, entropy, args.vf_coef, args.ent_coef)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()
    with torch.no_grad():
        log_ratio = new_logprobs - old_logprobs[mb]
        approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()
    return {
        "policy_loss": pg_loss.item(),
        "value_loss": v_loss.item(),
        "entropy": entropy.mean().item(),
        "approx_kl": approx_kl.item(),
    }


def shaped_reward(
    reward: float, obs: Float[np.ndarray, "... 2"], next_obs: Float[np.ndarray, "... 2"], terminated: bool,
    gamma: float, scale: float,
) -> float:  # fmt: skip
    """MountainCar's reward plus potential-based shaping (Ng et al. 1999), reward + gamma * phi(next_obs)
    - phi(obs), with the potential phi = scale * (the car's mechanical energy per unit mass, in the
    environment's units): 0.5 * velocity^2 + (0.0025 / 3) * sin(3 * position), where obs = (position,
    velocity); phi is 0 at a terminal state."""

    def phi(o):
        return scale * (0.5 * o[..., 1] ** 2 + 0.0025 / 3 * np.sin(3 * o[..., 0]))

    return reward + gamma * phi(next_obs) * (1.0 - terminated) - phi(obs)


def train_ppo(args: PPOArgs, shaping: Callable | None = None, progress: bool = True) -> tuple[Agent, dict[str, list]]:
    """Train PPO as CleanRL's ppo.py does. Seed torch's global generator with args.seed, then build
    make_envs(args.env_id, args.num_envs, args.seed, shaping, args.rescale_obs), Agent(obs_dim,
    n_actions, args.hidden), Adam(lr=args.learning_rate, eps=1e-5) and, for the minibatches, NumPy's
    default_rng(args.seed). Then for each of
    args.num_updates updates: set the learning rate with annealed_lr if args.anneal_lr, collect_rollout,
    the critic's value of the next observations, compute_gae, returns = advantages + values,
    ppo_update; stop early once 20 episodes have ended and the mean return of the last 20 is
    >= args.target_return (if set). Returns the agent and a history: per ended episode its "return",
    "length" and "step" (global env steps when the rollout containing its end was finished), and per
    update its "stats" dict."""
    torch.manual_seed(args.seed)
    envs, next_obs = make_envs(args.env_id, args.num_envs, args.seed, shaping, args.rescale_obs)
    agent = Agent(envs.single_observation_space.shape[0], envs.single_action_space.n, args.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    rng = np.random.default_rng(args.seed)
    history = {"return": [], "length": [], "step": [], "stats": []}
    bar = tqdm(range(args.num_updates), desc=f"PPO {args.env_id}", disable=not progress)
    for update in bar:
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = annealed_lr(update, args.num_updates, args.learning_rate)
        buffer, next_obs, episodes = collect_rollout(envs, agent, next_obs, args.num_steps)
        with torch.no_grad():
            next_value = agent(next_obs)[1]
        advantages = compute_gae(buffer.rewards, buffer.values, buffer.dones, next_value, args.gamma, args.gae_lambda)
        returns = advantages + buffer.values
        history["stats"].append(ppo_update(agent, optimizer, buffer, advantages, returns, args, rng))
        for episode_return, length in episodes:
            history["return"].append(episode_return)
            history["length"].append(length)
            history["step"].append((update + 1) * args.batch_size)
        recent = history["return"][-20:]
        if recent:
            bar.set_postfix(mean_return=f"{np.mean(recent):.1f}")
        if args.target_return is not None and len(recent) == 20 and np.mean(recent) >= args.target_return:
            break
    envs.close()
    return agent, history


def evaluate(
    agent: nn.Module, env_id: str, episodes: int, seed: int, greedy: bool = True, rescale_obs: bool = False
) -> list[float]:
    """Returns of `episodes` episodes of one environment (reset with seed, seed + 1, ...), taking the
    most likely action (greedy) or sampling; rescale_obs as in make_envs."""
    env = gym.make(env_id)
    env = _rescaled(env) if rescale_obs else env

    @torch.no_grad()
    def act(obs: np.ndarray) -> int:
        logits, _ = agent(torch.tensor(obs, dtype=torch.float32)[None])
        return int(logits.argmax(-1) if greedy else Categorical(logits=logits).sample())

    returns = play_episodes(act, env, episodes, seed)
    env.close()
    return returns


def _main() -> None:
    """Train from the command line: every PPOArgs field is a flag (--env-id Acrobot-v1 --total-timesteps 200000)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    for f in dataclasses.fields(PPOArgs):
        kind = {bool: lambda s: s.lower() in ("1", "true", "yes"), float | None: float}.get(f.type, f.type)
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    parser.add_argument("--shaping-scale", type=float, default=0.0, help="> 0: MountainCar's energy shaping")
    parser.add_argument("--save", default=None, help="where to save the agent's state_dict (a .safetensors file)")
    parser.add_argument("--threads", type=int, default=1)
    namespace = vars(parser.parse_args())
    save, threads, scale = namespace.pop("save"), namespace.pop("threads"), namespace.pop("shaping_scale")
    torch.set_num_threads(threads)
    args = PPOArgs(**namespace)
    shaping = functools.partial(shaped_reward, gamma=args.gamma, scale=scale) if scale > 0 else None
    start = time.perf_counter()
    agent, history = train_ppo(args, shaping)
    seconds = time.perf_counter() - start
    steps = history["step"][-1] if history["step"] else 0
    print(
        f"{args.env_id}: {seconds:.0f} s, {steps} steps, mean return of the last 20: {np.mean(history['return'][-20:]):.1f}"
    )
    if save:
        save_file(agent.state_dict(), save)


if __name__ == "__main__":
    _main()
