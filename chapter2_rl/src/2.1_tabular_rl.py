# %% [markdown]
# # 2.1 Tabular RL and bandits
#
# Reinforcement learning in its smallest form: few enough states and actions that a value for each fits in a
# table. You will
#
# 1. evaluate a policy on a world whose dynamics you know, by iterating the Bellman equation and by solving it
#    as a linear system, improve it greedily, and iterate the two to the optimal policy (Sutton and Barto,
#    *Reinforcement Learning: An Introduction*, 2nd ed., chapter 4), and find the discount at which the optimal
#    policy changes;
# 2. learn without the dynamics, from experience, with Q-learning and SARSA on gymnasium's CliffWalking, and
#    reproduce the classic result of Sutton and Barto's Example 6.6: with epsilon-greedy exploration SARSA
#    learns the safe path and Q-learning the optimal path along the cliff, which it falls off while exploring;
#    then compute exactly which epsilon-greedy policy is best, and meet Expected SARSA, which finds it;
# 3. balance exploration and exploitation in a multi-armed bandit with epsilon-greedy, UCB and a gradient bandit
#    (their chapter 2).
#
# Everything here is NumPy. Arrays follow one convention: `T[s, a, s']` is the probability that action `a` in
# state `s` leads to `s'`, `R[s, a, s']` the reward for that transition, and `terminal[s]` marks states whose
# value is 0 by definition (the episode ends on entering them). Each exercise is a function whose body raises
# `NotImplementedError`; the check below it tests your version.

# %%
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from jaxtyping import Bool, Float, Int
from tqdm.auto import tqdm

from tests.checks.chapter2_rl.tabular_rl import check  # noqa: F401 (used by the check cells the build adds)

# %% [markdown]
# ## Part 1: a world with known dynamics
#
# Russell and Norvig's 3 x 4 grid world (*Artificial Intelligence: A Modern Approach*, section 17.1). States
# are the cells, numbered row by row from the top left; cell 5 is a wall; entering cell 3 pays +1 and ends the
# episode, entering cell 7 pays -1 and ends it, and every other step costs 0.04. Moves are slippery: an action
# goes the intended way with probability 0.8 and at right angles with probability 0.1 each; a move into the
# wall or the edge leaves the agent where it is. Actions are 0 up, 1 right, 2 down, 3 left (CliffWalking's
# order too). The exits loop on themselves, and the rewards for entering them are written on those loops as
# well, so a value that is not zeroed at terminal states counts them again and again. The wall is unreachable;
# it is marked terminal so that its value is 0.

# %%
MOVES = [(-1, 0), (0, 1), (1, 0), (0, -1)]  # up, right, down, left
ARROWS = ["↑", "→", "↓", "←"]


def grid_world(slip: float = 0.1, step_reward: float = -0.04):
    rows, cols, wall, goal, pit = 3, 4, 5, 3, 7
    n = rows * cols
    T, R = np.zeros((n, 4, n)), np.full((n, 4, n), step_reward)

    def destination(s: int, move: int) -> int:
        r, c = divmod(s, cols)
        r2, c2 = r + MOVES[move][0], c + MOVES[move][1]
        inside = 0 <= r2 < rows and 0 <= c2 < cols
        return r2 * cols + c2 if inside and r2 * cols + c2 != wall else s

    for s in range(n):
        for a in range(4):
            for move, p in [(a, 1 - 2 * slip), ((a + 1) % 4, slip), ((a + 3) % 4, slip)]:
                T[s, a, destination(s, move)] += p
    R[:, :, goal], R[:, :, pit] = 1.0, -1.0
    terminal = np.zeros(n, dtype=bool)
    terminal[[goal, pit, wall]] = True
    return T, R, terminal


def show_policy(policy, terminal, title):
    labels = np.array([ARROWS[a] for a in policy], dtype=object)
    labels[terminal] = ""
    labels[[3, 7, 5]] = ["+1", "-1", "wall"]
    print(title)
    print("\n".join(" ".join(f"{x:>4}" for x in row) for row in labels.reshape(3, 4)))


T, R, terminal = grid_world()
assert np.allclose(T.sum(-1), 1.0)  # every row of T is a distribution
assert np.isclose(T[8, 0, 4], 0.8) and np.isclose(T[8, 0, 8], 0.1) and np.isclose(T[8, 0, 9], 0.1)

# %% [markdown]
# ### Policy evaluation
#
# The value of a deterministic policy $\pi$ satisfies the Bellman equation
#
# $$V_\pi(s) = \sum_{s'} T(s, \pi(s), s') \big(R(s, \pi(s), s') + \gamma V_\pi(s')\big),$$
#
# with $V_\pi = 0$ at terminal states. Start from $V = 0$ and apply the right-hand side as an update until
# nothing changes: for $\gamma < 1$ it is a contraction, so this converges to $V_\pi$.


# %% [exercise] policy_eval_numerical difficulty=2 importance=4 minutes=15
def policy_eval_numerical(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    policy: Int[np.ndarray, " s"],
    gamma: float,
    eps: float = 1e-10,
    max_iterations: int = 100_000,
) -> Float[np.ndarray, " s"]:
    """The value of a deterministic policy by repeated Bellman backups, starting from V = 0:
    V(s) <- sum over s' of T[s, pi(s), s'] * (R[s, pi(s), s'] + gamma * V(s')), with V = 0 at
    terminal states, until no value changes by more than eps (or max_iterations sweeps)."""
    raise NotImplementedError()


