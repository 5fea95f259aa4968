"""Checks for 2.1 Tabular RL and bandits.

Policy evaluation, improvement and iteration are checked on two 2-state MDPs solved by hand (worked
in the comments), on Russell and Norvig's 3 x 4 grid world (whose optimal policy is their Figure
17.2), and on random MDPs. The TD updates are checked on hand-worked single steps, and UCB on
hand-worked choices and random bandit states. Arrays are NumPy: messages speak of arrays.

The findings' truths are computed here with the references: the discount at which the grid world's
cell 10 switches to the long way (by bisection), and the expected return of the best epsilon-greedy
policy on CliffWalking, whose model is written out below by hand (independently of gymnasium's).
"""

import dataclasses

import numpy as np
import torch

from solutions.chapter2_rl import tabular_rl as ref
from tests.harness import Case, Checker, Exercise, Finding, Mismatch, compare, describe, number_within

# ----------------------------------------------------------------------------- small MDPs


def _mdp_a():
    """State 0: action 0 stays with reward 1; action 1 moves to the terminal state 1 with reward 10.
    The terminal state 1 loops on itself with reward 5 (action 0) or 7 (action 1): those rewards must
    never count, since a terminal state's value is 0."""
    T, R = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    T[0, 0, 0], R[0, 0, 0] = 1.0, 1.0
    T[0, 1, 1], R[0, 1, 1] = 1.0, 10.0
    T[1, 0, 1], R[1, 0, 1] = 1.0, 5.0
    T[1, 1, 1], R[1, 1, 1] = 1.0, 7.0
    return T, R, np.array([False, True])


def _mdp_b():
    """No terminal state. State 0, action 0: stay with probability 0.5 (reward 0) or move to 1 with
    probability 0.5 (reward 2). State 1, action 0: back to 0 with reward -1. Action 1 is the same as
    action 0 except that it gives 0.5 less reward."""
    T, R = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    T[0, :, 0], T[0, :, 1], T[1, :, 0] = 0.5, 0.5, 1.0
    R[0, 0, 1], R[1, 0, 0] = 2.0, -1.0
    R[:, 1] = R[:, 0] - 0.5
    return T, R, np.array([False, False])


def _random_mdp(gen, n_states, n_actions, n_terminal):
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    T = rng.random((n_states, n_actions, n_states)) ** 3
    T /= T.sum(-1, keepdims=True)
    R = rng.normal(size=(n_states, n_actions, n_states))
    terminal = np.zeros(n_states, dtype=bool)
    terminal[rng.choice(n_states, n_terminal, replace=False)] = True
    policy = rng.integers(n_actions, size=n_states)
    return T, R, terminal, policy


def _gridworld():
    """Russell and Norvig's 3 x 4 world (row-major; wall at 5, +1 at 3, -1 at 7), as the notebook builds it."""
    cols, S = 4, 12
    T, R = np.zeros((S, 4, S)), np.full((S, 4, S), -0.04)
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]

    def dest(s, m):
        r, c = divmod(s, cols)
        r2, c2 = r + moves[m][0], c + moves[m][1]
        return s if not (0 <= r2 < 3 and 0 <= c2 < cols) or r2 * cols + c2 == 5 else r2 * cols + c2

    for s in range(S):
        for a in range(4):
            for m, p in [(a, 0.8), ((a + 1) % 4, 0.1), ((a + 3) % 4, 0.1)]:
                T[s, a, dest(s, m)] += p
    R[:, :, 3], R[:, :, 7] = 1.0, -1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[[3, 5, 7]] = True
    return T, R, terminal


# Russell and Norvig's Figure 17.2 (gamma 1; here 0.999, since at 0.99 state 10 goes up instead): right, right, right, (+1) / up, (wall), up, (-1) / up, left, left, left.
_GRID_OPTIMUM = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 3, 3, 3])


def _eval_cases(gen):
    T, R, terminal = _mdp_a()
    # Staying forever: V0 = 1 + 0.5 V0, so V0 = 2.
    yield Case((T, R, terminal, np.array([0, 0]), 0.5), "2 states, stay forever, gamma 0.5 (worked by hand)",
               expected=np.array([2.0, 0.0]))  # fmt: skip
    # Leaving at once: V0 = 10 (the terminal state's loop rewards never count).
    yield Case((T, R, terminal, np.array([1, 1]), 0.5), "2 states, leave for the terminal state (worked by hand)",
               expected=np.array([10.0, 0.0]))  # fmt: skip
    T, R, terminal = _mdp_b()
    # V0 = 0.5 (0 + 0.5 V0) + 0.5 (2 + 0.5 V1), V1 = -1 + 0.5 V0: V0 = 1.2, V1 = -0.4.
    yield Case((T, R, terminal, np.array([0, 0]), 0.5), "2 stochastic states, no terminal (worked by hand)",
               expected=np.array([1.2, -0.4]))  # fmt: skip
    T, R, terminal = _gridworld()
    yield Case((T, R, terminal, _GRID_OPTIMUM, 0.999), "the 3 x 4 grid world, its optimal policy")
    yield Case((T, R, terminal, np.zeros(12, dtype=int), 0.9), "the 3 x 4 grid world, always up")
    for n_states, n_actions, n_terminal in [(5, 3, 1), (8, 4, 2), (20, 2, 0)]:
        T, R, terminal, policy = _random_mdp(gen, n_states, n_actions, n_terminal)
        yield Case((T, R, terminal, policy, 0.9), f"random MDP, {n_states} states, {n_actions} actions")


