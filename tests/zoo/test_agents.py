"""The PPO agents shipped in zoo/agents/ still act as their cards say: greedy returns over the episodes the
card lists (reset with seeds 1000-1009), exactly, since a greedy policy on a seeded environment is
deterministic. Chapter 2.3's notebook asserts looser bounds on the same runs."""

import re
from pathlib import Path

import pytest
from safetensors.torch import load_file

from solutions.chapter2_rl.ppo import Agent, evaluate

AGENTS = Path(__file__).resolve().parents[2] / "zoo" / "agents"
# name: (environment, observation size, actions, observations rescaled as in training)
SHIPPED = {
    "ppo-acrobot": ("Acrobot-v1", 6, 3, False),
    "ppo-mountaincar": ("MountainCar-v0", 2, 3, True),
}


def card_returns(name: str) -> list[float]:
    """The greedy returns the card's "Measured" section lists, in episode order."""
    measured = (AGENTS / name / "CARD.md").read_text().split("## Measured", 1)[1]
    listed = re.search(r"returns ((?:-?\d+,?\s*)+)", measured).group(1)
    return [float(value) for value in re.findall(r"-?\d+", listed)]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_agent_returns_match_its_card(name):
    env_id, n_obs, n_actions, rescale = SHIPPED[name]
    agent = Agent(n_obs, n_actions)
    agent.load_state_dict(load_file(AGENTS / name / "agent.safetensors"))
    expected = card_returns(name)
    assert len(expected) == 10
    assert evaluate(agent, env_id, episodes=10, seed=1000, rescale_obs=rescale) == expected


def test_every_shipped_agent_is_tested():
    assert {path.name for path in AGENTS.iterdir() if path.is_dir()} == set(SHIPPED)