# %% [hint]
# Which slices of T and R does the policy select? Which values must be reset after every sweep?

# %% [hint]
# `P = T[np.arange(n), policy]` is the policy's transition matrix; the expected reward is `(P * R[...]).sum(-1)`.

# %% [markdown]
# The equation is linear in $V$: with $P(s, s') = T(s, \pi(s), s')$ and $r(s)$ the expected reward,
# $V = r + \gamma P V$, so $(I - \gamma P) V = r$, one call to `np.linalg.solve`. Zero the rows of $P$ and $r$
# at terminal states first: the equation there becomes $V(s) = 0$.


# %% [exercise] policy_eval_exact difficulty=2 importance=4 minutes=10
def policy_eval_exact(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    policy: Int[np.ndarray, " s"],
    gamma: float,
) -> Float[np.ndarray, " s"]:
    """The value of a deterministic policy from the Bellman equations as one linear system,
    (I - gamma P) V = r, where P[s, s'] = T[s, pi(s), s'] and r[s] is the expected reward in s;
    terminal states get no reward and no successors (their value is 0)."""
    raise NotImplementedError()


# %% [hint]
# Rearrange V = r + gamma P V so that V appears once. What should the equation say at a terminal state?

# %% [hint]
# Copy P before zeroing its terminal rows (it may be a view of T), then `np.linalg.solve(np.eye(n) - gamma * P, r)`.

# %%
always_left = np.full(12, 3)
V_iterative = policy_eval_numerical(T, R, terminal, always_left, 0.9)
V_exact = policy_eval_exact(T, R, terminal, always_left, 0.9)
# The two agree. Always going left, the left column (cells 0, 4, 8) is a trap: bumping into the edge or slipping
# up or down keeps the agent in it, paying 0.04 a step forever: -0.04 / (1 - 0.9) = -0.4.
assert np.allclose(V_iterative, V_exact, atol=1e-8) and np.allclose(V_exact[[0, 4, 8]], -0.4)
print(V_exact.reshape(3, 4).round(3))

# %% [markdown]
# ### Policy improvement and policy iteration
#
# Given $V$, the greedy policy takes in each state the action with the highest expected reward plus discounted
# value of where it lands. The policy improvement theorem says the greedy policy for $V_\pi$ is at least as good
# as $\pi$ everywhere; **policy iteration** alternates evaluation and improvement until the policy stops changing,
# and then it is optimal. Break ties towards the lowest action (as `np.argmax` does), or policy iteration can
# switch between equally good actions forever.


# %% [exercise] policy_improvement difficulty=2 importance=4 minutes=10
def policy_improvement(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    V: Float[np.ndarray, " s"],
    gamma: float,
) -> Int[np.ndarray, " s"]:
    """The greedy policy for V: in each state the action maximising
    sum over s' of T[s, a, s'] * (R[s, a, s'] + gamma * V(s')), ties going to the lowest action
    index; action 0 at terminal states (where no action matters)."""
    raise NotImplementedError()


# %% [hint]
# Compute a value for every (state, action) pair at once. How does np.argmax treat ties? Which states need a
# fixed action?

# %% [hint]
# `(T * (R + gamma * V[None, None, :])).sum(-1)` has shape (s, a); take `.argmax(-1)` and set terminal states to 0.


# %% [exercise] find_optimal_policy difficulty=3 importance=5 minutes=15
def find_optimal_policy(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    gamma: float,
    max_iterations: int = 1000,
) -> Int[np.ndarray, " s"]:
    """Policy iteration from the policy that takes action 0 everywhere: evaluate exactly, improve
    greedily, and stop when the improved policy equals the current one."""
    raise NotImplementedError()


# %% [hint]
# What is the stopping condition, and why does consistent tie-breaking guarantee that it is reached?

# %% [hint]
# Loop: `V = policy_eval_exact(...)`, `improved = policy_improvement(...)`; stop when `np.array_equal(improved, policy)`.

# %% [markdown]
# Russell and Norvig solve this world with no discount ($\gamma = 1$). Take $\gamma = 0.999$: policy iteration
# should find their optimal policy (their Figure 17.2), right along the top row, and from the bottom right the
# long way round, away from the -1. With a heavier discount, $\gamma = 0.99$, the long way is no longer worth it
# from cell 10, which goes up past the -1 instead.

# %%
optimal = find_optimal_policy(T, R, terminal, 0.999)
show_policy(optimal, terminal, "gamma = 0.999")
# Russell and Norvig's Figure 17.2: → → → +1 / ↑ wall ↑ -1 / ↑ ← ← ←
assert optimal[[0, 1, 2, 4, 6, 8, 9, 10, 11]].tolist() == [1, 1, 1, 0, 0, 0, 3, 3, 3]
discounted = find_optimal_policy(T, R, terminal, 0.99)
show_policy(discounted, terminal, "gamma = 0.99")
assert discounted[10] == 0 and np.array_equal(np.delete(discounted, 10), np.delete(optimal, 10))