def _expected_rewards(T, R, policy):
    states = np.arange(T.shape[0])
    return T[states, policy], (T[states, policy] * R[states, policy]).sum(-1)


def _iterate(T, R, terminal, gamma, backup, zero_terminal=True, sweeps=100_000):
    V = np.zeros(T.shape[0])
    for _ in range(sweeps):
        new = backup(V)
        if zero_terminal:
            new[terminal] = 0.0
        if np.abs(new - V).max() < 1e-10:
            return new
        V = new
    return V


def _eval_max_over_actions(T, R, terminal, policy, gamma, eps=1e-10, max_iterations=100_000):
    return _iterate(T, R, terminal, gamma, lambda V: (T * (R + gamma * V)).sum(-1).max(-1))


def _eval_terminal_not_zeroed(T, R, terminal, policy, gamma, eps=1e-10, max_iterations=100_000):
    P, r = _expected_rewards(T, R, policy)
    return _iterate(T, R, terminal, gamma, lambda V: r + gamma * P @ V, zero_terminal=False)


def _eval_discounts_reward(T, R, terminal, policy, gamma, eps=1e-10, max_iterations=100_000):
    P, r = _expected_rewards(T, R, policy)
    return _iterate(T, R, terminal, gamma, lambda V: gamma * (r + P @ V))


def _eval_one_sweep(T, R, terminal, policy, gamma, eps=1e-10, max_iterations=100_000):
    return _iterate(T, R, terminal, gamma, lambda V: _expected_rewards(T, R, policy)[1], sweeps=1)


def _eval_unweighted_reward(T, R, terminal, policy, gamma, eps=1e-10, max_iterations=100_000):
    states = np.arange(T.shape[0])
    P, r = T[states, policy], R[states, policy].mean(-1)
    return _iterate(T, R, terminal, gamma, lambda V: r + gamma * P @ V)


def _exact_terminal_not_zeroed(T, R, terminal, policy, gamma):
    P, r = _expected_rewards(T, R, policy)
    return np.linalg.solve(np.eye(len(r)) - gamma * P, r)


def _exact_transposed(T, R, terminal, policy, gamma):
    P, r = _expected_rewards(T, R, policy)
    P, r = P.copy(), r.copy()
    P[terminal], r[terminal] = 0.0, 0.0
    return np.linalg.solve(np.eye(len(r)) - gamma * P.T, r)


def _exact_rewards_only_zeroed(T, R, terminal, policy, gamma):
    P, r = _expected_rewards(T, R, policy)
    r = r.copy()
    r[terminal] = 0.0
    return np.linalg.solve(np.eye(len(r)) + gamma * P, r)


# ----------------------------------------------------------------------------- improvement and iteration


def _improve_cases(gen):
    T, R, terminal = _mdp_a()
    # V = (2, 0), gamma 0.5: staying is worth 1 + 1 = 2, leaving 10; the terminal state gets action 0.
    yield Case((T, R, terminal, np.array([2.0, 0.0]), 0.5), "2 states, V = (2, 0) (worked by hand)",
               expected=np.array([1, 0]))  # fmt: skip
    # V = (18, 0): staying is worth 1 + 9 = 10, the same as leaving: the tie goes to action 0.
    yield Case((T, R, terminal, np.array([18.0, 0.0]), 0.5), "2 states, a tie at V = (18, 0) (worked by hand)",
               expected=np.array([0, 0]))  # fmt: skip
    # V = (12, 0): staying is worth 1 + 6 = 7 < 10 (it would be 13 without the discount).
    yield Case((T, R, terminal, np.array([12.0, 0.0]), 0.5), "2 states, V = (12, 0) (worked by hand)",
               expected=np.array([1, 0]))  # fmt: skip
    T, R, terminal = _mdp_b()
    yield Case((T, R, terminal, np.array([1.2, -0.4]), 0.5), "2 states, action 1 always 0.5 worse (worked by hand)",
               expected=np.array([0, 0]))  # fmt: skip
    T, R, terminal = _gridworld()
    yield Case((T, R, terminal, np.zeros(12), 0.999), "the grid world, V = 0 (ties everywhere but next to the exits)")
    V = ref.policy_eval_exact(T, R, terminal, _GRID_OPTIMUM, 0.999)
    yield Case((T, R, terminal, V, 0.999), "the grid world, V of its optimal policy", expected=_GRID_OPTIMUM)
    for n_states, n_actions, n_terminal in [(6, 3, 1), (10, 4, 2)]:
        T, R, terminal, _ = _random_mdp(gen, n_states, n_actions, n_terminal)
        V = np.random.default_rng(n_states).normal(size=n_states) * 3
        yield Case((T, R, terminal, V, 0.9), f"random MDP, {n_states} states, random V")


def _q_values(T, R, V, gamma):
    return (T * (R + gamma * V[None, None, :])).sum(-1)


def _improve_ties_to_last(T, R, terminal, V, gamma):
    Q = _q_values(T, R, V, gamma)
    policy = Q.shape[1] - 1 - Q[:, ::-1].argmax(-1)
    policy[terminal] = 0
    return policy


