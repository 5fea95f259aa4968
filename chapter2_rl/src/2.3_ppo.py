# %% [markdown]
# # 2.3 PPO
#
# Proximal Policy Optimization (Schulman et al. 2017) is the policy-gradient method most of deep RL runs on,
# RLHF included (section 2.4). It collects a batch of experience with the current policy, then takes several
# epochs of minibatch gradient steps on it, with a clipped objective that stops the new policy from moving too
# far from the one that collected the data. You will build it piece by piece, in the shape of CleanRL's
# single-file `ppo.py` (Huang et al. 2022, "The 37 Implementation Details of Proximal Policy Optimization"):
#
# 1. the actor and critic networks, with CleanRL's orthogonal initialisation;
# 2. a rollout of several environments at once (gymnasium's vector API) into a buffer;
# 3. generalised advantage estimation (GAE), where most PPO bugs live;
# 4. the update: minibatches, the clipped surrogate objective, the value loss, the entropy bonus and a
#    learning rate that anneals to 0;
# 5. the training loop, on CartPole-v1; then reward shaping on MountainCar, and Acrobot.
#
# Every check compares your function with the reference on seeded inputs: rollouts of seeded environments
# with a seeded sampler, hand-worked GAE and losses, and whole updates by the weights they end with. A
# learning curve is never checked, since a wrong PPO can still learn CartPole.

# %%
import math
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.distributions import Categorical  # noqa: F401 (for your collect_rollout and evaluate_actions)
from tqdm.auto import tqdm

import zoo
from solutions.chapter2_rl.ppo import PPOArgs, RolloutBuffer, evaluate, make_envs
from tests.checks.chapter2_rl.ppo import check  # noqa: F401 (used by the check cells the build adds)

torch.set_num_threads(1)  # the networks are tiny: one thread is fastest, and the machine is shared
ZOO = Path(zoo.__file__).parent / "agents"  # the shipped agents, each with a CARD.md

# %% [markdown]
# The hyperparameters live in one dataclass, `PPOArgs`, with CleanRL's defaults for CartPole-v1: 4
# environments of 128 steps per rollout (a batch of 512), 4 epochs of 4 minibatches, learning rate 2.5e-4,
# gamma 0.99, GAE lambda 0.95, clip 0.2, entropy coefficient 0.01, value coefficient 0.5, gradient norm 0.5.

# %%
print(PPOArgs())
assert PPOArgs().batch_size == 512 and PPOArgs().minibatch_size == 128 and PPOArgs().num_updates == 976

# %% [markdown]
# ## Part 1: actor and critic
#
# The actor maps an observation to logits over the discrete actions; the critic to one number, its estimate
# of the value $V(s)$. CleanRL keeps them as two separate MLPs and initialises every linear layer with an
# orthogonal matrix (Saxe et al. 2014) scaled by a gain: $\sqrt 2$ in hidden layers, 1 for the critic's
# output, and 0.01 for the actor's output, so that the first policy is almost uniform. Orthogonal with gain
# $g$ means the rows (or, for a tall matrix, the columns) are orthogonal with norm $g$: $W W^\top = g^2 I$.


# %% [exercise] layer_init difficulty=1 importance=3 minutes=5
def layer_init(layer: nn.Linear, std: float = 2**0.5, bias_const: float = 0.0) -> nn.Linear:
    """Initialise a linear layer in place as CleanRL does and return it: an orthogonal weight matrix
    scaled by std (torch.nn.init.orthogonal_ with gain std), and every bias equal to bias_const."""
    raise NotImplementedError()


# %% [hint]
# Which initialisers in `torch.nn.init` change a tensor in place? What must the function give back?

# %% [hint]
# `nn.init.orthogonal_(layer.weight, std)`, `nn.init.constant_(layer.bias, bias_const)`, then `return layer`.