V_star = policy_eval_exact(T, R, terminal, optimal, 0.999)
# No policy does better from any state: the greedy policy for V* is V* 's own policy (the Bellman optimality check).
assert np.array_equal(policy_improvement(T, R, terminal, V_star, 0.999), optimal)
px.imshow(V_star.reshape(3, 4), text_auto=".3f", color_continuous_scale="RdBu", zmin=-1, zmax=1,
          title="V* of the grid world (gamma = 0.999)").show()  # fmt: skip

# %% [markdown]
# ### How far ahead is it worth looking?
#
# From cell 10 there are two ways to the +1: up past the -1 (a slip to the right from cell 6 falls in), or the
# long way round by the left column, which takes more steps, each costing 0.04 and discounted, but never risks
# the -1. The discount decides between them: at $\gamma = 0.99$ cell 10 goes up, at $\gamma = 0.999$ left.


# %% [finding] gamma_switch difficulty=3 importance=3 minutes=15
# What is the smallest discount gamma at which the optimal action in cell 10 is left (3)? Assign a float; four
# decimals are enough.
gamma_switch = ...

# %% [hint]
# You know a discount where the answer is "up" and one where it is "left", and the action changes only once in
# between. How do you narrow an interval around a yes/no change quickly?

# %% [hint]
# Bisect: at the middle of the interval, check `find_optimal_policy(T, R, terminal, middle)[10] == 3` and keep
# the half whose ends still disagree.

# %% [solution]
low, high = 0.99, 0.999
for _ in range(40):
    middle = (low + high) / 2
    if find_optimal_policy(T, R, terminal, middle)[10] == 3:
        high = middle
    else:
        low = middle
gamma_switch = high

# %%
print(f"cell 10 takes the long way from gamma = {gamma_switch:.5f}")
assert 0.99 < gamma_switch < 0.999
# Just below the switch up is worth more from cell 10, just above it left: the two values cross there.
for gamma, better in [(gamma_switch - 3e-4, 0), (gamma_switch + 3e-4, 3)]:
    V_gamma = policy_eval_exact(T, R, terminal, find_optimal_policy(T, R, terminal, gamma), gamma)
    Q10 = (T[10] * (R[10] + gamma * V_gamma)).sum(-1)
    assert Q10.argmax() == better and abs(Q10[0] - Q10[3]) < 2e-3
# Cells 11 and 9 switch to the long way at lighter discounts: at gamma 0.9 cell 11 already goes left, while
# cell 9 still heads right, towards cell 10, which goes up (at 0.999 both go left, as shown above).
assert find_optimal_policy(T, R, terminal, 0.9)[[9, 10, 11]].tolist() == [1, 0, 3]

# %% [markdown]
# **Value iteration** skips the explicit policy: back up each state with the best action,
# $V(s) \leftarrow \max_a \sum_{s'} T(s, a, s')\,(R(s, a, s') + \gamma V(s'))$, until nothing changes. It
# converges to $V^*$, the same values as policy iteration's final policy.


# %% [exercise] value_iteration difficulty=3 importance=4 minutes=15


def value_iteration(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    gamma: float,
    eps: float = 1e-10,
    max_iterations: int = 100_000,
) -> Float[np.ndarray, " s"]:
    """The optimal values V* by repeated Bellman optimality backups from V = 0:
    V(s) <- max over a of sum over s' of T[s, a, s'] * (R[s, a, s'] + gamma * V(s')), with V = 0
    at terminal states, until no value changes by more than eps (or max_iterations sweeps)."""
    raise NotImplementedError()


# %% [hint]
# How does this differ from evaluating one policy? Which states must be reset after every sweep?

# %% [hint]
# One sweep: `(T * (R + gamma * V[None, None, :])).sum(-1).max(-1)`, then zero the terminal states.

# %%
V_iterated = value_iteration(T, R, terminal, 0.999)
# Value iteration and policy iteration agree on V*, and V*'s greedy policy is Russell and Norvig's.
assert np.allclose(V_iterated, V_star, atol=1e-6)
assert np.array_equal(policy_improvement(T, R, terminal, V_iterated, 0.999), optimal)

# %% [markdown]
# ## Part 2: learning from experience on CliffWalking
#
# Now the agent does not know $T$ and $R$; it only acts and sees what happens. gymnasium's `CliffWalking-v1` is
# Sutton and Barto's Example 6.6: a 4 x 12 grid, start at the bottom left (state 36), goal at the bottom right
# (state 47), and the cells between them along the bottom row are a cliff. Each step costs 1; stepping into the
# cliff costs 100 and sends the agent back to the start. The shortest path runs along the edge of the cliff (13
# steps); a safe path keeps a row or more away from it.
#
# Both algorithms keep a table $Q(s, a)$ and move it towards a target after each step,
# $Q(s, a) \leftarrow Q(s, a) + \alpha\,(\text{target} - Q(s, a))$. **Q-learning** is off-policy: its target
# $r + \gamma \max_{a'} Q(s', a')$ is the value of acting greedily from $s'$, whatever the agent does next.
# **SARSA** is on-policy: its target $r + \gamma Q(s', a')$ uses the action $a'$ the agent actually takes next,
# exploration included. On a terminal transition the target is just $r$.


