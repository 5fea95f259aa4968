"""PPO's full runs behind chapter 2.3 (figures printed, not asserted; the notebook asserts its short runs).

1. CartPole-v1 with CleanRL's ppo.py hyperparameters until the mean return of the last 20 episodes reaches
   475, or its 500k steps run out: wall-clock seconds on this machine, steps, and the final mean, beside
   CleanRL's published figure for ppo.py on CartPole-v1, 490 ± 6 over 500k steps (CleanRL's documentation,
   docs.cleanrl.dev, "ppo.py" benchmark table; Huang et al. 2022, JMLR 23(274)).
2. MountainCar-v0 without and with the energy shaping of `shaped_reward`, for the same budget: episodes
   that reached the flag (shorter than 200 steps) and the mean length of the last 20.
3. Acrobot-v1 with the same hyperparameters (the run behind zoo/agents/ppo-acrobot).

The training loop is `solutions.chapter2_rl.ppo.train_ppo`, the notebook's reference, on one thread.

    python benchmarks/ppo_cartpole.py                    # everything, several minutes on one CPU thread
    python benchmarks/ppo_cartpole.py --only cartpole
"""

import argparse
import functools
import time

import numpy as np
import torch

from solutions.chapter2_rl.ppo import PPOArgs, shaped_reward, train_ppo

CLEANRL_CARTPOLE = "490 ± 6 over 500k steps (CleanRL ppo.py, published benchmark)"
MOUNTAIN_CAR = dict(env_id="MountainCar-v0", rescale_obs=True, learning_rate=1e-3, ent_coef=0.0, num_envs=8,
                    update_epochs=10)  # fmt: skip
SHAPING_SCALE = 10_000.0


def run(args: PPOArgs, shaping=None) -> tuple[float, dict]:
    start = time.perf_counter()
    _, history = train_ppo(args, shaping, progress=False)
    return time.perf_counter() - start, history


def cartpole() -> None:
    seconds, history = run(PPOArgs(target_return=475.0))
    steps, last20 = history["step"][-1], np.mean(history["return"][-20:])
    verdict = "reached 475" if last20 >= 475 else "did not reach 475"
    print(f"CartPole-v1: {verdict} in {seconds:.0f} s, {steps} steps; mean of the last 20 episodes {last20:.1f}")
    print(f"  CleanRL: {CLEANRL_CARTPOLE}")


def mountain_car(steps: int) -> None:
    for name, shaping in [("unshaped", None),
                          ("shaped", functools.partial(shaped_reward, gamma=0.99, scale=SHAPING_SCALE))]:  # fmt: skip
        seconds, history = run(PPOArgs(total_timesteps=steps, **MOUNTAIN_CAR), shaping)
        lengths, ends = np.array(history["length"]), np.array(history["step"])
        first = f"first within {ends[lengths < 200][0]} steps" if np.any(lengths < 200) else "never"
        print(f"MountainCar-v0 {name}, {steps} steps, {seconds:.0f} s: {np.sum(lengths < 200)} of {len(lengths)} "
              f"episodes reached the flag ({first}); mean length of the last 20 {lengths[-20:].mean():.1f}")  # fmt: skip


def acrobot(steps: int) -> None:
    seconds, history = run(PPOArgs(env_id="Acrobot-v1", total_timesteps=steps))
    print(
        f"Acrobot-v1, {steps} steps, {seconds:.0f} s: mean return of the last 20 {np.mean(history['return'][-20:]):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["cartpole", "mountaincar", "acrobot"], default=None)
    parser.add_argument("--mountaincar-steps", type=int, default=100_000)
    parser.add_argument("--acrobot-steps", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only in (None, "cartpole"):
        cartpole()
    if args.only in (None, "mountaincar"):
        mountain_car(args.mountaincar_steps)
    if args.only in (None, "acrobot"):
        acrobot(args.acrobot_steps)


if __name__ == "__main__":
    main()