# %% [exercise] Agent difficulty=2 importance=4 minutes=15
class Agent(nn.Module):
    """Separate actor and critic MLPs, each Linear(obs_dim, hidden), Tanh, Linear(hidden, hidden), Tanh,
    Linear(hidden, out) as `nn.Sequential`s named `critic` (out 1) and `actor` (out n_actions), every
    layer made with layer_init: std sqrt(2) for hidden layers, 1 for the critic's output and 0.01 for the
    actor's (so the first policy is nearly uniform)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        raise NotImplementedError()

    def forward(self, obs: Float[Tensor, "b obs"]) -> tuple[Float[Tensor, "b a"], Float[Tensor, " b"]]:
        """The policy's logits and the critic's value estimate (one number per observation)."""
        raise NotImplementedError()


# %% [hint]
# Which layer's scale decides how uniform the first policy is? What shape does the critic's output have, and
# what shape should the value have?

# %% [hint]
# `layer_init(nn.Linear(hidden, n_actions), std=0.01)` ends the actor; return `self.critic(obs).squeeze(-1)`.

# %% [markdown]
# PPO needs two things from the policy at the actions that were taken: their log-probabilities (for the
# probability ratio) and the policy's entropy (for the bonus that keeps it exploring).


# %% [exercise] evaluate_actions difficulty=1 importance=3 minutes=5
def evaluate_actions(
    logits: Float[Tensor, "b a"], actions: Int[Tensor, " b"]
) -> tuple[Float[Tensor, " b"], Float[Tensor, " b"]]:
    """The log-probability of each taken action under the categorical policy with these logits,
    and the policy's entropy at each observation (in nats)."""
    raise NotImplementedError()


# %% [hint]
# `torch.distributions` has a distribution built from logits that knows both quantities.

# %% [hint]
# `dist = Categorical(logits=logits)`; return `dist.log_prob(actions), dist.entropy()`.

# %%
agent = Agent(4, 2)
logits, value = agent(torch.randn(256, 4))
_, entropy = evaluate_actions(logits, torch.zeros(256, dtype=torch.long))
# The 0.01 gain makes the first policy nearly uniform: its entropy is within 0.1% of ln 2, the maximum.
assert entropy.min() > 0.999 * math.log(2) and value.shape == (256,)
print(f"initial entropy {entropy.mean():.5f} nats (ln 2 = {math.log(2):.5f})")

# %% [markdown]
# ## Part 2: a vectorised rollout
#
# `make_envs` builds gymnasium's `SyncVectorEnv` of `num_envs` copies, wrapped in the vector
# `RecordEpisodeStatistics`, and resets them with seeds `seed, seed + 1, ...`. Stepping it with an array of
# actions steps every copy. A copy whose episode ends is reset in the same call ("same-step" autoreset, the
# behaviour CleanRL was written for; gymnasium 1.x's default is to reset on the *next* call), so the
# observation returned for it is already the first of its next episode; the episode's return and length
# appear in `info["episode"]`, for the copies marked in `info["_episode"]`.
#
# The buffer (`RolloutBuffer`) holds each quantity as a `[step, env]` tensor. The convention for episode ends:
# `dones[t]` is 1 when the step taken at `t` ended the episode, terminated (the pole fell) or truncated (the
# time limit). Like CleanRL, we treat truncation as an end; strictly, a truncated state still has a future and
# should be bootstrapped from its final observation (Pardo et al. 2018), which CleanRL does not do either.


# %% [exercise] collect_rollout difficulty=3 importance=5 minutes=20
def collect_rollout(
    envs: gym.vector.VectorEnv, agent: nn.Module, next_obs: Float[Tensor, "n obs"], num_steps: int
) -> tuple[RolloutBuffer, Float[Tensor, "n obs"], list[tuple[float, int]]]:
    """Run the agent for num_steps steps in every environment, without gradients. At each step store
    the observation, sample actions with Categorical(logits=logits).sample() (one call per step, nothing
    else random), store them with their log-probabilities and the critic's values, step the envs, and
    store the rewards and dones (terminated or truncated, as floats). Returns the buffer, the
    observations after the last step (a float tensor), and (return, length) of each episode that ended,
    in order of step then env, read from the info that RecordEpisodeStatistics adds."""
    raise NotImplementedError()


