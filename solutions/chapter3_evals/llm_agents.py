"""Reference solutions for 3.4 LLM agents: tools, the message loop, Inspect's agent APIs, an offline
wiki environment, and elicitation compared by measured success rate, on the zoo's chat-mini.

chat-mini (zoo/chat_corpus.py) learned one tool, `lookup`, called in the chat template's grammar
("<|call|> lookup Paris"); the tool's answer comes back as a "tool" message. Everything here runs
offline. The support code (the linked wiki, its questions, a batched agent runner) is public and
imported by the notebook; the exercises are the other functions. Importing this module has no side
effects.
"""

import inspect
import math
import os
import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from inspect_ai.model import execute_tools
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.tool import tool

from solutions.chapter3_evals.threat_models import wilson_interval
from zoo.chat_corpus import TOOL_ANSWERS, TOOL_QUESTIONS, WIKI_CITY, WIKI_PERSON
from zoo.chat_template import parse_tool_call, render_tool_call
from zoo.corpus import CITY_COUNTRY, NAMES, PLACES

# ----------------------------------------------------------------------------- support code

FRIEND = "{friend} is a friend of {person}."  # the link chat-mini never saw in training
QUESTIONS = {**TOOL_QUESTIONS, "friend_country": "Which country does the friend of {person} live in?"}
REACT_PROMPT = "Look up each page you need, then answer."
API_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
OFFLINE_MODEL = "zoo/chat-mini"


@dataclass
class Episode:
    """One run of an agent: the whole conversation, its final answer (None if it never gave one)
    and how many tool calls it made."""

    messages: list[dict]
    answer: str | None
    n_calls: int


@dataclass
class Question:
    """A question about a linked wiki, its answer (`target`), and the wiki it is asked on."""

    text: str
    target: str
    kind: str
    person: str
    wiki: dict[str, str] = field(repr=False)


def linked_wiki(rng: random.Random, n_people: int = 3, friends: bool = True) -> dict[str, str]:
    """A small wiki from the story world: a page for each person (where they live and work, and with
    `friends` who their friend is) and for each of their cities (its country). Page names are links:
    every name a page mentions has its own page."""
    people = rng.sample(NAMES, n_people)
    pages = {}
    for i, person in enumerate(people):
        city, place = rng.choice(sorted(CITY_COUNTRY)), rng.choice(PLACES)
        text = WIKI_PERSON.format(person=person, city=city, place=place)
        if friends and n_people > 1:
            text += " " + FRIEND.format(friend=people[(i + 1) % n_people], person=person)
        pages[person] = text
        pages[city] = WIKI_CITY.format(city=city, country=CITY_COUNTRY[city])
    return pages


def _fact(wiki: dict[str, str], person: str, what: str) -> str:
    patterns = {
        "city": rf"{person} lives in (\w+)\.",
        "work": rf"{person} works at the (\w+)\.",
        "friend": rf"(\w+) is a friend of {person}\.",
    }
    return re.search(patterns[what], wiki[person]).group(1)


def wiki_questions(n: int, kind: str, seed: int = 0, friends: bool = True) -> list[Question]:
    """n seeded questions of one kind ("city", "work", "country" or "friend_country"), each on its
    own linked wiki of three people."""
    if kind not in QUESTIONS:
        raise ValueError(f"kind must be one of {sorted(QUESTIONS)}, got {kind!r}")
    rng = random.Random(f"3.4-{kind}-{seed}")
    questions = []
    for _ in range(n):
        wiki = linked_wiki(rng, friends=friends)
        person = rng.choice([name for name in wiki if name in NAMES])
        about = _fact(wiki, person, "friend") if kind == "friend_country" else person
        city = _fact(wiki, about, "city")
        target = {"city": city, "work": _fact(wiki, about, "work")}.get(kind, CITY_COUNTRY[city])
        questions.append(Question(QUESTIONS[kind].format(person=person), target, kind, person, wiki))
    return questions