def _improve_terminal_not_zeroed(T, R, terminal, V, gamma):
    return _q_values(T, R, V, gamma).argmax(-1)


def _improve_no_gamma(T, R, terminal, V, gamma):
    policy = _q_values(T, R, V, 1.0).argmax(-1)
    policy[terminal] = 0
    return policy


def _improve_best_next_state(T, R, terminal, V, gamma):
    policy = np.where(T > 0, R + gamma * V[None, None, :], -np.inf).max(-1).argmax(-1)
    policy[terminal] = 0
    return policy


def _optimal_cases(gen):
    T, R, terminal = _mdp_a()
    # Staying forever is worth 1 / (1 - gamma): 2 < 10 at gamma 0.5, 20 > 10 at gamma 0.95.
    yield Case((T, R, terminal, 0.5), "2 states, gamma 0.5: leave (worked by hand)", expected=np.array([1, 0]))
    yield Case((T, R, terminal, 0.95), "2 states, gamma 0.95: stay (worked by hand)", expected=np.array([0, 0]))
    T, R, terminal = _gridworld()
    yield Case(
        (T, R, terminal, 0.999), "the 3 x 4 grid world (Russell and Norvig's Figure 17.2)", expected=_GRID_OPTIMUM
    )
    for n_states, n_actions, n_terminal in [(6, 3, 1), (12, 4, 2), (30, 3, 3)]:
        T, R, terminal, _ = _random_mdp(gen, n_states, n_actions, n_terminal)
        yield Case((T, R, terminal, 0.9), f"random MDP, {n_states} states")


def _optimal_one_round(T, R, terminal, gamma, max_iterations=1000):
    policy = np.zeros(T.shape[0], dtype=int)
    return ref.policy_improvement(T, R, terminal, ref.policy_eval_exact(T, R, terminal, policy, gamma), gamma)


def _optimal_terminal_not_zeroed(T, R, terminal, gamma, max_iterations=1000):
    policy = np.zeros(T.shape[0], dtype=int)
    for _ in range(max_iterations):
        improved = ref.policy_improvement(
            T, R, terminal, _exact_terminal_not_zeroed(T, R, terminal, policy, gamma), gamma
        )
        if np.array_equal(improved, policy):
            break
        policy = improved
    return policy


def _optimal_few_sweeps(T, R, terminal, gamma, max_iterations=1000):
    V = np.zeros(T.shape[0])
    for _ in range(3):
        V = _q_values(T, R, V, gamma).max(-1)
        V[terminal] = 0.0
    return ref.policy_improvement(T, R, terminal, V, gamma)


def _value_cases(gen):
    T, R, terminal = _mdp_a()
    # V0 = max(1 + 0.5 V0, 10) = 10 at gamma 0.5; at gamma 0.95 staying is worth 1 / 0.05 = 20.
    yield Case((T, R, terminal, 0.5), "2 states, gamma 0.5 (worked by hand)", expected=np.array([10.0, 0.0]))
    yield Case((T, R, terminal, 0.95), "2 states, gamma 0.95 (worked by hand)", expected=np.array([20.0, 0.0]))
    T, R, terminal = _mdp_b()
    # Action 0 is always better, so V* is action 0's value: (1.2, -0.4).
    yield Case((T, R, terminal, 0.5), "2 stochastic states (worked by hand)", expected=np.array([1.2, -0.4]))
    T, R, terminal = _gridworld()
    yield Case((T, R, terminal, 0.999), "the 3 x 4 grid world",
               expected=ref.policy_eval_exact(T, R, terminal, _GRID_OPTIMUM, 0.999))  # fmt: skip
    for n_states, n_actions, n_terminal in [(6, 3, 1), (12, 4, 2)]:
        T, R, terminal, _ = _random_mdp(gen, n_states, n_actions, n_terminal)
        yield Case((T, R, terminal, 0.9), f"random MDP, {n_states} states")


def _vi_terminal_not_zeroed(T, R, terminal, gamma, eps=1e-10, max_iterations=100_000):
    return _iterate(T, R, terminal, gamma, lambda V: _q_values(T, R, V, gamma).max(-1), zero_terminal=False)


def _vi_mean_over_actions(T, R, terminal, gamma, eps=1e-10, max_iterations=100_000):
    return _iterate(T, R, terminal, gamma, lambda V: _q_values(T, R, V, gamma).mean(-1))


def _vi_max_before_expectation(T, R, terminal, gamma, eps=1e-10, max_iterations=100_000):
    return _iterate(T, R, terminal, gamma, lambda V: (T * (R + gamma * V)).max(-1).max(-1))


# ----------------------------------------------------------------------------- stochastic policies