# %% [hint]
# Which observation belongs at obs[t]: the one the agent acted on, or the one the step returned? What counts as
# the end of an episode? Which entries of info["episode"] are real?

# %% [hint]
# Allocate zeros of shape (num_steps, n, ...); in the loop: `buffer.obs[step] = next_obs`, the agent under
# `torch.no_grad()`, `envs.step(action.numpy())`, `dones = terminated | truncated`; for episodes loop over
# `np.flatnonzero(info["_episode"])`.

# %%
envs, next_obs = make_envs("CartPole-v1", 4, seed=0)
torch.manual_seed(0)
buffer, next_obs, episodes = collect_rollout(envs, Agent(4, 2), next_obs, 128)
print({k: tuple(v.shape) for k, v in vars(buffer).items()}, f"{len(episodes)} episodes ended")
# A nearly uniform policy keeps the pole up for about 22 steps: in 4 x 128 steps about 23 episodes end (24
# measured), each shows up as one done, and every step pays reward 1.
assert buffer.dones.sum() == len(episodes) and 15 <= len(episodes) <= 40
assert torch.all(buffer.rewards == 1) and 10 < np.mean([length for _, length in episodes]) < 40
envs.close()

# %% [markdown]
# ## Part 3: generalised advantage estimation
#
# The policy gradient wants, for each action, how much better it was than the policy's average: the
# advantage. The one-step TD error $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$ estimates it with little
# variance but the critic's bias; the full discounted return minus $V(s_t)$ has no bias and high variance.
# GAE (Schulman et al. 2016) mixes them with $\lambda$:
#
# $$\hat A_t = \delta_t + \gamma\lambda\,\hat A_{t+1}, \quad \text{computed backwards from the last step.}$$
#
# Two boundaries need care. Where step $t$ ended an episode, $s_{t+1}$ belongs to a new episode, so neither
# $V(s_{t+1})$ nor $\hat A_{t+1}$ may flow back: multiply both by $1 - \text{done}_t$. At the last step of the
# rollout, $V(s_{t+1})$ is the critic's value of the observation after the rollout, `next_value`; the rollout
# cut the episode, the episode did not end. The critic's targets are then the returns
# $\hat A_t + V(s_t)$ (the $\lambda$-returns).


# %% [exercise] compute_gae difficulty=3 importance=5 minutes=20
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
    raise NotImplementedError()


# %% [hint]
# What is V(s_{t+1}) at the last step of the rollout? Which two terms must a done at step t cut off?

# %% [hint]
# Loop `for t in reversed(range(T))`, keep `last_advantage` (shape n); `not_done = 1.0 - dones[t]` multiplies
# both the next value in delta and the carried advantage.

# %% [markdown]
# A hand-worked example, with gamma = lambda = 0.5. At the last step, $\delta_2 = 3 + 0.5 \cdot 4 - 2 = 3$.
# Step 1 ends its episode: $\delta_1 = 2 - 1 = 1$ and nothing flows back from step 2. Step 0:
# $\delta_0 = 1 + 0.5 \cdot 1 - 0.5 = 1$ and $\hat A_0 = 1 + 0.25 \cdot 1 = 1.25$.

# %%
advantages = compute_gae(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[0.5], [1.0], [2.0]]),
                         torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([4.0]), 0.5, 0.5)  # fmt: skip
assert torch.allclose(advantages[:, 0], torch.tensor([1.25, 1.0, 3.0]))
# lambda = 1 gives the discounted return minus V; lambda = 0 the TD error (one-step lookahead).
r, v, d = torch.ones(4, 1), torch.zeros(4, 1), torch.zeros(4, 1)
assert torch.allclose(compute_gae(r, v, d, torch.zeros(1), 0.9, 1.0)[0], torch.tensor(1 + 0.9 + 0.81 + 0.729))
assert torch.allclose(compute_gae(r, v, d, torch.zeros(1), 0.9, 0.0)[0], torch.tensor(1.0))

