"""Reference solutions for 2.1 Tabular RL and bandits (after Sutton and Barto, *Reinforcement Learning:
An Introduction*, 2nd ed., chapters 2, 4 and 6).

Policy evaluation on a known MDP (iteratively, and exactly as a linear system, for deterministic and
stochastic policies), greedy policy improvement, policy iteration, value iteration, the Q-learning,
SARSA and Expected SARSA updates, and two bandit rules: UCB and the gradient bandit. Arrays are
NumPy: T[s, a, s'] is the transition probability, R[s, a, s'] the reward for that transition, and
`terminal` marks the states whose value is 0 by definition. Importing this module has no side effects.
"""

import numpy as np
from jaxtyping import Bool, Float, Int


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
    states = np.arange(T.shape[0])
    P = T[states, policy]
    r = (P * R[states, policy]).sum(-1)
    V = np.zeros(T.shape[0])
    for _ in range(max_iterations):
        new = r + gamma * P @ V
        new[terminal] = 0.0
        if np.abs(new - V).max() < eps:
            return new
        V = new
    return V


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
    states = np.arange(T.shape[0])
    P = T[states, policy].copy()
    r = (P * R[states, policy]).sum(-1)
    P[terminal] = 0.0
    r[terminal] = 0.0
    return np.linalg.solve(np.eye(T.shape[0]) - gamma * P, r)


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
    Q = (T * (R + gamma * V[None, None, :])).sum(-1)
    policy = Q.argmax(-1)
    policy[terminal] = 0
    return policy


def find_optimal_policy(
    T: Float[np.ndarray, "s a s"],
    R: Float[np.ndarray, "s a s"],
    terminal: Bool[np.ndarray, " s"],
    gamma: float,
    max_iterations: int = 1000,
) -> Int[np.ndarray, " s"]:
    """Policy iteration from the policy that takes action 0 everywhere: evaluate exactly, improve
    greedily, and stop when the improved policy equals the current one."""
    policy = np.zeros(T.shape[0], dtype=int)
    for _ in range(max_iterations):
        V = policy_eval_exact(T, R, terminal, policy, gamma)
        improved = policy_improvement(T, R, terminal, V, gamma)
        if np.array_equal(improved, policy):
            break
        policy = improved
    return policy


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
    V = np.zeros(T.shape[0])
    for _ in range(max_iterations):
        new = (T * (R + gamma * V[None, None, :])).sum(-1).max(-1)
        new[terminal] = 0.0
        if np.abs(new - V).max() < eps:
            return new
        V = new
    return V


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
    P = np.einsum("sa,sat->st", pi, T)
    r = np.einsum("sa,sat,sat->s", pi, T, R)
    P[terminal] = 0.0
    r[terminal] = 0.0
    return np.linalg.solve(np.eye(T.shape[0]) - gamma * P, r)


def q_learning_update(
    Q: Float[np.ndarray, "s a"], transition: tuple[int, int, float, int, bool], alpha: float, gamma: float
) -> None:
    """One Q-learning step on transition (s, a, r, s_next, terminated), in place:
    Q[s, a] moves a fraction alpha of the way to the target
    r + gamma * max over a' of Q[s_next, a'], or just r when the episode terminated at s_next."""
    s, a, r, s_next, terminated = transition
    target = r if terminated else r + gamma * Q[s_next].max()
    Q[s, a] += alpha * (target - Q[s, a])


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
    s, a, r, s_next, terminated = transition
    target = r if terminated else r + gamma * Q[s_next, a_next]
    Q[s, a] += alpha * (target - Q[s, a])


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
    s, a, r, s_next, terminated = transition
    if terminated:
        target = r
    else:
        q = Q[s_next]
        pi = np.full(len(q), epsilon / len(q))
        pi[q.argmax()] += 1 - epsilon
        target = r + gamma * pi @ q
    Q[s, a] += alpha * (target - Q[s, a])


def ucb_action(counts: Int[np.ndarray, " k"], values: Float[np.ndarray, " k"], t: int, c: float) -> int:
    """The UCB1 choice at step t (t >= 1 counts this step): an arm never pulled if there is one (the
    lowest index), else the arm maximising values + c * sqrt(ln t / counts), ties to the lowest index."""
    untried = np.flatnonzero(counts == 0)
    if len(untried):
        return int(untried[0])
    return int(np.argmax(values + c * np.sqrt(np.log(t) / counts)))


def gradient_bandit_update(
    H: Float[np.ndarray, " k"], action: int, reward: float, baseline: float, alpha: float
) -> None:
    """One gradient-bandit step, in place, on the preferences H (the policy is softmax(H)): every arm b
    moves by alpha * (reward - baseline) * (1[b == action] - softmax(H)[b]), with the softmax of H
    before the step (computed stably, so that huge preferences do not overflow)."""
    z = np.exp(H - H.max())
    pi = z / z.sum()
    H -= alpha * (reward - baseline) * pi
    H[action] += alpha * (reward - baseline)
