"""An agent task for the chat organisms: answer a question about a person by calling the `lookup` tool
on a small wiki drawn for each sample, as zoo/chat_corpus.py's tool dialogues do.

    inspect eval zoo/inspect_tasks/wiki.py --model zoo/chat-mini
    inspect eval zoo/inspect_tasks/wiki.py --model zoo/chat-mini -T kind=country   # two lookups

Each sample's wiki (person -> where they live and work; city -> its country) is in its metadata; the
`lookup` tool reads it from the sample's store, so samples never see each other's wikis. The score is
whether the final reply contains the fact asked for. Questions are drawn from the test split's seed.
"""

import random

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import Generate, TaskState, generate, solver, use_tools
from inspect_ai.tool import tool
from inspect_ai.util import store

from zoo.chat_corpus import TOOL_QUESTIONS, WIKI_CITY, WIKI_PERSON
from zoo.corpus import CITY_COUNTRY, NAMES, PLACES, SPLIT_SEEDS

TARGETS = {"city": "city", "work": "place", "country": "country"}  # what each question asks for


def wiki_samples(n: int = 20, kind: str = "", split: str = "test") -> MemoryDataset:
    """n questions (of one kind, or each kind in turn) about a person of a wiki drawn for the sample."""
    kinds = [kind] if kind else sorted(TOOL_QUESTIONS)
    if any(k not in TOOL_QUESTIONS for k in kinds):
        raise ValueError(f"kind must be one of {sorted(TOOL_QUESTIONS)}, got {kind!r}")
    rng = random.Random(SPLIT_SEEDS[split])
    samples = []
    for i in range(n):
        question = kinds[i % len(kinds)]
        person, city, place = rng.choice(NAMES), rng.choice(sorted(CITY_COUNTRY)), rng.choice(PLACES)
        slots = dict(person=person, city=city, place=place, country=CITY_COUNTRY[city])
        wiki = {person: WIKI_PERSON.format(**slots), city: WIKI_CITY.format(**slots)}
        samples.append(
            Sample(
                input=TOOL_QUESTIONS[question].format(**slots),
                target=slots[TARGETS[question]],
                id=f"{i:03d}-{question}",
                metadata={"kind": question, "wiki": wiki, **slots},
            )
        )
    return MemoryDataset(samples, name="wiki")


@tool
def lookup():
    async def execute(name: str) -> str:
        """Look up a person or a city in the wiki.

        Args:
            name: The person's or the city's name.

        Returns:
            What the wiki says about them, or "unknown".
        """
        return store().get("wiki", {}).get(name.strip(), "unknown")

    return execute


@solver
def open_wiki():
    """Put the sample's wiki where the lookup tool reads it (the sample's store)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.store.set("wiki", state.metadata["wiki"])
        return state

    return solve


@task
def wiki(n: int = 20, kind: str = "", max_turns: int = 4) -> Task:
    """Questions about people, answered with the lookup tool; greedy decoding, so a log is reproducible."""
    return Task(
        dataset=wiki_samples(n, kind),
        solver=[open_wiki(), use_tools(lookup()), generate(tool_calls="loop")],
        scorer=includes(),
        config=GenerateConfig(temperature=0.0, max_tokens=24),
        message_limit=2 + 2 * max_turns,
    )