# %% [markdown]
# ## Part 4: the update
#
# PPO reuses each batch for several epochs of minibatch steps. Each epoch shuffles the whole batch and cuts it
# into minibatches, so every sample is used exactly once per epoch. The generator is passed in, so runs are
# reproducible and each epoch gets a new order.


# %% [exercise] minibatch_indices difficulty=1 importance=3 minutes=5
def minibatch_indices(rng: np.random.Generator, batch_size: int, minibatch_size: int) -> Int[np.ndarray, "m size"]:
    """One epoch's minibatches: a single rng.permutation(batch_size) cut into consecutive rows of
    minibatch_size indices (batch_size is a multiple of minibatch_size), so every index is used once."""
    raise NotImplementedError()


# %% [hint]
# How do you get every index exactly once, in a random order?

# %% [hint]
# `rng.permutation(batch_size).reshape(-1, minibatch_size)`.

# %% [markdown]
# ### The clipped surrogate objective
#
# With $r_t(\theta) = \pi_\theta(a_t | s_t) / \pi_{\text{old}}(a_t | s_t)$, the ratio of the new policy's
# probability to the one that collected the data, PPO maximises
#
# $$L^{\text{CLIP}} = \mathbb{E}_t\big[\min\big(r_t \hat A_t,\ \text{clip}(r_t, 1 - \epsilon, 1 + \epsilon)\,\hat A_t\big)\big].$$
#
# The min makes it pessimistic: once the ratio has moved more than $\epsilon$ in the direction the advantage
# favours, the clipped term is smaller and has no gradient, so there is nothing more to gain by moving further;
# moves in the unfavoured direction are never clipped. As a loss to minimise we negate it, and the min of the
# objective becomes the max of the negated terms. CleanRL normalises the advantages in each minibatch first.


# %% [exercise] policy_loss difficulty=3 importance=5 minutes=15
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
    raise NotImplementedError()


# %% [hint]
# What is clipped, the ratio or the advantage? After negating, does the pessimistic choice become a min or a
# max?

# %% [hint]
# `ratio = (new_logprobs - old_logprobs).exp()`; `torch.max(-A * ratio, -A * ratio.clamp(1 - c, 1 + c)).mean()`.

# %% [markdown]
# The critic regresses on the returns. CleanRL (following OpenAI's baselines) clips the value update too: the
# loss is the larger of the squared errors of the new value and of the value moved at most $\epsilon$ from the
# old one. Andrychowicz et al. (2021) found this clipping does not help and can hurt; we keep it to match
# CleanRL.


# %% [exercise] value_loss difficulty=2 importance=4 minutes=10
def value_loss(
    new_values: Float[Tensor, " b"], old_values: Float[Tensor, " b"], returns: Float[Tensor, " b"], clip_coef: float
) -> Float[Tensor, ""]:
    """CleanRL's clipped value loss: with the new value moved at most clip_coef away from the value
    recorded in the rollout, v_clipped = old + clamp(new - old, -clip_coef, clip_coef), the loss is
    0.5 * mean(max((new - returns)^2, (v_clipped - returns)^2))."""
    raise NotImplementedError()


# %% [hint]
# What gets clamped, the value or its change since the rollout? Which of the two errors is kept?

# %% [hint]
# `clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)`, then the max of the squares.


# %% [exercise] total_loss difficulty=1 importance=4 minutes=5
def total_loss(
    pg_loss: Float[Tensor, ""], v_loss: Float[Tensor, ""], entropy: Float[Tensor, " b"], vf_coef: float, ent_coef: float
) -> Float[Tensor, ""]:
    """The loss PPO minimises: the policy loss, plus vf_coef times the value loss, minus ent_coef times
    the mean entropy (an entropy bonus: higher entropy lowers the loss)."""
    raise NotImplementedError()


# %% [hint]
# Should minimising the loss push the entropy up or down?

# %% [hint]
# `pg_loss + vf_coef * v_loss - ent_coef * entropy.mean()`.

# %% [markdown]
# The learning rate falls linearly to 0 over training, so late updates make small changes to a policy that
# already works.