def _stochastic_cases(gen):
    T, R, terminal = _mdp_a()
    # Stay or leave with probability 0.5 each: V0 = 0.5 (1 + 0.5 V0) + 0.5 * 10, so 0.75 V0 = 5.5, V0 = 22/3.
    yield Case((T, R, terminal, np.array([[0.5, 0.5], [1.0, 0.0]]), 0.5), "2 states, a coin flip (worked by hand)",
               expected=np.array([22 / 3, 0.0]))  # fmt: skip
    # A deterministic policy written as probabilities: staying forever is worth 2, as before.
    yield Case((T, R, terminal, np.array([[1.0, 0.0], [0.0, 1.0]]), 0.5), "2 states, one-hot: stay (worked by hand)",
               expected=np.array([2.0, 0.0]))  # fmt: skip
    T, R, terminal = _mdp_b()
    # Expected rewards 0.75 in state 0 and -1.25 in state 1; V0 = 0.75 + 0.25 V0 + 0.25 V1, V1 = -1.25 + 0.5 V0:
    # V0 = 0.7, V1 = -0.9.
    yield Case((T, R, terminal, np.full((2, 2), 0.5), 0.5), "2 stochastic states, uniform policy (worked by hand)",
               expected=np.array([0.7, -0.9]))  # fmt: skip
    T, R, terminal = _gridworld()
    yield Case((T, R, terminal, np.full((12, 4), 0.25), 0.9), "the grid world, uniformly random policy")
    soft = np.full((12, 4), 0.025)
    soft[np.arange(12), _GRID_OPTIMUM] += 0.9
    yield Case((T, R, terminal, soft, 0.999), "the grid world, its optimal policy epsilon-greedy (0.1)")
    for n_states, n_actions, n_terminal in [(5, 3, 1), (8, 4, 2), (20, 2, 0)]:
        T, R, terminal, _ = _random_mdp(gen, n_states, n_actions, n_terminal)
        pi = np.random.default_rng(n_states).dirichlet(np.ones(n_actions), size=n_states)
        yield Case((T, R, terminal, pi, 0.9), f"random MDP, {n_states} states, {n_actions} actions, random policy")


def _soft_most_probable_action(T, R, terminal, pi, gamma):
    return ref.policy_eval_exact(T, R, terminal, pi.argmax(-1), gamma)


def _soft_uniform_actions(T, R, terminal, pi, gamma):
    return ref.policy_eval_stochastic(T, R, terminal, np.full_like(pi, 1 / pi.shape[1]), gamma)


def _soft_terminal_not_zeroed(T, R, terminal, pi, gamma):
    P, r = np.einsum("sa,sat->st", pi, T), np.einsum("sa,sat,sat->s", pi, T, R)
    return np.linalg.solve(np.eye(len(r)) - gamma * P, r)


def _soft_unweighted_reward(T, R, terminal, pi, gamma):
    P, r = np.einsum("sa,sat->st", pi, T), (pi * R.mean(-1)).sum(-1)
    P[terminal], r[terminal] = 0.0, 0.0
    return np.linalg.solve(np.eye(len(r)) - gamma * P, r)


def _soft_transposed(T, R, terminal, pi, gamma):
    P, r = np.einsum("sa,sat->st", pi, T), np.einsum("sa,sat,sat->s", pi, T, R)
    P[terminal], r[terminal] = 0.0, 0.0
    return np.linalg.solve(np.eye(len(r)) - gamma * P.T, r)


# ----------------------------------------------------------------------------- TD updates


def _td_cases(gen, sarsa):
    Q = np.array([[0.0, 0.0], [1.0, 3.0]])
    extra = (0,) if sarsa else ()
    # Q-learning: target 2 + 0.9 * max(1, 3) = 4.7, so Q[0, 1] = 0 + 0.5 * 4.7 = 2.35. SARSA with a' = 0:
    # target 2 + 0.9 * 1 = 2.9, so Q[0, 1] = 1.45.
    expected = Q.copy()
    expected[0, 1] = 1.45 if sarsa else 2.35
    yield Case((Q.copy(), (0, 1, 2.0, 1, False), *extra, 0.5, 0.9), "one step, worked by hand", expected=expected)
    # Terminated: the target is the reward alone, 2, so Q[0, 1] = 1.
    expected = expected.copy()
    expected[0, 1] = 1.0
    yield Case(
        (Q.copy(), (0, 1, 2.0, 1, True), *extra, 0.5, 0.9), "a terminating step, worked by hand", expected=expected
    )
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    for i in range(4):
        Q = rng.normal(size=(6, 4))
        s, s_next = rng.integers(6, size=2)
        step = (int(s), int(rng.integers(4)), float(rng.normal()), int(s_next), bool(i == 3))
        extra = (int(rng.integers(4)),) if sarsa else ()
        yield Case((Q, step, *extra, 0.3, 0.95), f"random Q, step {i}{' (terminated)' * (i == 3)}")
    Q = rng.normal(size=(3, 2))
    yield Case((Q, (2, 0, -1.0, 2, False), *((1,) if sarsa else ()), 0.1, 1.0), "a self-transition, s_next = s")


def _run_update(impl, case):
    Q, *rest = _numpy(case.args)
    Q = Q.copy()
    impl(Q, *rest)
    return torch.from_numpy(Q)


def _q_bootstraps_terminal(Q, transition, alpha, gamma):
    s, a, r, s_next, terminated = transition
    Q[s, a] += alpha * (r + gamma * Q[s_next].max() - Q[s, a])


def _q_no_subtraction(Q, transition, alpha, gamma):
    s, a, r, s_next, terminated = transition
    Q[s, a] += alpha * (r if terminated else r + gamma * Q[s_next].max())


def _q_same_action(Q, transition, alpha, gamma):
    s, a, r, s_next, terminated = transition
    Q[s, a] += alpha * ((r if terminated else r + gamma * Q[s_next, a]) - Q[s, a])


def _sarsa_with_max(Q, transition, a_next, alpha, gamma):
    ref.q_learning_update(Q, transition, alpha, gamma)