def solved_example(seed: int = 0) -> list[dict]:
    """A solved two-lookup dialogue in chat-mini's training format, to put before a question as history."""
    rng = random.Random(f"3.4-example-{seed}")
    person, city, place = rng.choice(NAMES), rng.choice(sorted(CITY_COUNTRY)), rng.choice(PLACES)
    slots = dict(person=person, city=city, place=place, country=CITY_COUNTRY[city])
    return [
        {"role": "user", "content": TOOL_QUESTIONS["country"].format(**slots)},
        {"role": "assistant", "content": render_tool_call("lookup", person)},
        {"role": "tool", "content": WIKI_PERSON.format(**slots)},
        {"role": "assistant", "content": render_tool_call("lookup", city)},
        {"role": "tool", "content": WIKI_CITY.format(**slots)},
        {"role": "assistant", "content": TOOL_ANSWERS["country"].format(**slots)},
    ]


def start_messages(question: Question, style: str = "plain") -> list[dict]:
    """The conversation an agent starts from: the question alone ("plain"), after a ReAct-style
    system prompt ("react"), or after one solved example dialogue ("history")."""
    user = [{"role": "user", "content": question.text}]
    if style == "plain":
        return user
    if style == "react":
        return [{"role": "system", "content": REACT_PROMPT}, *user]
    if style == "history":
        return [*solved_example(), *user]
    raise ValueError(f"style must be plain, react or history, got {style!r}")


def run_agents(
    model,
    starts: list[list[dict]],
    wikis: list[dict[str, str]],
    temperature: float = 1.0,
    seed: int = 0,
    max_turns: int = 4,
    max_new_tokens: int = 24,
) -> list[Episode]:
    """The agent loop (as agent_loop) run on many conversations at once: each turn, every unfinished
    conversation gets one reply in a single batch. A conversation that no longer fits in the model's
    context ends with no answer. Sampled with `seed` and the turn number, so a call is reproducible."""
    from zoo.chat_helpers import ChatContextError, ChatFormatError, chat_tokens, generate

    conversations = [list(start) for start in starts]
    answers: list[str | None] = [None] * len(starts)
    calls = [0] * len(starts)
    active = list(range(len(starts)))
    for turn in range(max_turns):
        fits = []
        for i in active:
            try:
                fits.append(chat_tokens(model, conversations[i]).shape[1] + max_new_tokens <= model.cfg.n_ctx)
            except (ChatContextError, ChatFormatError):  # too long, or a reply that wrote a template token
                fits.append(False)
        active = [i for i, ok in zip(active, fits) if ok]
        if not active:
            break
        replies = generate(
            model, [conversations[i] for i in active], temperature, max_new_tokens, seed=seed * 1009 + turn
        )
        still = []
        for i, generation in zip(active, replies):
            conversations[i].append({"role": "assistant", "content": generation.reply})
            call = parse_tool_call(generation.reply)
            if call is None:
                answers[i] = generation.reply
                continue
            calls[i] += 1
            conversations[i].append({"role": "tool", "content": wikis[i].get(call[1].strip(), "unknown")})
            still.append(i)
        active = still
    return [Episode(c, a, n) for c, a, n in zip(conversations, answers, calls)]


def run_with_retries(
    model,
    starts: list[list[dict]],
    wikis: list[dict[str, str]],
    verify: Callable,
    max_tries: int = 3,
    seed: int = 0,
    first: list[Episode] | None = None,
) -> tuple[list[Episode], list[int]]:
    """retry_until_verified on many conversations at once: each try reruns (with a new seed) only the
    episodes whose previous try `verify` rejected. `first`, if given, is the first try already run
    (run_agents with the same seed). Returns the kept episodes and how many tries each used."""
    episodes: list[Episode | None] = [None] * len(starts)
    tries = [0] * len(starts)
    pending = list(range(len(starts)))
    for attempt in range(max_tries):
        if not pending:
            break
        if attempt == 0 and first is not None:
            runs = [first[i] for i in pending]
        else:
            runs = run_agents(
                model, [starts[i] for i in pending], [wikis[i] for i in pending], seed=seed * 31 + attempt
            )
        for i, episode in zip(pending, runs):
            episodes[i], tries[i] = episode, attempt + 1
        pending = [i for i in pending if not verify(episodes[i])]
    return episodes, tries


# ----------------------------------------------------------------------------- Part 1: tools and the loop

JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def tool_schema(fn: Callable) -> dict:
    """The JSON schema a tool-calling API is given for a Python function: its name, the first
    paragraph of its docstring as the description, and "parameters", an object schema with each
    parameter's JSON type (from its annotation, via JSON_TYPES) and, as "required", the names of the
    parameters that have no default, in order."""
    signature = inspect.signature(fn)
    properties = {name: {"type": JSON_TYPES[p.annotation]} for name, p in signature.parameters.items()}
    required = [name for name, p in signature.parameters.items() if p.default is inspect.Parameter.empty]
    description = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ").strip()
    return {
        "name": fn.__name__,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def run_tool(call: tuple[str, str], tools: dict[str, Callable[[str], str]]) -> str:
    """The text of the tool message for a parsed call (name, argument): the tool's result as a string,
    "error: no tool named <name>; tools: <names, sorted, comma-separated>" for an unknown tool, or
    "error: <the exception's message>" if the tool raised. A tool error never stops the agent."""
    name, argument = call
    if name not in tools:
        return f"error: no tool named {name}; tools: {', '.join(sorted(tools))}"
    try:
        return str(tools[name](argument))
    except Exception as error:  # noqa: BLE001 - the model reads the error and can try again
        return f"error: {error}"


def agent_loop(
    reply_fn: Callable[[list[dict]], str],
    messages: list[dict],
    tools: dict[str, Callable[[str], str]],
    max_turns: int = 4,
) -> Episode:
    """Run an agent: ask reply_fn for the assistant's next reply to the conversation so far (at most
    max_turns replies); a reply in the tool grammar is appended as an assistant turn, the tool is run
    (run_tool) and its result appended as a "tool" message; any other reply is the final answer,
    appended, and ends the episode. The caller's list is left unchanged."""
    conversation = list(messages)
    n_calls = 0
    for _ in range(max_turns):
        reply = reply_fn(conversation)
        conversation.append({"role": "assistant", "content": reply})
        call = parse_tool_call(reply)
        if call is None:
            return Episode(conversation, reply, n_calls)
        n_calls += 1
        conversation.append({"role": "tool", "content": run_tool(call, tools)})
    return Episode(conversation, None, n_calls)


# ----------------------------------------------------------------------------- Part 2: Inspect


@tool(name="lookup")
def lookup_tool(wiki: dict[str, str]):
    """Inspect's `lookup` tool on one wiki: the page of a name (surrounding spaces ignored), or
    "unknown" when the wiki has no such page."""

    async def execute(name: str) -> str:
        """Look up a person or a city in the wiki.

        Args:
            name: The person's or the city's name.

        Returns:
            The wiki's page about them, or "unknown".
        """
        return wiki.get(name.strip(), "unknown")

    return execute


@solver
def tool_loop_solver(max_turns: int = 4):
    """A solver that runs the agent loop with Inspect's APIs: generate with tool_calls="none"; if the
    reply calls tools, execute them on state.tools (inspect_ai.model.execute_tools) and append the
    tool messages, then generate again; stop at a reply without tool calls or after max_turns replies."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        for _ in range(max_turns):
            state = await generate(state, tool_calls="none")
            if not state.output.message.tool_calls:
                break
            result = await execute_tools(state.messages, state.tools)
            state.messages.extend(result.messages)
        return state

    return solve


# ----------------------------------------------------------------------------- Part 3: the environment


def links(page: str, wiki: dict[str, str]) -> list[str]:
    """The pages a page links to: the names of other pages it mentions, in order of first mention."""
    words = re.findall(r"[A-Z][a-z]+", page)
    return list(dict.fromkeys(word for word in words if word in wiki))


def shortest_path(wiki: dict[str, str], start: str, goal_text: str) -> list[str] | None:
    """The WikiGame's optimal play: the shortest list of pages, from `start` (included), to a page whose
    text contains goal_text (included), following links (the `links` of each page), found by breadth-
    first search; pages are expanded in link order, so ties go to the earlier link. None if no page
    reachable from start contains goal_text."""
    if start not in wiki:
        return None
    parents = {start: None}
    queue = deque([start])
    while queue:
        page = queue.popleft()
        if goal_text in wiki[page]:
            path = []
            while page is not None:
                path.append(page)
                page = parents[page]
            return path[::-1]
        for neighbour in links(wiki[page], wiki):
            if neighbour not in parents:
                parents[neighbour] = page
                queue.append(neighbour)
    return None


def score_episode(episode: Episode, target: str, optimal_calls: int) -> dict:
    """The environment's score of one episode: "success" (the final answer contains target as a whole
    word, case-insensitively), "calls" (tool calls made) and "efficiency" (optimal_calls divided by the
    calls made, at most 1, when it succeeded; 0 when it failed)."""
    answer = episode.answer or ""
    success = re.search(rf"\b{re.escape(target.lower())}\b", answer.lower()) is not None
    efficiency = min(1.0, optimal_calls / max(episode.n_calls, 1)) if success else 0.0
    return {"success": success, "calls": episode.n_calls, "efficiency": efficiency}


def calculator(expression: str) -> str:
    """A tool for the arithmetic task: evaluate "<int> <op> <int>" where op is +, -, * or the words
    plus, minus, times (spaces optional around symbols, negative numbers allowed), returning the integer
    result as text; anything else returns "error: cannot read <expression>". Never calls eval."""
    words = {"plus": "+", "minus": "-", "times": "*"}
    match = re.fullmatch(r"\s*(-?\d+)\s*(\+|-|\*|plus|minus|times)\s*(-?\d+)\s*", expression)
    if match is None:
        return f"error: cannot read {expression}"
    a, op, b = int(match.group(1)), words.get(match.group(2), match.group(2)), int(match.group(3))
    return str({"+": a + b, "-": a - b, "*": a * b}[op])


# ----------------------------------------------------------------------------- Part 4: elicitation


def newcombe_difference(k_a: int, n_a: int, k_b: int, n_b: int, z: float = 1.96) -> tuple[float, float, float]:
    """The difference of two independent success rates, p_a - p_b (k_a of n_a against k_b of n_b, both n >= 1),
    with Newcombe's hybrid score interval (Newcombe 1998, method 10) at z: from the Wilson intervals
    (l_a, u_a) and (l_b, u_b) (wilson_interval, 3.1), low = d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2) and
    high = d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2). Returns (d, low, high)."""
    p_a, p_b = k_a / n_a, k_b / n_b
    low_a, high_a = wilson_interval(k_a, n_a, z)
    low_b, high_b = wilson_interval(k_b, n_b, z)
    d = p_a - p_b
    low = d - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = d + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return (d, low, high)


def self_check(episode: Episode) -> bool:
    """A check an agent can run on itself without knowing the answer: it gave a final answer after at
    least one call, no tool message says "unknown" or starts with "error", its last call was not a
    repeat of an earlier one, and the answer's last word (without its final full stop) is a word of the
    last tool message: the answer rests on a page it had just read for the first time."""
    if not episode.answer:
        return False
    calls = [m["content"] for m in episode.messages if m["role"] == "assistant" and parse_tool_call(m["content"])]
    results = [m["content"] for m in episode.messages if m["role"] == "tool"]
    if not calls or not results or calls[-1] in calls[:-1]:
        return False
    if any(text == "unknown" or text.startswith("error") for text in results):
        return False
    words = episode.answer.rstrip(".").split()
    return bool(words) and words[-1] in re.findall(r"\w+", results[-1])


def retry_until_verified(
    run_once: Callable[[int], Episode], verify: Callable[[Episode], bool], max_tries: int = 3
) -> tuple[Episode, int]:
    """Reflection by retrying: run run_once(attempt) for attempt 0, 1, ... until verify accepts an
    episode or max_tries runs were made; return the accepted episode (else the last one) and the
    number of runs made."""
    for attempt in range(max_tries):
        episode = run_once(attempt)
        if verify(episode):
            return episode, attempt + 1
    return episode, max_tries


def agent_model(name: str, env: dict[str, str] | None = None) -> str:
    """The Inspect model name to run an agent on. A zoo or mockllm model needs nothing; "openai/..." and
    "anthropic/..." need their key (API_KEYS) in env (os.environ by default) and otherwise raise
    RuntimeError at once, naming the missing variable and the offline alternative OFFLINE_MODEL."""
    env = os.environ if env is None else env
    provider = name.split("/", 1)[0]
    if provider in API_KEYS and not env.get(API_KEYS[provider]):
        raise RuntimeError(
            f"{name} needs {API_KEYS[provider]} in the environment, and the network; "
            f"offline, run the agent on model={OFFLINE_MODEL!r}"
        )
    return name