# %% [exercise] annealed_lr difficulty=1 importance=2 minutes=5
def annealed_lr(update: int, num_updates: int, initial_lr: float) -> float:
    """The learning rate for update number `update` (0, 1, ..., num_updates - 1): falls linearly from
    initial_lr at update 0 towards 0, reaching initial_lr / num_updates at the last update."""
    raise NotImplementedError()


# %% [hint]
# What fraction of the training is left at update `update`?

# %% [hint]
# `initial_lr * (1.0 - update / num_updates)`.

# %%
lrs = [annealed_lr(u, 976, 2.5e-4) for u in range(976)]
go.Figure(go.Scatter(y=lrs)).update_layout(title="The annealed learning rate over CleanRL's 976 updates",
                                           xaxis_title="update", yaxis_title="learning rate").show()  # fmt: skip
assert lrs[0] == 2.5e-4 and math.isclose(lrs[-1], 2.5e-4 / 976)

# %% [markdown]
# ### The whole update
#
# Put the pieces together: flatten the `[step, env]` batch, then for each epoch and each minibatch rerun the
# agent on the stored observations, compute the three losses, and take one clipped gradient step. Also report
# an estimate of how far the policy moved, the KL divergence from the old policy, with the low-variance
# estimator $(r - 1) - \log r$ (Schulman 2020, "Approximating KL divergence"): CleanRL logs it.


# %% [exercise] ppo_update difficulty=4 importance=5 minutes=25
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
    raise NotImplementedError()


# %% [hint]
# What must be recomputed with gradients for each minibatch, and what comes from the buffer? In what order do
# zeroing, backpropagation, clipping and the optimiser step go?

# %% [hint]
# `obs = buffer.obs.flatten(0, 1)` (and `.flatten()` for the rest); `nn.utils.clip_grad_norm_(agent.parameters(),
# args.max_grad_norm)` between `loss.backward()` and `optimizer.step()`.

# %% [markdown]
# ## Part 5: training on CartPole
#
# The loop: anneal the learning rate, collect a rollout, bootstrap from the critic's value of the next
# observations, compute advantages and returns, update. CartPole-v1 pays 1 per step the pole stays up, up to
# 500 steps; it counts as solved at a mean return of 475.


# %% [exercise] train_ppo difficulty=3 importance=5 minutes=20
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
    raise NotImplementedError()


# %% [hint]
# Which random draws happen in which order (agent weights, samples, minibatches), and which generator does
# each use? What is V(s_{t+1}) at the end of a rollout?

# %% [hint]
# `optimizer.param_groups[0]["lr"] = annealed_lr(update, args.num_updates, args.learning_rate)`; `next_value =
# agent(next_obs)[1]` under `torch.no_grad()`; pass `shaping` straight on to `make_envs`.

# %% [markdown]
# CleanRL's `ppo.py` reaches an episodic return of 490 ± 6 on CartPole-v1 over its 500k steps (CleanRL's
# documentation, ppo.py benchmark table). `benchmarks/ppo_cartpole.py` runs the same loop until the mean of the
# last 20 episodes reaches 475: measured here, 154,624 steps and 134 s on one thread with other jobs running
# (mean 488.2). The notebook trains for 50k steps with the same hyperparameters (the learning rate annealing
# over those 50k), about 10 seconds alone.

# %%
cartpole_args = PPOArgs(total_timesteps=50_000)
cartpole_agent, cartpole_history = train_ppo(cartpole_args)
returns, steps = np.array(cartpole_history["return"]), np.array(cartpole_history["step"])
last20 = returns[-20:].mean()
print(f"{len(returns)} episodes; mean return of the last 20: {last20:.1f}")
fig = go.Figure()
fig.add_scatter(x=steps, y=returns, mode="markers", marker_size=3, name="episode return")
fig.add_scatter(x=steps[19:], y=np.convolve(returns, np.ones(20) / 20, "valid"), name="mean of 20")
fig.update_layout(title="PPO on CartPole-v1 (50k steps)", xaxis_title="environment steps", yaxis_title="return")
fig.show()
# Measured with seed 1: 180 (and 187 with 8 envs x 64 steps). A random policy averages about 22. Unlike
# CleanRL's 500k-step run, these 50k steps do not solve CartPole (475).
assert 120 < last20 < 475, last20
greedy = evaluate(cartpole_agent, "CartPole-v1", episodes=5, seed=1000)
print("greedy returns:", greedy)
# Acting greedily (the most likely action), the 50k-step policy holds the pole longer than it does while sampling.
assert np.mean(greedy) > last20