def _sarsa_bootstraps_terminal(Q, transition, a_next, alpha, gamma):
    s, a, r, s_next, terminated = transition
    Q[s, a] += alpha * (r + gamma * Q[s_next, a_next] - Q[s, a])


def _sarsa_same_action(Q, transition, a_next, alpha, gamma):
    s, a, r, s_next, terminated = transition
    Q[s, a] += alpha * ((r if terminated else r + gamma * Q[s_next, a]) - Q[s, a])


def _expected_sarsa_cases(gen):
    Q = np.array([[0.0, 0.0], [1.0, 3.0]])
    # epsilon 0.2 over 2 actions: the greedy action 1 has probability 0.1 + 0.8 = 0.9, action 0 0.1, so the
    # expectation is 0.1 * 1 + 0.9 * 3 = 2.8; target 2 + 0.9 * 2.8 = 4.52, so Q[0, 1] = 0.5 * 4.52 = 2.26.
    expected = Q.copy()
    expected[0, 1] = 2.26
    yield Case((Q.copy(), (0, 1, 2.0, 1, False), 0.5, 0.9, 0.2), "one step, worked by hand", expected=expected)
    # Terminated: the target is the reward alone, 2, so Q[0, 1] = 1.
    expected = Q.copy()
    expected[0, 1] = 1.0
    yield Case((Q.copy(), (0, 1, 2.0, 1, True), 0.5, 0.9, 0.2), "a terminating step, worked by hand",
               expected=expected)  # fmt: skip
    # 3 actions, epsilon 0.3: the greedy action 2 (value 4) has probability 0.1 + 0.7 = 0.8; the expectation is
    # 0.1 * 0 + 0.1 * 1 + 0.8 * 4 = 3.3; target -1 + 3.3 = 2.3, and Q[0, 0] = 1 + 0.5 * (2.3 - 1) = 1.65.
    Q = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 4.0]])
    expected = Q.copy()
    expected[0, 0] = 1.65
    yield Case((Q.copy(), (0, 0, -1.0, 1, False), 0.5, 1.0, 0.3), "3 actions, worked by hand", expected=expected)
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    for i, epsilon in enumerate([0.1, 0.5, 0.0, 1.0, 0.1]):
        Q = rng.normal(size=(6, 4))
        s, s_next = rng.integers(6, size=2)
        step = (int(s), int(rng.integers(4)), float(rng.normal()), int(s_next), bool(i == 4))
        yield Case((Q, step, 0.3, 0.95, epsilon), f"random Q, epsilon {epsilon}{' (terminated)' * (i == 4)}")
    Q = rng.normal(size=(3, 2))
    yield Case((Q, (2, 0, -1.0, 2, False), 0.1, 1.0, 0.2), "a self-transition, s_next = s")


def _expected_sarsa_with(probabilities):
    def update(Q, transition, alpha, gamma, epsilon):
        s, a, r, s_next, terminated = transition
        target = r if terminated else r + gamma * probabilities(Q[s_next], epsilon) @ Q[s_next]
        Q[s, a] += alpha * (target - Q[s, a])

    return update


def _greedy_share_forgotten(q, epsilon):
    pi = np.full(len(q), epsilon / len(q))
    pi[q.argmax()] = 1 - epsilon
    return pi


def _explores_only_other_actions(q, epsilon):
    pi = np.full(len(q), epsilon / (len(q) - 1))
    pi[q.argmax()] = 1 - epsilon
    return pi


def _expected_sarsa_bootstraps_terminal(Q, transition, alpha, gamma, epsilon):
    s, a, r, s_next, terminated = transition
    ref.expected_sarsa_update(Q, (s, a, r, s_next, False), alpha, gamma, epsilon)


def _expected_sarsa_from_s(Q, transition, alpha, gamma, epsilon):
    s, a, r, s_next, terminated = transition
    ref.expected_sarsa_update(Q, (s, a, r, s, terminated), alpha, gamma, epsilon)


# ----------------------------------------------------------------------------- gradient bandit


def _gradient_cases(gen):
    # Equal preferences: pi = (0.5, 0.5); the chosen arm gains 0.5 * 1 * (1 - 0.5), the other loses 0.5 * 1 * 0.5.
    yield Case((np.zeros(2), 0, 1.0, 0.0, 0.5), "2 arms, equal preferences (worked by hand)",
               expected=np.array([0.25, -0.25]))  # fmt: skip
    # H = (ln 3, 0): pi = (0.75, 0.25); arm 1 pays 1 above the baseline: H0 loses 0.4 * 0.75, H1 gains 0.4 * 0.75.
    yield Case((np.array([np.log(3), 0.0]), 1, 2.0, 1.0, 0.4), "2 arms, pi = (0.75, 0.25) (worked by hand)",
               expected=np.array([np.log(3) - 0.3, 0.3]))  # fmt: skip
    # A reward 3 below the baseline: the chosen arm loses 0.1 * 3 * (2/3) = 0.2, the others gain 0.1 * 3 / 3 = 0.1.
    yield Case((np.zeros(3), 2, 0.0, 3.0, 0.1), "3 arms, a reward below the baseline (worked by hand)",
               expected=np.array([0.1, 0.1, -0.2]))  # fmt: skip
    # pi = (1, 0, 0) up to e^-1000: the chosen arm already has all the probability, so nothing moves.
    yield Case((np.array([1000.0, 0.0, -1000.0]), 0, 1.0, 0.0, 0.1), "huge preferences (worked by hand)",
               expected=np.array([1000.0, 0.0, -1000.0]))  # fmt: skip
    yield Case((np.array([5.0, 5.0, 5.0]), 1, 0.5, 0.5, 0.3), "the reward equals the baseline: no change",
               expected=np.array([5.0, 5.0, 5.0]))  # fmt: skip
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    for i in range(6):
        H = rng.normal(size=10) * [0.5, 3.0][i % 2]
        step = (int(rng.integers(10)), float(rng.normal() + 4), float(rng.normal() + 4), [0.1, 0.4][i % 2])
        yield Case((H, *step), f"random preferences {i}, 10 arms")