# %% [exercise] q_learning_update difficulty=2 importance=5 minutes=10
def q_learning_update(
    Q: Float[np.ndarray, "s a"], transition: tuple[int, int, float, int, bool], alpha: float, gamma: float
) -> None:
    """One Q-learning step on transition (s, a, r, s_next, terminated), in place:
    Q[s, a] moves a fraction alpha of the way to the target
    r + gamma * max over a' of Q[s_next, a'], or just r when the episode terminated at s_next."""
    raise NotImplementedError()


# %% [hint]
# What is the value of the state after a terminal transition? Which entry of Q changes?

# %% [hint]
# Unpack the transition; `target = r if terminated else r + gamma * Q[s_next].max()`; update `Q[s, a]` in place.


# %% [exercise] sarsa_update difficulty=2 importance=5 minutes=10
def sarsa_update(
    Q: Float[np.ndarray, "s a"],
    transition: tuple[int, int, float, int, bool],
    a_next: int,
    alpha: float,
    gamma: float,
) -> None:
    """One SARSA step on transition (s, a, r, s_next, terminated), in place:
    Q[s, a] moves a fraction alpha of the way to the target
    r + gamma * Q[s_next, a_next] (the action the policy actually takes next), or just r when the
    episode terminated at s_next."""
    raise NotImplementedError()


# %% [hint]
# Only the target differs from Q-learning: which next action does it value?

# %% [hint]
# `target = r if terminated else r + gamma * Q[s_next, a_next]`.

# %% [markdown]
# The training loop below uses your updates. Hyperparameters are Sutton and Barto's: $\epsilon = 0.1$,
# $\alpha = 0.5$, no discount, 500 episodes. Greedy choices break ties towards the lowest action.


# %%
@dataclass
class TDConfig:
    episodes: int = 500
    alpha: float = 0.5
    gamma: float = 1.0
    epsilon: float = 0.1
    seed: int = 1


def epsilon_greedy(Q, s, epsilon, rng):
    if rng.random() < epsilon:
        return int(rng.integers(Q.shape[1]))
    return int(Q[s].argmax())


def train_td(method: str, cfg: TDConfig):
    """Train a tabular agent on CliffWalking with Q-learning, SARSA or Expected SARSA; return Q and each
    episode's return."""
    env = gym.make("CliffWalking-v1")
    rng = np.random.default_rng(cfg.seed)
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    returns = []
    for episode in tqdm(range(cfg.episodes), desc=method):
        s, _ = env.reset(seed=cfg.seed + episode)
        a, total, done = epsilon_greedy(Q, s, cfg.epsilon, rng), 0.0, False
        while not done:
            s_next, r, terminated, truncated, _ = env.step(a)
            a_next = epsilon_greedy(Q, s_next, cfg.epsilon, rng)
            if method == "sarsa":
                sarsa_update(Q, (s, a, r, s_next, terminated), a_next, cfg.alpha, cfg.gamma)
            elif method == "expected_sarsa":
                expected_sarsa_update(Q, (s, a, r, s_next, terminated), cfg.alpha, cfg.gamma, cfg.epsilon)
            else:
                q_learning_update(Q, (s, a, r, s_next, terminated), cfg.alpha, cfg.gamma)
            s, a, total, done = s_next, a_next, total + r, terminated or truncated
        returns.append(total)
    return Q, np.array(returns)


def greedy_path(Q, max_steps: int = 100) -> list[int]:
    """The states the greedy policy visits from the start (at most max_steps steps)."""
    env = gym.make("CliffWalking-v1")
    s, _ = env.reset(seed=0)
    path = [s]
    for _ in range(max_steps):
        s, _, terminated, _, _ = env.step(int(Q[s].argmax()))
        path.append(s)
        if terminated:
            break
    return path


cfg = TDConfig()
Q_sarsa, returns_sarsa = train_td("sarsa", cfg)
Q_qlearn, returns_qlearn = train_td("q_learning", cfg)

# %%
path_sarsa, path_qlearn = greedy_path(Q_sarsa), greedy_path(Q_qlearn)
for name, path in [("SARSA", path_sarsa), ("Q-learning", path_qlearn)]:
    grid = np.full((4, 12), ".", dtype=object)
    grid[3, 1:11] = "C"
    for s in path:
        grid[divmod(s, 12)] = "o"
    print(f"{name}: {len(path) - 1} steps\n" + "\n".join(" ".join(row) for row in grid))

