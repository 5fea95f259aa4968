"""How long DQN and VPG (the references of section 2.2) take to solve CartPole-v1 here.

    python benchmarks/dqn_cartpole.py [--threads 1] [--seed 1] [--only dqn|vpg]

Each algorithm trains until the mean return of its last 20 training episodes reaches 475, or its step
budget runs out: DQN with CleanRL's `dqn.py` settings for CartPole-v1 and its budget of 500,000 steps
(`DQNConfig()`), VPG with `VPGConfig()` and the same budget. Prints the wall-clock time, the steps taken
and the final mean return, beside CleanRL's published figure for `dqn.py` on CartPole-v1:
488.69 ± 16.11 (docs.cleanrl.dev, "Deep Q-Learning (DQN)", experiment results for `dqn.py`; the mean
episodic return at the end of 500,000 steps, over seeds). Figures only, no assertion: machines differ
too much for timed assertions, and one seed of DQN differs a lot from the next.
"""

import argparse
import time
from collections import deque
from dataclasses import replace

import gymnasium as gym
import numpy as np
import torch

from solutions.chapter2_rl.dqn_and_vpg import DQNConfig, VPGConfig, dqn_train, vpg_train

TARGET = 475.0
WINDOW = 20
BUDGET_STEPS = 500_000
CLEANRL_DQN = "488.69 ± 16.11 (CleanRL dqn.py, 500,000 steps)"


class Solved(Exception):
    """Raised from inside the training loop (by the wrapper below) when the target is reached."""


class StopWhenSolved(gym.Wrapper):
    """Counts steps and episode returns; raises Solved at the end of the episode that brings the mean of the
    last WINDOW returns to TARGET. The training loop is the section's reference, unchanged."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps, self.episode_return, self.returns = 0, 0.0, deque(maxlen=WINDOW)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.episode_return += float(reward)
        if terminated or truncated:
            self.returns.append(self.episode_return)
            self.episode_return = 0.0
            if len(self.returns) == WINDOW and np.mean(self.returns) >= TARGET:
                raise Solved()
        return obs, reward, terminated, truncated, info

    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")


def run(name: str, train, cfg) -> None:
    env = StopWhenSolved(gym.make("CartPole-v1"))
    start = time.perf_counter()
    try:
        train(env, cfg)
        outcome = f"budget of {BUDGET_STEPS:,} steps spent"
    except Solved:
        outcome = f"solved (mean of last {WINDOW} >= {TARGET:g})"
    seconds = time.perf_counter() - start
    print(
        f"{name}: {outcome} after {env.steps:,} steps in {seconds:.0f} s ({env.steps / seconds:,.0f} steps/s); "
        f"mean return of the last {WINDOW} episodes {env.mean_return():.1f}; CleanRL DQN: {CLEANRL_DQN}",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["dqn", "vpg"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CartPole-v1, seed {args.seed}, {args.threads} thread(s), target: mean of last {WINDOW} >= {TARGET:g}")
    if args.only in (None, "dqn"):
        run("DQN", dqn_train, replace(DQNConfig(), seed=args.seed, total_timesteps=BUDGET_STEPS, progress=False))
    if args.only in (None, "vpg"):
        iterations = BUDGET_STEPS // VPGConfig().batch_steps
        run("VPG", vpg_train, replace(VPGConfig(), seed=args.seed, iterations=iterations, progress=False))