def _softmax(H):
    z = np.exp(H - H.max())
    return z / z.sum()


def _gradient_no_baseline(H, action, reward, baseline, alpha):
    ref.gradient_bandit_update(H, action, reward, 0.0, alpha)


def _gradient_only_chosen_arm(H, action, reward, baseline, alpha):
    H[action] += alpha * (reward - baseline) * (1 - _softmax(H)[action])


def _gradient_softmax_after_step(H, action, reward, baseline, alpha):
    H[action] += alpha * (reward - baseline) * (1 - _softmax(H)[action])
    pi = _softmax(H)
    others = np.arange(len(H)) != action
    H[others] -= alpha * (reward - baseline) * pi[others]


def _gradient_naive_softmax(H, action, reward, baseline, alpha):
    with np.errstate(over="ignore", invalid="ignore"):
        pi = np.exp(H) / np.exp(H).sum()
    H -= alpha * (reward - baseline) * pi
    H[action] += alpha * (reward - baseline)


def _gradient_others_up(H, action, reward, baseline, alpha):
    pi = _softmax(H)
    H += alpha * (reward - baseline) * pi
    H[action] += alpha * (reward - baseline) * (1 - 2 * pi[action])


# ----------------------------------------------------------------------------- findings


def _gamma_switch():
    """The smallest discount at which the grid world's cell 10 takes the long way (left), by bisection: up at
    0.99, left at 0.999 (the notebook shows both)."""
    T, R, terminal = _gridworld()
    low, high = 0.99, 0.999
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if ref.find_optimal_policy(T, R, terminal, middle)[10] == 3 else (middle, high)
    return high


def _cliff_walking():
    """Sutton and Barto's Example 6.6 on a 4 x 12 grid, written out by hand: each step costs 1, moves off the
    grid stay put, entering the cliff (row 3, columns 1 to 10) costs 100 and returns to the start (36),
    and entering the goal (47) ends the episode."""
    n = 48
    T, R = np.zeros((n, 4, n)), np.full((n, 4, n), -1.0)
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    for s in range(n):
        for a in range(4):
            r, c = divmod(s, 12)
            r2, c2 = min(max(r + moves[a][0], 0), 3), min(max(c + moves[a][1], 0), 11)
            if r2 == 3 and 1 <= c2 <= 10:
                T[s, a, 36], R[s, a, 36] = 1.0, -100.0
            else:
                T[s, a, r2 * 12 + c2] = 1.0
    terminal = np.zeros(n, dtype=bool)
    terminal[47] = True
    return T, R, terminal


def _best_soft_return(epsilon=0.1):
    """Policy iteration over epsilon-greedy policies (evaluate the softened policy exactly, improve greedily)
    from always-up; the start's value of the final epsilon-greedy policy."""
    T, R, terminal = _cliff_walking()
    policy = np.zeros(48, dtype=int)
    for _ in range(100):
        pi = np.full((48, 4), epsilon / 4)
        pi[np.arange(48), policy] += 1 - epsilon
        V = ref.policy_eval_stochastic(T, R, terminal, pi, 1.0)
        improved = ref.policy_improvement(T, R, terminal, V, 1.0)
        if np.array_equal(improved, policy):
            break
        policy = improved
    return float(V[36])


# ----------------------------------------------------------------------------- UCB


def _ucb_cases(gen):
    yield Case((np.array([2, 1, 0]), np.array([5.0, 5.0, 0.0]), 4, 1.0), "arm 2 never pulled (worked by hand)",
               expected=2)  # fmt: skip
    yield Case((np.array([0, 3, 0]), np.array([0.0, 1.0, 0.0]), 4, 1.0), "arms 0 and 2 never pulled: the lowest",
               expected=0)  # fmt: skip
    # Equal counts give equal bonuses: the best value wins.
    yield Case((np.array([1, 1, 1]), np.array([0.2, 0.5, 0.1]), 4, 1.0), "equal counts (worked by hand)", expected=1)
    # ln 16 = 2.77: arm 0 scores 0.5 + 2 sqrt(0.277) = 1.55, arm 1 0.3 + 2 sqrt(2.77) = 3.63, arm 2 1.94.
    yield Case((np.array([10, 1, 5]), np.array([0.5, 0.3, 0.45]), 16, 2.0), "one arm rarely pulled (worked by hand)",
               expected=1)  # fmt: skip
    yield Case((np.array([3, 3]), np.array([0.4, 0.4]), 6, 1.0), "a tie: the lowest index", expected=0)
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
    for i in range(12):
        counts = rng.integers(1, 40, size=10)
        t = int(counts.sum()) + 1
        c = [0.1, 0.5, 2.0, 4.0][i % 4]
        yield Case((counts, rng.normal(size=10) * c, t, c), f"random state {i}, 10 arms, c = {c}")


