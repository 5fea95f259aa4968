"""Checks for 2.1 Tabular RL and bandits.

Policy evaluation, improvement and iteration are checked on two 2-state MDPs solved by hand (worked
in the comments), on Russell and Norvig's 3 x 4 grid world (whose optimal policy is their Figure
17.2), and on random MDPs. The TD updates are checked on hand-worked single steps, and UCB on
hand-worked choices and random bandit states. Arrays are NumPy: messages speak of arrays.
"""

import dataclasses

import numpy as np
import torch

from solutions.chapter2_rl import tabular_rl as ref
from tests.harness import Case, Checker, Exercise, Mismatch, compare, describe

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
        ref.ucb_action, _ucb_cases,
        hint="First any arm with count 0 (np.flatnonzero gives them in order); otherwise the bonus is "
             "c * sqrt(ln t / count), and np.argmax breaks ties towards the lowest index. Return an int.",
        wrong={"no log: sqrt(t / counts)": _ucb_no_log, "log of the counts over t": _ucb_log_of_counts,
               "c inside the square root": _ucb_c_inside, "greedy: no exploration bonus": _ucb_greedy},
    ),
]  # fmt: skip

# The section works in NumPy: messages describe the values as arrays, as the learner sees them.
check = Checker(
    "2.1",
    [
        dataclasses.replace(e, cases=_as_tensors(e.cases), run=e.run or _run, arrays=True, compare=_compare_arrays)
        for e in _EXERCISES
    ],
)