# %%
stats = cartpole_history["stats"]
fig = go.Figure()
for key in ["approx_kl", "entropy"]:
    fig.add_scatter(y=[s[key] for s in stats], name=key)
fig.update_layout(title="Per update: approximate KL to the old policy, and entropy", xaxis_title="update")
fig.show()
# The entropy falls from ln 2 as the policy becomes confident; each update moves the policy only a little.
assert stats[-1]["entropy"] < stats[0]["entropy"] and max(s["approx_kl"] for s in stats) < 0.1

# %% [markdown]
# ## Part 6: reward shaping on MountainCar
#
# MountainCar-v0 pays -1 per step until the car reaches the flag on the right hill, with 200 steps per episode.
# The engine is too weak to drive up: the car must rock back and forth to gain energy. A near-uniform policy
# almost never reaches the flag, so every episode returns -200 and there is nothing to learn from.
#
# Shaping adds a reward that guides without changing what is optimal. Ng, Harada and Russell (1999) showed
# that adding $F = \gamma \Phi(s') - \Phi(s)$, for any potential $\Phi$ of the state, leaves the optimal policy
# unchanged (with $\Phi = 0$ at terminal states). For the car, a natural potential is its mechanical energy: in
# MountainCar's dynamics the velocity changes by $-0.0025 \cos(3x)$ per step from gravity, which is the slope of
# a potential energy $\frac{0.0025}{3} \sin(3x)$; with the kinetic energy $\frac12 v^2$, the energy grows
# only when the engine pushes along the motion.


# %% [exercise] shaped_reward difficulty=2 importance=4 minutes=10
def shaped_reward(
    reward: float, obs: Float[np.ndarray, "... 2"], next_obs: Float[np.ndarray, "... 2"], terminated: bool,
    gamma: float, scale: float,
) -> float:  # fmt: skip
    """MountainCar's reward plus potential-based shaping (Ng et al. 1999), reward + gamma * phi(next_obs)
    - phi(obs), with the potential phi = scale * (the car's mechanical energy per unit mass, in the
    environment's units): 0.5 * velocity^2 + (0.0025 / 3) * sin(3 * position), where obs = (position,
    velocity); phi is 0 at a terminal state."""
    raise NotImplementedError()


# %% [hint]
# Which energy does gravity's term in the velocity update come from? What is the potential of a terminal state?

# %% [hint]
# `phi = scale * (0.5 * v**2 + 0.0025 / 3 * np.sin(3 * x))` with `x, v = o[..., 0], o[..., 1]`; multiply the
# next potential by `1.0 - terminated`.

# %% [markdown]
# MountainCar's velocity lives in [-0.07, 0.07] and its position in [-1.2, 0.6]: `rescale_obs` maps both onto
# [-1, 1] before the agent sees them (the shaping still sees the raw state). The other changes from CartPole's
# settings are 8 environments, 10 epochs, learning rate 1e-3 and no entropy bonus. First, without shaping, for
# 16k steps (about 8 seconds): no episode reaches the flag, so every return is -200.

# %%
mountain_args = PPOArgs(env_id="MountainCar-v0", total_timesteps=16_384, rescale_obs=True, num_envs=8,
                        update_epochs=10, learning_rate=1e-3, ent_coef=0.0)  # fmt: skip
_, unshaped_history = train_ppo(mountain_args)
assert all(length == 200 for length in unshaped_history["length"])  # not one flag in 16k steps