def _ucb_no_log(counts, values, t, c):
    untried = np.flatnonzero(counts == 0)
    return int(untried[0]) if len(untried) else int(np.argmax(values + c * np.sqrt(t / counts)))


def _ucb_log_of_counts(counts, values, t, c):
    untried = np.flatnonzero(counts == 0)
    return int(untried[0]) if len(untried) else int(np.argmax(values + c * np.sqrt(np.log(counts) / t)))


def _ucb_c_inside(counts, values, t, c):
    untried = np.flatnonzero(counts == 0)
    return int(untried[0]) if len(untried) else int(np.argmax(values + np.sqrt(c * np.log(t) / counts)))


def _ucb_greedy(counts, values, t, c):
    return int(np.argmax(values))


# ----------------------------------------------------------------------------- NumPy in, NumPy out


def _as_tensors(cases):
    """Cases hold their arrays as tensors that share memory with them (the harness inspects tensors for
    in-place changes and compares tensors when it names a known mistake); `_run` hands the arrays
    themselves to the learner's function and turns an array it returns into a tensor."""

    def wrapped(gen):
        for case in cases(gen):
            args = tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in case.args)
            expected = torch.from_numpy(case.expected) if isinstance(case.expected, np.ndarray) else case.expected
            yield dataclasses.replace(case, args=args, expected=expected)

    return wrapped


def _numpy(args):
    return [a.numpy() if isinstance(a, torch.Tensor) else a for a in args]


def _run(impl, case):
    out = impl(*_numpy(case.args))
    return torch.from_numpy(out) if isinstance(out, np.ndarray) else out


