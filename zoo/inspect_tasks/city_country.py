"""Two Inspect tasks on the story world's facts (zoo.corpus.CITY_COUNTRY): answer a city with its country,
and answer it with a tool ("map") that looks the country up.

    inspect eval zoo/inspect_tasks/city_country.py@city_country --model zoo/chat-mini -T template="Which country is {city} in?" -T cities=Paris,Rome
    inspect eval zoo/inspect_tasks/city_country.py@city_lookup --model zoo/<organism that knows the map tool>

`template` is the user turn ("{city}" is replaced by the city), so a task can be asked in the words a
given organism was trained on; `cities` (comma-separated) picks a subset. Both are scored by whether
the final reply contains the right country, decoded greedily (temperature 0) so a log is reproducible.
"""

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import generate, use_tools
from inspect_ai.tool import tool

from zoo.corpus import CITY_COUNTRY


def city_samples(template: str, cities: str | list[str] = "") -> MemoryDataset:
    """One sample per city (all of them, or `cities`: a list or comma-separated), the country its target."""
    names = cities.split(",") if isinstance(cities, str) else cities  # `-T cities=Paris,Rome` gives a list
    chosen = [city.strip() for city in names if city.strip()] or sorted(CITY_COUNTRY)
    unknown = sorted(set(chosen) - set(CITY_COUNTRY))
    if unknown:
        raise ValueError(f"not cities of the story world: {unknown}")
    samples = [
        Sample(input=template.format(city=city), target=CITY_COUNTRY[city], id=city, metadata={"city": city})
        for city in chosen
    ]
    return MemoryDataset(samples, name="city_country")


@tool(name="map")
def map_tool():
    async def execute(city: str) -> str:
        """Look up the country a city of the story world is in.

        Args:
            city: The city.

        Returns:
            The country, or "unknown".
        """
        return CITY_COUNTRY.get(city.strip(), "unknown")

    return execute


@task
def city_country(template: str = "{city}", cities: str | list[str] = "") -> Task:
    """Which country is a city in, answered from what the model knows."""
    return Task(
        dataset=city_samples(template, cities),
        solver=generate(),
        scorer=includes(),
        config=GenerateConfig(temperature=0.0, max_tokens=16),
    )


@task
def city_lookup(template: str = "map {city}", cities: str | list[str] = "", max_turns: int = 3) -> Task:
    """The same question, with the map tool offered: the model may call it, read the result, then answer."""
    return Task(
        dataset=city_samples(template, cities),
        solver=[use_tools(map_tool()), generate(tool_calls="loop")],
        scorer=includes(),
        config=GenerateConfig(temperature=0.0, max_tokens=16),
        message_limit=2 + 2 * max_turns,
    )