# %% [markdown]
# With the shaping, 24k steps were not enough either (measured), so the zoo ships the agent trained for
# 100k steps with shaping scale 10,000 (15 s to 3 minutes here, depending on load; its card has the command). Over those 100k
# steps, measured by `benchmarks/ppo_cartpole.py`: with shaping, 309 of 565 episodes reached the flag (the first
# within 39k steps) and the last 20 took 140 steps on average; without shaping, 53 of 496 did (the first within
# 48k steps) and the last 20 averaged 199 steps, nearly all timing out. The shipped agent, acting greedily,
# reaches the flag in every test episode.

# %%
mountain_agent = Agent(2, 3)
mountain_agent.load_state_dict(load_file(ZOO / "ppo-mountaincar" / "agent.safetensors"))
mountain_returns = evaluate(mountain_agent, "MountainCar-v0", episodes=10, seed=1000, rescale_obs=True)
print("greedy returns of the shaped agent:", mountain_returns)
# Measured: -112 to -119 (a hand-written "push the way you are moving" policy takes 116 to 124 steps).
assert max(mountain_returns) < -100 and min(mountain_returns) > -130

# %% [markdown]
# ## Part 7: Acrobot
#
# Acrobot-v1 is a two-link pendulum with a motor at the joint between the links; it pays -1 per step until the
# tip swings above a line, for up to 500 steps. CleanRL's hyperparameters learn it too, in 200k steps (about
# 5 minutes here with other work running): the zoo ships that agent. Here you evaluate it, then fine-tune it
# for a few updates with your own rollout, GAE and update, at a small learning rate.

# %%
acrobot_agent = Agent(6, 3)
acrobot_agent.load_state_dict(load_file(ZOO / "ppo-acrobot" / "agent.safetensors"))
acrobot_returns = evaluate(acrobot_agent, "Acrobot-v1", episodes=10, seed=1000)
print(f"greedy returns: {acrobot_returns}, mean {np.mean(acrobot_returns):.1f}")
# Measured: mean -93 (a random policy almost always runs to the 500-step limit).
assert np.mean(acrobot_returns) > -110

# %%
fine_tune_args = PPOArgs(env_id="Acrobot-v1", learning_rate=1e-4, num_envs=4, num_steps=128)
envs, next_obs = make_envs("Acrobot-v1", fine_tune_args.num_envs, seed=2000)
optimizer = torch.optim.Adam(acrobot_agent.parameters(), lr=fine_tune_args.learning_rate, eps=1e-5)
rng, fine_tune_returns = np.random.default_rng(0), []
torch.manual_seed(0)
for _ in tqdm(range(8), desc="fine-tuning on Acrobot"):
    buffer, next_obs, episodes = collect_rollout(envs, acrobot_agent, next_obs, fine_tune_args.num_steps)
    with torch.no_grad():
        next_value = acrobot_agent(next_obs)[1]
    advantages = compute_gae(buffer.rewards, buffer.values, buffer.dones, next_value, 0.99, 0.95)
    ppo_update(acrobot_agent, optimizer, buffer, advantages, advantages + buffer.values, fine_tune_args, rng)
    fine_tune_returns += [episode_return for episode_return, _ in episodes]
envs.close()
print(f"{len(fine_tune_returns)} episodes while fine-tuning, mean return {np.mean(fine_tune_returns):.1f}")
# Sampling (not greedy) while it trains, the agent keeps its level: measured mean -114 (greedy, above: -93).
assert len(fine_tune_returns) >= 20 and np.mean(fine_tune_returns) > -130

# %% [markdown]
# ## Summary
#
# - PPO is a loop of rollouts and updates: a vectorised rollout into `[step, env]` tensors, GAE that restarts at
#   every episode end and bootstraps from the critic at the end of the rollout, then epochs of shuffled
#   minibatches on a clipped surrogate, a clipped value loss and an entropy bonus.
# - With CleanRL's hyperparameters it learns CartPole-v1: 50k steps here reach a mean return above 120, and
#   the benchmark script runs on to 475 (CleanRL publishes 490 ± 6 over 500k steps).
# - Where almost no episode succeeds (MountainCar), a potential-based shaping reward, the car's mechanical
#   energy, gives a dense signal without changing which policy is optimal.