def _compare_arrays(expected, got):
    """The harness's comparison for NumPy outputs (tensors here, converted by `_run`): values as float64, or
    integer actions, shapes checked."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise Mismatch(f"output: expected a NumPy array, got {describe(got, arrays=True)}")
        if not expected.dtype.is_floating_point:
            if got.dtype.is_floating_point or got.dtype == torch.bool:
                raise Mismatch(f"output: expected an integer array of actions, got {describe(got, arrays=True)}")
            compare(expected.long(), got.long(), 0, 0)
        else:
            compare(expected.double(), got.double(), 1e-6, 1e-6)
    else:
        compare(expected, got, 1e-9, 1e-9)


_EXERCISES = [
    Exercise(
        ref.policy_eval_numerical, _eval_cases,
        hint="Pick out T[s, pi(s)] and R[s, pi(s)] for every state at once; each sweep is one backup of all states "
             "from the old V, then V = 0 at terminal states; stop when the largest change is below eps.",
        wrong={"the max over actions (that is value iteration), not the policy's action": _eval_max_over_actions,
               "terminal states' values not set to 0": _eval_terminal_not_zeroed,
               "gamma applied to the reward as well": _eval_discounts_reward,
               "stops after one sweep": _eval_one_sweep,
               "rewards averaged over next states, not weighted by T": _eval_unweighted_reward},
    ),
    Exercise(
        ref.policy_eval_exact, _eval_cases,
        hint="V = r + gamma P V rearranges to (I - gamma P) V = r; zero the rows of P and r at terminal states "
             "before solving with np.linalg.solve.",
        wrong={"terminal states not zeroed": _exact_terminal_not_zeroed, "P transposed": _exact_transposed,
               "I + gamma P": _exact_rewards_only_zeroed},
    ),
    Exercise(
        ref.policy_improvement, _improve_cases,
        hint="Q[s, a] = sum over s' of T[s, a, s'] (R[s, a, s'] + gamma V[s']); np.argmax returns the first "
             "maximum; then set terminal states to action 0.",
        wrong={"ties broken towards the highest action": _improve_ties_to_last,
               "terminal states not set to action 0": _improve_terminal_not_zeroed,
               "gamma forgotten": _improve_no_gamma,
               "the best next state, not the expectation over next states": _improve_best_next_state},
    ),
    Exercise(
        ref.find_optimal_policy, _optimal_cases,
        hint="Start from np.zeros(n_states, dtype=int); alternate policy_eval_exact and policy_improvement until "
             "the policy stops changing (compare whole arrays).",
        wrong={"one round of improvement only": _optimal_one_round,
               "evaluation without zeroing terminal states": _optimal_terminal_not_zeroed,
               "a few sweeps of value iteration, then greedy": _optimal_few_sweeps},
    ),
    Exercise(
        ref.value_iteration, _value_cases, atol=1e-6,
        hint="Each sweep: Q[s, a] from the old V for every pair at once, V = max over actions, then V = 0 at "
             "terminal states; stop when the largest change is below eps.",
        wrong={"terminal states' values not set to 0": _vi_terminal_not_zeroed,
               "the mean over actions (a uniformly random policy), not the max": _vi_mean_over_actions,
               "the max over next states inside the expectation": _vi_max_before_expectation},
    ),
    Exercise(
        ref.policy_eval_stochastic, _stochastic_cases,
        hint="Average T and the expected rewards over actions with the weights pi[s, a] (np.einsum does it in one "
             "line each), zero the terminal rows, then solve (I - gamma P) V = r as before.",
        wrong={"the most probable action only, as a deterministic policy": _soft_most_probable_action,
               "actions weighted equally, not by pi": _soft_uniform_actions,
               "terminal states not zeroed": _soft_terminal_not_zeroed,
               "rewards averaged over next states, not weighted by T": _soft_unweighted_reward,
               "P transposed": _soft_transposed},
    ),
    Exercise(
        ref.q_learning_update, lambda gen: _td_cases(gen, sarsa=False), run=_run_update,
        hint="Change Q[s, a] in place and return nothing. The target bootstraps from the best action in s_next, "
             "unless the episode terminated there.",
        wrong={"bootstraps from a terminal state": _q_bootstraps_terminal,
               "Q[s, a] not subtracted from the target": _q_no_subtraction,
               "bootstraps from the same action a in s_next": _q_same_action},
    ),
    Exercise(
        ref.sarsa_update, lambda gen: _td_cases(gen, sarsa=True), run=_run_update,
        hint="Like Q-learning, but the target uses the action a_next that was actually chosen in s_next.",
        wrong={"the max over next actions (that is Q-learning)": _sarsa_with_max,
               "bootstraps from a terminal state": _sarsa_bootstraps_terminal,
               "bootstraps from a, not a_next": _sarsa_same_action},
    ),
    Exercise(
        ref.expected_sarsa_update, _expected_sarsa_cases, run=_run_update,
        hint="Change Q[s, a] in place. The target bootstraps from the mean of Q[s_next] under the epsilon-greedy "
             "probabilities: epsilon / n_actions each, plus 1 - epsilon on the greedy action; no bootstrap after "
             "a terminal step.",
        wrong={"the greedy action gets 1 - epsilon, not 1 - epsilon + epsilon / n": _expected_sarsa_with(
                   _greedy_share_forgotten),
               "exploration spread over the other actions only": _expected_sarsa_with(_explores_only_other_actions),
               "the max over next actions (that is Q-learning)": lambda Q, t, alpha, gamma, epsilon:
                   ref.q_learning_update(Q, t, alpha, gamma),
               "the plain mean over next actions (a uniformly random policy)": _expected_sarsa_with(
                   lambda q, epsilon: np.full(len(q), 1 / len(q))),
               "bootstraps from a terminal state": _expected_sarsa_bootstraps_terminal,
               "the expectation over Q[s], not Q[s_next]": _expected_sarsa_from_s},
    ),
    Exercise(
        ref.ucb_action, _ucb_cases,
        hint="First any arm with count 0 (np.flatnonzero gives them in order); otherwise the bonus is "
             "c * sqrt(ln t / count), and np.argmax breaks ties towards the lowest index. Return an int.",
        wrong={"no log: sqrt(t / counts)": _ucb_no_log, "log of the counts over t": _ucb_log_of_counts,
               "c inside the square root": _ucb_c_inside, "greedy: no exploration bonus": _ucb_greedy},
    ),
    Exercise(
        ref.gradient_bandit_update, _gradient_cases, run=_run_update,
        hint="Change H in place. Take the softmax of H before changing anything (subtract the max first); every "
             "arm moves by alpha (reward - baseline) times (1 for the chosen arm, else 0) minus its probability.",
        wrong={"no baseline: the reward alone": _gradient_no_baseline,
               "only the chosen arm updated": _gradient_only_chosen_arm,
               "the softmax recomputed after the chosen arm's step": _gradient_softmax_after_step,
               "softmax without subtracting the max (overflows on huge preferences)": _gradient_naive_softmax,
               "the other arms pushed up, not down": _gradient_others_up},
    ),
]  # fmt: skip

_FINDINGS = [
    Finding(
        "gamma_switch", truth=_gamma_switch, grade=number_within(2e-4, "smallest discount for the long way"),
        hint="Cell 10 goes up at gamma 0.99 and left at 0.999: bisect between them with find_optimal_policy, "
             "keeping the interval's end where it goes left.",
        wrong={"the lower of the two discounts shown": 0.99, "the higher one": 0.999, "halfway between them": 0.9945,
               "where cell 9 switches, not cell 10": 0.95, "where cell 11 switches": 0.65,
               "1 - gamma, not gamma": 0.006},
    ),
    Finding(
        "best_soft_return", truth=_best_soft_return, grade=number_within(0.01, "expected return from the start"),
        hint="Policy iteration as in Part 1, but evaluate soften(policy, 0.1) with policy_eval_stochastic on the "
             "CliffWalking model (gamma 1) and improve with policy_improvement; read the value of state 36.",
        wrong={"the optimal path without exploration (13 steps)": -13.0,
               "the middle row without exploration (15 steps)": -15.0,
               "the top row without exploration (17 steps)": -17.0,
               "a return, not a cost: the sign flipped": 20.708,
               "the path along the cliff, explored at epsilon 0.1": -51.81,
               "the top row, explored at epsilon 0.1": -22.27},
    ),
]  # fmt: skip

# The section works in NumPy: messages describe the values as arrays, as the learner sees them.
check = Checker(
    "2.1",
    [
        dataclasses.replace(e, cases=_as_tensors(e.cases), run=e.run or _run, arrays=True, compare=_compare_arrays)
        for e in _EXERCISES
    ]
    + _FINDINGS,
)