# Q-learning's greedy path is the optimal one: 13 steps, along the row next to the cliff (row 2).
assert path_qlearn[-1] == 47 and len(path_qlearn) - 1 == 13 and all(s // 12 >= 2 for s in path_qlearn)
# SARSA's greedy path reaches the goal the safe way: it climbs to the top row (row 0), 17 steps.
assert path_sarsa[-1] == 47 and len(path_sarsa) - 1 == 17 and min(s // 12 for s in path_sarsa) == 0
# Neither greedy path steps into the cliff.
assert not any(37 <= s <= 46 for s in path_sarsa + path_qlearn)

# %% [markdown]
# A caveat on the seed: 500 episodes with a constant $\alpha = 0.5$ leave SARSA's table noisy, and its greedy
# policy is not always settled. With seed 0 it goes round in a loop and does not reach the goal in
# 100 steps (Q-learning's is the 13-step path with that seed too); the notebook uses seed 1.

# %%
Q_sarsa_seed0, _ = train_td("sarsa", TDConfig(seed=0))
Q_qlearn_seed0, _ = train_td("q_learning", TDConfig(seed=0))
assert greedy_path(Q_sarsa_seed0)[-1] != 47 and len(greedy_path(Q_qlearn_seed0)) - 1 == 13

# %% [markdown]
# Yet while learning, with exploration on, SARSA collects more reward per episode: Q-learning walks the edge and
# an exploratory step now and then drops it off the cliff (-100), while SARSA's values price that risk in.

# %%
window = 20
smooth = lambda x: np.convolve(x, np.ones(window) / window, mode="valid")  # noqa: E731
fig = go.Figure()
fig.add_scatter(y=smooth(returns_sarsa), name="SARSA")
fig.add_scatter(y=smooth(returns_qlearn), name="Q-learning")
fig.update_layout(title=f"Online return per episode (moving average of {window}), epsilon = 0.1",
                  xaxis_title="episode", yaxis_title="return", yaxis_range=[-120, 0])  # fmt: skip
fig.show()
late_sarsa, late_qlearn = returns_sarsa[100:].mean(), returns_qlearn[100:].mean()
print(f"mean return over episodes 100-499: SARSA {late_sarsa:.1f}, Q-learning {late_qlearn:.1f}")
# Sutton and Barto's Figure 6.4 shows about -25 for SARSA and -50 for Q-learning.
assert late_sarsa > late_qlearn + 15 and -35 < late_sarsa < -15 and -65 < late_qlearn < -35

# %% [markdown]
# ### What should on-policy learning converge to?
#
# SARSA learns the value of the policy it follows, exploration included. With $\epsilon$ fixed at 0.1 the best
# it can aim for is the best *epsilon-greedy* policy: the deterministic policy whose epsilon-greedy version has
# the highest value. With the dynamics known, that can be computed exactly. gymnasium exposes CliffWalking's model
# as `env.unwrapped.P[s][a]`, a list of (probability, next state, reward, terminated); the cell below turns it
# into the arrays of Part 1, and `soften` writes the epsilon-greedy version of a policy as probabilities
# $\pi(a \mid s)$.


# %%
def model_from_gym(env):
    """T, R and terminal (as in Part 1) from a gymnasium toy-text environment's model P."""
    P = env.unwrapped.P
    n, k = len(P), len(P[0])
    T, R, terminal = np.zeros((n, k, n)), np.zeros((n, k, n)), np.zeros(n, dtype=bool)
    for s in range(n):
        for a in range(k):
            for p, s_next, r, terminated in P[s][a]:
                T[s, a, s_next] += p
                R[s, a, s_next] = r
                terminal[s_next] |= terminated
    return T, R, terminal


def soften(policy, epsilon, n_actions=4):
    """The epsilon-greedy version of a deterministic policy: pi[s, a] = epsilon / n_actions, plus 1 - epsilon
    on the policy's action."""
    pi = np.full((len(policy), n_actions), epsilon / n_actions)
    pi[np.arange(len(policy)), policy] += 1 - epsilon
    return pi


cliff_T, cliff_R, cliff_terminal = model_from_gym(gym.make("CliffWalking-v1"))
# Deterministic moves; only the goal ends an episode; stepping right from the start into the cliff costs 100
# and lands back on the start.
assert np.allclose(cliff_T.sum(-1), 1.0) and cliff_T.max() == 1.0 and cliff_terminal.nonzero()[0].tolist() == [47]
assert cliff_T[36, 1, 36] == 1.0 and cliff_R[36, 1, 36] == -100

# %% [markdown]
# The value of a stochastic policy is a linear system again: $V = r + \gamma P V$ with
# $P(s, s') = \sum_a \pi(a \mid s)\, T(s, a, s')$ and $r(s)$ the expected reward when actions are drawn from $\pi$.


# %% [exercise] policy_eval_stochastic difficulty=2 importance=4 minutes=10
def policy_eval_stochastic(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    pi: Float[np.ndarray, "s a"],
    gamma: float,
) -> Float[np.ndarray, " s"]:
    """The value of a stochastic policy, pi[s, a] the probability of action a in state s, as one linear
    system (I - gamma P) V = r, where P[s, s'] = sum over a of pi[s, a] T[s, a, s'] and r[s] is the
    expected reward in s; terminal states get no reward and no successors (their value is 0)."""
    raise NotImplementedError()


# %% [hint]
# A deterministic policy picks one slice of T per state; what does a mixture of actions do to those slices, and
# to the expected reward?

# %% [hint]
# `np.einsum("sa,sat->st", pi, T)` is P, and `np.einsum("sa,sat,sat->s", pi, T, R)` is r; then as in `policy_eval_exact`.

# %% [markdown]
# With it, score the two learned tables exactly: the epsilon-greedy version of each greedy policy, at the
# $\epsilon = 0.1$ they trained with, from the start. This is the expectation the online returns above sample.

# %%
exact_return = {
    name: policy_eval_stochastic(cliff_T, cliff_R, cliff_terminal, soften(Q.argmax(-1), 0.1), 1.0)[36]
    for name, Q in [("SARSA", Q_sarsa), ("Q-learning", Q_qlearn)]
}
print({name: round(float(v), 2) for name, v in exact_return.items()})
# Exploring, SARSA's safe path expects far more than Q-learning's path along the edge, as the online returns
# over episodes 100-499 estimated (each within 3 of the exact value).
assert exact_return["SARSA"] > exact_return["Q-learning"] + 15
assert abs(exact_return["SARSA"] - late_sarsa) < 3 and abs(exact_return["Q-learning"] - late_qlearn) < 3

# %% [markdown]
# Is SARSA's top-row path the best an epsilon-greedy agent can do? Policy iteration answers it, with one change:
# evaluate the epsilon-greedy version of the current policy, then improve greedily as before. It stops, and at the
# best epsilon-greedy policy (Sutton and Barto, section 5.4, prove the improvement theorem for such policies).


# %% [finding] best_soft_return difficulty=3 importance=4 minutes=20
# Run that policy iteration on the CliffWalking model with epsilon = 0.1 and gamma = 1, from the policy that goes
# up everywhere, until the policy stops changing. Keep the final deterministic policy as `soft_policy`, and
# assign the value of its epsilon-greedy version at the start (state 36), a float, to `best_soft_return`.
soft_policy = ...
best_soft_return = ...

# %% [hint]
# Which policy is evaluated, and which one does `policy_improvement` hand back? Compare the deterministic policies
# to decide when to stop.

# %% [hint]
# Loop: `V_soft = policy_eval_stochastic(cliff_T, cliff_R, cliff_terminal, soften(soft_policy, 0.1), 1.0)`, then
# `policy_improvement(cliff_T, cliff_R, cliff_terminal, V_soft, 1.0)`; stop when it returns `soft_policy` again.

# %% [solution]
soft_policy = np.zeros(48, dtype=int)
for _ in range(100):
    V_soft = policy_eval_stochastic(cliff_T, cliff_R, cliff_terminal, soften(soft_policy, 0.1), 1.0)
    improved = policy_improvement(cliff_T, cliff_R, cliff_terminal, V_soft, 1.0)
    if np.array_equal(improved, soft_policy):
        break
    soft_policy = improved
best_soft_return = float(V_soft[36])

# %%
soft_path = greedy_path(np.eye(4)[soft_policy])  # a one-hot table, so that its argmax is the policy
print(f"best epsilon-greedy policy: {len(soft_path) - 1} steps, expected return {best_soft_return:.2f}")
# The best epsilon-greedy path keeps one row from the cliff edge: the middle row (row 1), 15 steps. SARSA's
# 17-step path along the top row is more cautious than that, and expects less.
assert len(soft_path) - 1 == 15 and min(s // 12 for s in soft_path) == 1 and soft_path[-1] == 47
assert exact_return["SARSA"] < best_soft_return - 0.5

# %% [markdown]
# ### Expected SARSA
#
# SARSA's target samples the next action: a tenth of the time it is a random one, and with $\alpha = 0.5$ each
# update moves $Q(s, a)$ half the way to whatever was sampled. **Expected SARSA** (Sutton and Barto, section 6.6) replaces the
# sample with its expectation under the epsilon-greedy policy,
# $r + \gamma \sum_{a'} \pi(a' \mid s') Q(s', a')$, where the greedy action (the lowest index among ties, as in
# `epsilon_greedy`) has probability $1 - \epsilon + \epsilon / k$ and each other action $\epsilon / k$. Its
# update is SARSA's averaged over the next action, so it moves $Q$ the same way on average, without that noise.


# %% [exercise] expected_sarsa_update difficulty=3 importance=4 minutes=15
def expected_sarsa_update(
    Q: Float[np.ndarray, "s a"],
    transition: tuple[int, int, float, int, bool],
    alpha: float,
    gamma: float,
    epsilon: float,
) -> None:
    """One Expected SARSA step on transition (s, a, r, s_next, terminated), in place: Q[s, a] moves a
    fraction alpha of the way to the target r + gamma * (the mean of Q[s_next, a'] over the actions a'
    the epsilon-greedy policy would take: each with probability epsilon / n_actions, plus 1 - epsilon
    for the greedy one, the lowest index among ties), or just r when the episode terminated at s_next."""
    raise NotImplementedError()


# %% [hint]
# What probability does the epsilon-greedy sampler give the greedy action, counting the times a random draw
# picks it too? What should the probabilities add up to?

# %% [hint]
# `pi = np.full(k, epsilon / k)`, then add `1 - epsilon` at `Q[s_next].argmax()`; the target is `r + gamma * pi @ Q[s_next]`.

# %%
# Expected SARSA's step is the mean of SARSA's steps over a' drawn from the epsilon-greedy policy (the update is
# linear in the target), checked on a random table.
rng = np.random.default_rng(0)
Q_random, step = rng.normal(size=(5, 4)), (1, 2, -1.0, 3, False)
Q_expected_step = Q_random.copy()
expected_sarsa_update(Q_expected_step, step, 0.5, 0.9, 0.1)
pi_next = soften(np.array([Q_random[3].argmax()]), 0.1)[0]
Q_sarsa_steps = [Q_random.copy() for _ in range(4)]
for a_next, Q_step in enumerate(Q_sarsa_steps):
    sarsa_update(Q_step, step, a_next, 0.5, 0.9)
assert np.allclose(Q_expected_step, sum(p * Q_step for p, Q_step in zip(pi_next, Q_sarsa_steps)))

# %%
Q_expected, returns_expected = train_td("expected_sarsa", cfg)
path_expected = greedy_path(Q_expected)
late_expected = returns_expected[100:].mean()
print(f"Expected SARSA: {len(path_expected) - 1} steps, mean return over episodes 100-499 {late_expected:.1f}")
# With the same 500 episodes, Expected SARSA's greedy path is the best epsilon-greedy policy's, state for state,
# and online it collects more than SARSA (Sutton and Barto's Figure 6.3 finds the same on this task), close to
# the exact expectation.
assert path_expected == soft_path
assert late_expected > late_sarsa + 2 and abs(late_expected - best_soft_return) < 1.5
# It does so with seed 0 too, where SARSA's greedy policy went round in a loop.
assert greedy_path(train_td("expected_sarsa", TDConfig(seed=0))[0]) == soft_path

# %% [markdown]
# ## Part 3: multi-armed bandits
#
# A bandit is a one-state problem: $k$ arms, each paying a noisy reward with an unknown mean. Sutton and Barto's
# 10-armed testbed draws the means from $N(0, 1)$ and each reward from $N(\text{mean}, 1)$. The **regret** after
# $t$ pulls is how much less was collected than by always pulling the best arm, in expectation:
# $\sum_{i \le t} (\mu^* - \mu_{a_i})$. Epsilon-greedy explores at a constant rate forever, so its regret keeps
# growing linearly; **UCB1** (Auer et al. 2002) pulls the arm with the highest optimistic estimate
# $\hat\mu_a + c \sqrt{\ln t / n_a}$, whose bonus shrinks for arms pulled often, and its regret grows like
# $\log t$.


# %% [exercise] ucb_action difficulty=2 importance=4 minutes=10
def ucb_action(counts: Int[np.ndarray, " k"], values: Float[np.ndarray, " k"], t: int, c: float) -> int:
    """The UCB1 choice at step t (t >= 1 counts this step): an arm never pulled if there is one (the
    lowest index), else the arm maximising values + c * sqrt(ln t / counts), ties to the lowest index."""
    raise NotImplementedError()


# %% [hint]
# What is the bonus of an arm never pulled? Return a plain int.

# %% [hint]
# `np.flatnonzero(counts == 0)` lists the untried arms; otherwise `np.argmax(values + c * np.sqrt(np.log(t) / counts))`.


# %%
@dataclass
class BanditConfig:
    arms: int = 10
    steps: int = 1000
    runs: int = 100
    epsilon: float = 0.1
    c: float = 2.0
    alpha: float = 0.1
    baseline: bool = True
    offset: float = 0.0  # added to every arm's mean
    seed: int = 0


def run_bandit(strategy: str, cfg: BanditConfig) -> np.ndarray:
    """Mean regret per step over the runs (each run a fresh testbed, seeded by its index). Strategies:
    "epsilon_greedy", "ucb", and "gradient" (the gradient bandit, at the end of this part)."""
    regret = np.zeros(cfg.steps)
    for run in range(cfg.runs):
        rng = np.random.default_rng([cfg.seed, run])
        means = rng.normal(size=cfg.arms) + cfg.offset
        noise = rng.normal(size=cfg.steps)
        explore, random_arm = rng.random(cfg.steps), rng.integers(cfg.arms, size=cfg.steps)
        uniform = rng.random(cfg.steps)
        counts, values = np.zeros(cfg.arms, dtype=int), np.zeros(cfg.arms)
        H, mean_reward = np.zeros(cfg.arms), 0.0
        for t in range(cfg.steps):
            if strategy == "ucb":
                a = ucb_action(counts, values, t + 1, cfg.c)
            elif strategy == "gradient":
                z = np.exp(H - H.max())
                a = min(int(np.searchsorted(np.cumsum(z / z.sum()), uniform[t])), cfg.arms - 1)
            else:
                a = int(random_arm[t]) if explore[t] < cfg.epsilon else int(values.argmax())
            reward = means[a] + noise[t]
            counts[a] += 1
            values[a] += (reward - values[a]) / counts[a]  # the sample average, incrementally
            if strategy == "gradient":
                mean_reward += (reward - mean_reward) / (t + 1)
                gradient_bandit_update(H, a, reward, mean_reward if cfg.baseline else 0.0, cfg.alpha)
            regret[t] += (means.max() - means[a]) / cfg.runs
    return regret


bandit_cfg = BanditConfig()
regrets = {name: run_bandit(name, bandit_cfg) for name in tqdm(["epsilon_greedy", "ucb"], desc="bandits")}
fig = go.Figure()
for name, regret in regrets.items():
    fig.add_scatter(y=np.cumsum(regret), name=name)
fig.update_layout(title="Cumulative regret on the 10-armed testbed (mean of 100 runs)", xaxis_title="step",
                  yaxis_title="cumulative regret")  # fmt: skip
fig.show()
total = {name: regret.sum() for name, regret in regrets.items()}
late = {name: regret[-200:].mean() for name, regret in regrets.items()}
print({name: round(v, 1) for name, v in total.items()}, {name: round(v, 3) for name, v in late.items()})
# UCB ends with less total regret, and its per-step regret at the end is lower than epsilon-greedy's.
assert total["ucb"] < total["epsilon_greedy"] and late["ucb"] < late["epsilon_greedy"]

# %% [markdown]
# ### Gradient bandits
#
# A gradient bandit estimates no values. It keeps a preference $H_a$ per arm, pulls arm $a$ with probability
# $\pi_a = \text{softmax}(H)_a$, and after reward $R$ moves every preference,
# $H_b \leftarrow H_b + \alpha (R - \bar R)(\mathbb{1}[b = a] - \pi_b)$: in expectation, gradient ascent on the
# expected reward (Sutton and Barto, section 2.8). The baseline $\bar R$, here the mean of the rewards so far
# (this one included), does not change the expected step, but without it every reward above zero pushes the
# pulled arm up, good arm or not.


# %% [exercise] gradient_bandit_update difficulty=3 importance=3 minutes=15
def gradient_bandit_update(
    H: Float[np.ndarray, " k"], action: int, reward: float, baseline: float, alpha: float
) -> None:
    """One gradient-bandit step, in place, on the preferences H (the policy is softmax(H)): every arm b
    moves by alpha * (reward - baseline) * (1[b == action] - softmax(H)[b]), with the softmax of H
    before the step (computed stably, so that huge preferences do not overflow)."""
    raise NotImplementedError()


# %% [hint]
# Which probabilities enter the step: before or after you change the chosen arm's preference? What happens to
# np.exp(1000)?

# %% [hint]
# `z = np.exp(H - H.max())`; `pi = z / z.sum()`; move all of H by `-alpha * (reward - baseline) * pi`, then add
# `alpha * (reward - baseline)` to `H[action]`.

# %%
# In expectation over the pulled arm (true means mu, no noise), the step is alpha times the gradient of the
# expected reward pi . mu with respect to H, whatever the baseline.
rng = np.random.default_rng(0)
H0, mu = rng.normal(size=5), rng.normal(size=5)
pi0 = np.exp(H0) / np.exp(H0).sum()
gradient = pi0 * (mu - pi0 @ mu)  # d(pi . mu) / dH, the softmax's Jacobian applied to mu
for baseline in [0.0, 3.0]:
    mean_step = np.zeros(5)
    for a in range(5):
        H_step = H0.copy()
        gradient_bandit_update(H_step, a, mu[a], baseline, 0.1)
        mean_step += pi0[a] * (H_step - H0)
    assert np.allclose(mean_step, 0.1 * gradient)

# %% [markdown]
# Sutton and Barto's Figure 2.5 runs it on a testbed whose means are drawn from $N(4, 1)$ instead of $N(0, 1)$,
# with and without the baseline; `run_bandit` above has the gradient strategy already. (Their figure averages
# 2000 runs and plots the share of optimal actions; here 100 runs and the regret.)


# %%
gradient_runs = {
    "baseline, means N(0, 1)": BanditConfig(),
    "baseline, means N(4, 1)": BanditConfig(offset=4.0),
    "no baseline, means N(4, 1)": BanditConfig(offset=4.0, baseline=False),
}
gradient_regrets = {name: run_bandit("gradient", c) for name, c in tqdm(gradient_runs.items(), desc="gradient")}
fig = go.Figure()
for name, regret in [("ucb", regrets["ucb"]), *((f"gradient, {n}", r) for n, r in gradient_regrets.items())]:
    fig.add_scatter(y=np.cumsum(regret), name=name)
fig.update_layout(title="Cumulative regret: gradient bandits (alpha = 0.1) and UCB", xaxis_title="step",
                  yaxis_title="cumulative regret")  # fmt: skip
fig.show()
g_total = {name: regret.sum() for name, regret in gradient_regrets.items()}
g_late = {name: regret[-200:].mean() for name, regret in gradient_regrets.items()}
print("total regret", {name: round(float(v), 1) for name, v in g_total.items()})
print("regret per step, last 200", {name: round(float(v), 3) for name, v in g_late.items()})
# With the baseline, shifting every mean by 4 changes nothing: R - baseline is the same.
assert abs(g_total["baseline, means N(0, 1)"] - g_total["baseline, means N(4, 1)"]) < 1.0
# Without it, on the shifted testbed, every pull looks good: more than twice the regret.
assert g_total["no baseline, means N(4, 1)"] > 2 * g_total["baseline, means N(4, 1)"]
# Against UCB (which is shift-invariant too): the gradient bandit pays more early but less per step at the end.
assert g_total["baseline, means N(0, 1)"] > total["ucb"] and g_late["baseline, means N(0, 1)"] < late["ucb"]

# %% [markdown]
# ## Summary
#
# - With known dynamics, policy evaluation is a linear system and policy iteration finds the optimal policy in a
#   handful of rounds; the discount changes which policy is optimal.
# - Q-learning learns the value of the greedy policy and SARSA the value of the policy it follows, exploration
#   included: on CliffWalking that is the difference between the optimal path and the safe one. With the model
#   known, the best epsilon-greedy policy is computable exactly; Expected SARSA, averaging over the next action
#   instead of sampling it, finds it where SARSA's noisier target overshoots to a more cautious path.
# - In bandits, exploring by optimism (UCB) beats exploring at a constant rate (epsilon-greedy) in regret; a
#   gradient bandit learns preferences instead of values and needs a baseline when rewards are not centred.
