# %% [markdown]
# # 3.4 LLM agents
#
# An **agent** is a language model in a loop: it reads a conversation, either answers or asks for a tool to be
# run, reads the tool's result, and goes on. Everything that makes agents powerful (search, code execution,
# browsing) and everything that makes their evaluation hard (many steps, each of which can fail) comes from
# that loop. In this section you will
#
# 1. describe tools as functions with JSON schemas, run them safely, and write the message loop by hand
#    (render, generate, parse the tool call, run the tool, append a "tool" message, repeat);
# 2. write the same loop with Inspect's agent APIs (`@tool`, `@solver`, `execute_tools`) and run it as an
#    Inspect eval on the zoo's chat organism;
# 3. build an offline environment, a WikiGame-like wiki of people and cities linked to each other, with its
#    optimal play and its scoring, plus a calculator tool for arithmetic;
# 4. compare ways of eliciting the agent's ability (plain, a ReAct-style prompt, a solved example in its
#    history, and reflection by retrying on a failed self-check) by measured success rates with intervals;
# 5. keep the path to hosted API models for online use, failing at once, clearly, offline.
#
# **The model.** `chat-mini` (issue 14; `zoo/chat_corpus.py`) learned one tool, `lookup`, on a small wiki drawn
# for each dialogue: asked "Which country does Kate live in?", it calls `lookup Kate`, reads "Kate lives in
# Milan. Kate works at the forest.", calls `lookup Milan`, reads "Milan is in Italy." and answers. In the chat
# template a call is an assistant turn `<|call|> lookup Milan`, and the result comes back as a `tool` turn.
# That is all it ever saw: no other tool, no pages with extra links, no instructions. So we measure honestly what
# it can do, and we design the harder environment so its success rate is neither 0 nor 1 and the differences
# between elicitation methods can be measured.
#
# **Relation to ARENA's 3.4.** ARENA teaches agents on OpenAI's API: a function-calling arithmetic task, the
# WikiGame on live Wikipedia pages, and elicitation methods compared on GPT-4o-mini. The structure here is the
# same (tools, the loop, the WikiGame, elicitation) on a 2-layer model trained on our own dialogues, offline;
# the WikiGame is played on a wiki the story world generates, and the API path is kept for online learners.
#
# **Prerequisites**: 3.3 (Inspect's `Task`, solvers and scorers). Each exercise is a function whose body raises
# `NotImplementedError`; the check below it tests your version.

# %%
import inspect  # noqa: F401 (inspect, math, os, re and deque: for your solutions)
import math  # noqa: F401
import os  # noqa: F401
import random
import re  # noqa: F401
import tempfile
import time
from collections import deque  # noqa: F401
from collections.abc import Callable

import plotly.graph_objects as go
import torch
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig, execute_tools  # noqa: F401 (execute_tools: for your solver)
from inspect_ai.scorer import includes
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.tool import tool

from solutions.chapter3_evals.llm_agents import (
    API_KEYS,
    JSON_TYPES,
    OFFLINE_MODEL,
    REACT_PROMPT,
    Episode,
    Question,
    linked_wiki,
    links,
    run_agents,
    run_with_retries,
    solved_example,
    start_messages,
    wiki_questions,
)
from solutions.chapter3_evals.threat_models import wilson_interval  # you wrote it in 3.1
from tests.checks.chapter3_evals.llm_agents import check  # noqa: F401 (used by the check cells the build adds)
from zoo import chat_corpus
from zoo.chat_helpers import chat_model, generate_reply
from zoo.chat_template import parse_tool_call, render

torch.set_num_threads(2)
model = chat_model("chat-mini")  # a HookedTransformer that reads the chat template
assert model.cfg.n_layers == 2  # the prose above calls it a 2-layer model
print(render([{"role": "user", "content": "Which country does Kate live in?"}]))

# %% [markdown]
# ## Part 1: tools and the message loop
#
# A tool-calling API (OpenAI's, Anthropic's, Inspect's) is given each tool as a **schema**: a name, a
# description the model reads to decide when to call it, and a JSON schema of its parameters. Inspect builds
# these from a Python function's signature and docstring; here you do it yourself. `JSON_TYPES` maps Python
# annotations to JSON types.


# %% [exercise] tool_schema difficulty=2 importance=3 minutes=10
def tool_schema(fn: Callable) -> dict:
    """The JSON schema a tool-calling API is given for a Python function: its name, the first
    paragraph of its docstring as the description, and "parameters", an object schema with each
    parameter's JSON type (from its annotation, via JSON_TYPES) and, as "required", the names of the
    parameters that have no default, in order."""
    raise NotImplementedError()


# %% [hint]
# What does `inspect.signature` give you for each parameter? Which attribute says that a parameter has no default?

# %% [hint]
# `inspect.Parameter.empty` marks a missing default; `inspect.getdoc(fn).split("\n\n")[0]` is the first paragraph.


# %%
def lookup(name: str) -> str:
    """Find a page of the wiki by its name.

    Returns the page, or "unknown"."""
    return "unknown"


schema = tool_schema(lookup)
print(schema)
assert schema["parameters"]["required"] == ["name"] and schema["description"] == "Find a page of the wiki by its name."

# %% [markdown]
# A model asks for a tool in its own grammar; for chat-mini, `zoo.chat_template.parse_tool_call` turns the reply
# `<|call|> lookup Milan` into `("lookup", "Milan")`, and returns None for a reply that is not a call. Running the
# call is where agents meet the world, so it must never crash the loop: an unknown tool or a tool that raises
# becomes text the model reads (and may recover from).


# %% [exercise] run_tool difficulty=1 importance=3 minutes=5
def run_tool(call: tuple[str, str], tools: dict[str, Callable[[str], str]]) -> str:
    """The text of the tool message for a parsed call (name, argument): the tool's result as a string,
    "error: no tool named <name>; tools: <names, sorted, comma-separated>" for an unknown tool, or
    "error: <the exception's message>" if the tool raised. A tool error never stops the agent."""
    raise NotImplementedError()


# %% [hint]
# Two things can go wrong: the name, and the tool itself. Which Python construct turns an exception into a value?

# %% [markdown]
# Now the loop. `reply_fn(messages)` is the model: it takes the conversation so far and returns the assistant's
# next reply (for chat-mini, `generate_reply(model, messages)`, which renders the conversation with the chat
# template, generates up to `<|end|>` and returns the text). Keeping the model behind a function lets the checks
# use a scripted model, and lets you swap chat-mini for an API model later. An `Episode` holds the conversation,
# the final answer (None if the turn limit came first) and the number of calls.


# %% [exercise] agent_loop difficulty=3 importance=5 minutes=20
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
    raise NotImplementedError()


# %% [hint]
# The model must see its own call before the result, or it reads a tool message it never asked for. What ends
# the loop, and what does the episode hold if the limit comes first?

# %% [hint]
# Loop `for _ in range(max_turns)`: append `{"role": "assistant", "content": reply}`; if `parse_tool_call(reply)` is
# None return the episode; else append `{"role": "tool", "content": run_tool(call, tools)}`.

# %% [markdown]
# Run it on chat-mini, on a wiki in exactly its training format (greedy decoding):

# %%
kate_wiki = {"Kate": "Kate lives in Milan. Kate works at the forest.", "Milan": "Milan is in Italy."}
episode = agent_loop(
    lambda messages: generate_reply(model, messages, max_new_tokens=24),
    [{"role": "user", "content": "Which country does Kate live in?"}],
    {"lookup": lambda name: kate_wiki.get(name.strip(), "unknown")},
)
for message in episode.messages:
    print(f"{message['role']:>9}: {message['content']}")
assert episode.answer == "Kate lives in Italy." and episode.n_calls == 2

# %% [markdown]
# ## Part 2: the same agent with Inspect
#
# Inspect describes a tool with `@tool`: a factory that returns an `async` function whose docstring (with an
# `Args:` section) becomes the schema you built by hand above. `use_tools(...)` offers tools to the model, and
# `generate(state, tool_calls=...)` chooses who runs them: `"loop"` (Inspect runs them and generates again until
# the model stops calling), `"single"` (one round) or `"none"` (you do it, with `execute_tools`). The zoo's
# provider (`zoo/inspect_provider.py`) turns chat-mini's `<|call|> lookup Milan` into an Inspect `ToolCall` for
# the offered tool of that name, so the tool must be named `lookup`.


# %% [exercise] lookup_tool difficulty=1 importance=4 minutes=10
@tool(name="lookup")
def lookup_tool(wiki: dict[str, str]):
    """Inspect's `lookup` tool on one wiki: the page of a name (surrounding spaces ignored), or
    "unknown" when the wiki has no such page."""
    raise NotImplementedError()


# %% [hint]
# The factory returns an inner asynchronous function of one parameter, called `name`; Inspect reads the schema
# from that inner function's docstring, which needs a section describing each argument.

# %% [markdown]
# Now the loop as a solver. Inspect's own `generate(tool_calls="loop")` does this for you; writing it yourself
# is what lets you add a turn limit, a reflection step or a retry, as you will in Part 4.


# %% [exercise] tool_loop_solver difficulty=3 importance=4 minutes=20
@solver
def tool_loop_solver(max_turns: int = 4):
    """A solver that runs the agent loop with Inspect's APIs: generate with tool_calls="none"; if the
    reply calls tools, execute them on state.tools (inspect_ai.model.execute_tools) and append the
    tool messages, then generate again; stop at a reply without tool calls or after max_turns replies."""
    raise NotImplementedError()


# %% [hint]
# After `generate`, the last reply is `state.output.message`; its `tool_calls` is empty for a final answer.

# %% [hint]
# `result = await execute_tools(state.messages, state.tools)` returns the new messages in `result.messages`.

# %% [markdown]
# Each sample gets its own wiki, so a small solver puts that sample's `lookup` tool in `state.tools` before the
# loop. We run 12 linked-wiki country questions (Part 3 explains the wiki) through Inspect on `zoo/chat-mini`,
# greedily, and compare every sample's score with the hand-written loop's (the batched `run_agents` runs
# `agent_loop`'s logic on many conversations at once). Inspect's `includes()` scores a completion that contains
# the target.


# %%
@solver
def wiki_tools():
    async def give_tools(state: TaskState, generate: Generate) -> TaskState:
        state.tools = [lookup_tool(state.metadata["wiki"])]
        return state

    return give_tools


inspect_questions: list[Question] = wiki_questions(12, "country", seed=7)
dataset = MemoryDataset(
    [Sample(input=q.text, target=q.target, id=i, metadata={"wiki": q.wiki}) for i, q in enumerate(inspect_questions)]
)
agent_task = Task(
    dataset=dataset,
    solver=[wiki_tools(), tool_loop_solver(max_turns=4)],
    scorer=includes(),
    config=GenerateConfig(temperature=0.0, max_tokens=24),
)
with tempfile.TemporaryDirectory() as log_dir:  # logs go to a temporary folder, never into the repository
    [log] = inspect_eval(agent_task, model=OFFLINE_MODEL, log_dir=log_dir, display="none")
    assert log.status == "success", log.error
    inspect_scores = {sample.id: sample.scores["includes"].value == "C" for sample in log.samples}
by_hand = run_agents(model, [start_messages(q) for q in inspect_questions], [q.wiki for q in inspect_questions], 0.0)
hand_scores = {
    i: q.target.lower() in (e.answer or "").lower() for i, (q, e) in enumerate(zip(inspect_questions, by_hand))
}
print(f"Inspect: {sum(inspect_scores.values())}/12 correct; by hand: {sum(hand_scores.values())}/12")
assert inspect_scores == hand_scores  # the same greedy agent, sample by sample

# %% [markdown]
# Inspect also ships a ready-made agent, `inspect_ai.agent.react()`: a loop that, by default, ends when the
# model calls a `submit()` tool with its answer and otherwise asks it to continue. chat-mini never learned
# `submit` (every call in its training corpus is to `lookup`, checked below), so its final answers would never
# end a `react()` run; on an API model, `react(tools=[lookup_tool(wiki)])` is the idiomatic choice. Knowing what
# your model was trained to do decides which scaffold can elicit it.

# %%
tool_turns = [t for d in chat_corpus.transcripts("train", 400) for t in d.turns if t.domain == "tool"]
called = {parse_tool_call(m["content"])[0] for t in tool_turns for m in t.messages if parse_tool_call(m["content"])}
assert tool_turns and called == {"lookup"}

# %% [markdown]
# ## Part 3: an offline environment
#
# The WikiGame asks an agent to get from one page to another by following links. Our wiki comes from the story
# world: three people per wiki, each with a page saying where they live, where they work, and who their friend
# is ("Leo is a friend of Julia."), and a page for each of their cities ("Munich is in Germany."). Every name a
# page mentions is a link (`links(page, wiki)`). A question is answered by walking links: "Which country does
# Julia live in?" is Julia -> Munich (2 lookups); "Which country does the friend of Julia live in?" is
# Julia -> Leo -> Leo's city (3).

# %%
example_wiki = linked_wiki(random.Random(0))
for name, page in example_wiki.items():
    print(f"{name:>10}: {page}   links: {links(page, example_wiki)}")


# %% [exercise] shortest_path difficulty=3 importance=3 minutes=15
def shortest_path(wiki: dict[str, str], start: str, goal_text: str) -> list[str] | None:
    """The WikiGame's optimal play: the shortest list of pages, from `start` (included), to a page whose
    text contains goal_text (included), following links (the `links` of each page), found by breadth-
    first search; pages are expanded in link order, so ties go to the earlier link. None if no page
    reachable from start contains goal_text."""
    raise NotImplementedError()


# %% [hint]
# Which search visits pages in order of their distance from the start? How do you get the path back once you
# reach the goal?

# %% [hint]
# Keep a dict from each visited page to the page it was reached from (`{start: None}`) and a `collections.deque`.


# %% [markdown]
# The environment scores an episode by success (the target as a whole word of the answer: "Francetown" does not
# answer "France") and by efficiency: the optimal number of lookups over the number made.


# %% [exercise] score_episode difficulty=2 importance=3 minutes=10
def score_episode(episode: Episode, target: str, optimal_calls: int) -> dict:
    """The environment's score of one episode: "success" (the final answer contains target as a whole
    word, case-insensitively), "calls" (tool calls made) and "efficiency" (optimal_calls divided by the
    calls made, at most 1, when it succeeded; 0 when it failed)."""
    raise NotImplementedError()


# %% [hint]
# A regular expression with word boundaries (`\b`) matches whole words; lower-case both sides first.

# %% [markdown]
# Now measure chat-mini on a ladder of tasks, 30 questions each, sampled at temperature 1 (its own distribution),
# with the plain prompt (the question alone):
#
# - **trained**: country questions on a wiki in exactly the training format (no friend links);
# - **city, country**: the same questions on the linked wiki, whose person pages carry one sentence the model
#   never saw ("Leo is a friend of Julia.");
# - **friend's country**: a three-hop question of a form it never saw.

# %%
LADDER = {
    "trained": wiki_questions(30, "country", seed=2, friends=False),
    "city": wiki_questions(30, "city", seed=2),
    "country": wiki_questions(30, "country", seed=2),
    "friend's country": wiki_questions(30, "friend_country", seed=2),
}
ladder_rates, ladder_calls, ladder_episodes = {}, {}, {}
for name, questions in LADDER.items():
    ladder_episodes[name] = episodes = run_agents(
        model, [start_messages(q) for q in questions], [q.wiki for q in questions], seed=0
    )
    optimal = [len(shortest_path(q.wiki, q.person, q.target)) for q in questions]
    scores = [score_episode(e, q.target, n) for e, q, n in zip(episodes, questions, optimal)]
    ladder_rates[name] = sum(s["success"] for s in scores) / len(scores)
    ladder_calls[name] = sum(s["calls"] for s in scores) / len(scores)
    print(f"{name:>17}: success {ladder_rates[name]:.2f}, mean calls {ladder_calls[name]:.2f}, optimal {optimal[0]}")
assert ladder_rates["trained"] >= 0.9  # in its training format it is nearly perfect
assert ladder_rates["country"] <= 0.7  # one unseen sentence per page: far below the training format
assert ladder_rates["friend's country"] <= 0.1  # the unseen three-hop question: (almost) never
assert ladder_calls["country"] >= 1.0  # it still calls lookup: it does not forget the tool, it loses track

# %% [markdown]
# The one extra sentence does not stop chat-mini from calling `lookup`: it makes it lose its place, looking up the
# same person again and again, or answering with the city. Look at a failure:

# %%
failed = next(
    e for e, q in zip(ladder_episodes["country"], LADDER["country"]) if not score_episode(e, q.target, 2)["success"]
)
for message in failed.messages:
    print(f"{message['role']:>9}: {message['content']}")


# %% [markdown]
# The second task is arithmetic with a calculator tool. chat-mini was never trained to call one (it adds in its
# chain of thought, with errors planted at `chat_corpus.ERROR_RATE`), so here the agent is scripted; the tool is
# what matters: it parses, it never runs code, and its errors are text.


# %% [exercise] calculator difficulty=2 importance=2 minutes=10
def calculator(expression: str) -> str:
    """A tool for the arithmetic task: evaluate "<int> <op> <int>" where op is +, -, * or the words
    plus, minus, times (spaces optional around symbols, negative numbers allowed), returning the integer
    result as text; anything else returns "error: cannot read <expression>". Never calls eval."""
    raise NotImplementedError()


# %% [hint]
# One regular expression with three groups (a number, an operator, a number), matched against the whole text.
# Mind the minus sign: it can be an operator or part of a number.

# %%
script = iter(["<|call|> calculator 17 plus 25", "<|call|> calculator 42 times 3", "It is 126."])
sum_episode = agent_loop(
    lambda messages: next(script),
    [{"role": "user", "content": "Mia had 17 coins and found 25 more, then tripled them. How many coins now?"}],
    {"calculator": calculator},
)
assert [m["content"] for m in sum_episode.messages if m["role"] == "tool"] == ["42", "126"]

# %% [markdown]
# ## Part 4: elicitation, measured
#
# How much of a model's ability you measure depends on how you ask. We compare four ways of running the same
# agent on the 80 linked-wiki country questions, each sampled at temperature 1 with the same seeds:
#
# - **plain**: the question alone;
# - **react**: a ReAct-style system prompt first (Yao et al. 2022 interleave reasoning and acting; chat-mini
#   cannot write free reasoning between calls, so the prompt only tells it how to act: "Look up each page you
#   need, then answer.");
# - **history**: one solved dialogue (two lookups and an answer, in the training format) before the question;
# - **history + reflection**: as history, and when the agent's own check fails, it tries again with a new seed,
#   up to 3 runs (Shinn et al. 2023's Reflexion retries with a verbal reflection; chat-mini cannot read one, so the
#   reflection here is the check and the retry).
#
# A rate from 80 trials is uncertain by several percentage points, so every rate comes with an interval, and an
# ordering is claimed only where the intervals separate.


# %% [markdown]
# Each rate gets the Wilson interval you wrote in 3.1 (imported above as `wilson_interval`). But "is method A
# better than method B?" is a question about the difference of two rates, and two intervals that overlap can
# still belong to a difference that is clearly above 0. The difference needs its own interval. Newcombe (1998)
# builds one from the two Wilson intervals: the difference is lowest when A's rate is at the bottom of its
# interval and B's at the top, so the lower end combines A's lower arm with B's upper arm (in quadrature, as
# independent errors), and the upper end the other two arms:
#
# $$d = p_A - p_B, \qquad d - \sqrt{(p_A - l_A)^2 + (u_B - p_B)^2}, \qquad d + \sqrt{(u_A - p_A)^2 + (p_B - l_B)^2}.$$
#
# Unlike the normal interval of a difference, it keeps Wilson's good behaviour near 0 and 1 (rates like 0/80).


# %% [exercise] newcombe_difference difficulty=3 importance=4 minutes=15
def newcombe_difference(k_a: int, n_a: int, k_b: int, n_b: int, z: float = 1.96) -> tuple[float, float, float]:
    """The difference of two independent success rates, p_a - p_b (k_a of n_a against k_b of n_b, both n >= 1),
    with Newcombe's hybrid score interval (Newcombe 1998, method 10) at z: from the Wilson intervals
    (l_a, u_a) and (l_b, u_b) (wilson_interval, 3.1), low = d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2) and
    high = d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2). Returns (d, low, high)."""
    raise NotImplementedError()


# %% [hint]
# Think of each Wilson interval as two arms of different lengths, below and above its rate. Which arm of A and
# which arm of B can make the difference smaller than observed, and which can make it larger?

# %% [hint]
# Call wilson_interval for each method; the arms are p_a - l_a, u_a - p_a, p_b - l_b and u_b - p_b. Combine two
# arms with math.sqrt(x ** 2 + y ** 2).

# %% [markdown]
# Reflection needs a check the agent can run without knowing the answer. Ours accepts an episode only when the
# answer rests on a page the agent had just read for the first time: that rejects the loops and the guesses seen
# above.


# %% [exercise] self_check difficulty=2 importance=4 minutes=15
def self_check(episode: Episode) -> bool:
    """A check an agent can run on itself without knowing the answer: it gave a final answer after at
    least one call, no tool message says "unknown" or starts with "error", its last call was not a
    repeat of an earlier one, and the answer's last word (without its final full stop) is a word of the
    last tool message: the answer rests on a page it had just read for the first time."""
    raise NotImplementedError()


# %% [hint]
# Collect the assistant turns that are calls (`parse_tool_call`) and the tool messages. "Is a word of" means the
# words of the message (`re.findall(r"\w+", ...)`), not a substring.


# %% [exercise] retry_until_verified difficulty=3 importance=4 minutes=10
def retry_until_verified(
    run_once: Callable[[int], Episode], verify: Callable[[Episode], bool], max_tries: int = 3
) -> tuple[Episode, int]:
    """Reflection by retrying: run run_once(attempt) for attempt 0, 1, ... until verify accepts an
    episode or max_tries runs were made; return the accepted episode (else the last one) and the
    number of runs made."""
    raise NotImplementedError()


# %% [hint]
# The attempt number is what lets each run differ (a new sampling seed); without it every retry repeats the first.

# %% [markdown]
# One episode with a retry, by hand (each run sampled with its own seed):

# %%
question = wiki_questions(1, "country", seed=3)[0]
wiki_tools_dict = {"lookup": lambda name: question.wiki.get(name.strip(), "unknown")}


def sampled(attempt: int) -> Episode:
    reply_fn = lambda messages: generate_reply(model, messages, 1.0, 24, seed=100 * attempt + len(messages))  # noqa: E731
    return agent_loop(reply_fn, start_messages(question, "history"), wiki_tools_dict)


kept, tries = retry_until_verified(sampled, self_check, 3)
print(f"target {question.target}; answer {kept.answer!r} after {tries} run(s)")
assert 1 <= tries <= 3

# %% [markdown]
# Now the comparison, batched (`run_agents` and `run_with_retries` run the loops above on all 80 questions at
# once). The batched runs take about 30 seconds.

# %%
questions = wiki_questions(80, "country", seed=1)
wikis = [q.wiki for q in questions]
results = {}
for style in ["plain", "react", "history"]:
    results[style] = run_agents(model, [start_messages(q, style) for q in questions], wikis, seed=0)
history_starts = [start_messages(q, "history") for q in questions]
# The first try of reflection is the history run itself (the same seed), so it is passed in, not rerun.
retried, tries_used = run_with_retries(model, history_starts, wikis, self_check, 3, first=results["history"])
results["history + reflection"] = retried

rates, intervals, successes, solved = {}, {}, {}, {}
for name, episodes in results.items():
    solved[name] = [float(score_episode(e, q.target, 2)["success"]) for e, q in zip(episodes, questions)]
    successes[name] = int(sum(solved[name]))
    rates[name], intervals[name] = successes[name] / len(questions), wilson_interval(successes[name], len(questions))
    print(f"{name:>21}: {rates[name]:.2f}  95% interval [{intervals[name][0]:.2f}, {intervals[name][1]:.2f}]")
print("plain and react intervals", "separate" if intervals["react"][1] < intervals["plain"][0] else "overlap")
print(f"mean runs with reflection: {sum(tries_used) / len(tries_used):.2f}")

names = list(rates)
go.Figure(
    go.Bar(
        x=names,
        y=[rates[n] for n in names],
        error_y=dict(
            type="data",
            symmetric=False,
            array=[intervals[n][1] - rates[n] for n in names],
            arrayminus=[rates[n] - intervals[n][0] for n in names],
        ),
    ),
    layout=dict(title="chat-mini on linked-wiki country questions (80, 95% Wilson intervals)", yaxis_title="success"),
).show()


def above(a: str, b: str) -> bool:
    """a's interval lies wholly above b's."""
    return intervals[a][0] > intervals[b][1]


assert rates["react"] < rates["plain"] and not above("react", "plain")  # the instruction it never saw does not help
assert above("history", "plain") and above("history", "react")  # a solved example in its history helps
assert above("history + reflection", "plain")
assert rates["history + reflection"] > rates["history"]  # retrying gains here...
assert not above("history + reflection", "history")  # ...but the two intervals overlap

# %% [markdown]
# Two overlapping intervals do not say that two methods are alike: the question "does A beat B?" is about
# p_A - p_B, and its interval is narrower than the gap between the far ends of the two intervals. (Intervals that
# do not overlap always give a difference interval above 0; the converse fails.) Each gain below is method A's
# rate minus method B's, with Newcombe's interval, next to the naive one made by subtracting the Wilson ends.


# %%
def gain(a: str, b: str) -> tuple[float, float, float]:
    """a's success rate minus b's, with Newcombe's 95% interval."""
    return newcombe_difference(successes[a], len(questions), successes[b], len(questions))


pairs = [("react", "plain"), ("history", "plain"), ("history + reflection", "history")]
gains = {pair: gain(*pair) for pair in pairs}
for (a, b), (d, low, high) in gains.items():
    naive = (intervals[a][0] - intervals[b][1], intervals[a][1] - intervals[b][0])
    verdict = "established" if low > 0 else "a loss, established" if high < 0 else "not established"
    print(
        f"{a} - {b}: {d:+.3f}  Newcombe [{low:+.3f}, {high:+.3f}]  naive [{naive[0]:+.3f}, {naive[1]:+.3f}]  {verdict}"
    )
    assert naive[0] <= low and high <= naive[1]  # never wider than subtracting the ends
assert gains[("react", "plain")][0] < 0  # the ReAct-style prompt is no better than the plain question
assert gains[("history", "plain")][1] > 0  # the solved example's gain is real
assert abs(gains[("history + reflection", "history")][1]) < 0.1  # retrying's gain: its lower end is near 0


# %% [markdown]
# Newcombe's interval assumes the two rates come from independent samples. Ours do not: every method ran on the
# same 80 questions, and reflection's first try is the history run itself, so the two agree on most questions.
# Positively correlated outcomes make the difference less noisy than independent ones
# would, so here the interval errs on the wide, cautious side; a paired analysis (per question, as McNemar's test
# does) would be tighter.

# %%
with_retry, without = torch.tensor(solved["history + reflection"]), torch.tensor(solved["history"])
correlation = float(torch.corrcoef(torch.stack([with_retry, without]))[0, 1])
print(f"correlation of per-question success, history + reflection vs history: {correlation:.2f}")
assert correlation > 0.3  # strongly paired: the independent-samples interval is conservative here

# %% [markdown]
# What you just measured: the prompt a human would write ("Look up each page you need") does not help; its rate
# is below plain's (chat-mini never saw a system prompt like it). The format it was trained on (a solved example
# in its history) raises the rate, a gain whose interval lies above 0. Retrying on a failed self-check adds to
# that: the Wilson intervals of history and history + reflection overlap, which by itself settles nothing, and
# with 80 questions the verdict on that gain is close to the line (the cell above prints it). An eval that ran
# only the plain prompt would underestimate what the model can do, the central worry of capability elicitation.

# %% [finding] plain_country_rate difficulty=3 importance=4 minutes=10
# What is the plain agent's success rate on the 80 linked-wiki country questions (a float in [0, 1])? Measure it
# yourself with your own loop or from the batched results above.
plain_country_rate = ...

# %% [hint]
# Score each episode of the plain style against its question's target with score_episode, and average.

# %% [solution]
plain_country_rate = rates["plain"]


# %% [markdown]
# ## Part 5: the API path
#
# Online, the same Inspect task runs on a hosted model: `inspect_eval(agent_task, model="openai/gpt-4o-mini")`
# with `OPENAI_API_KEY` in the environment (Inspect's openai provider also needs `pip install openai`), or
# `anthropic/...` with `ANTHROPIC_API_KEY`; Inspect retries rate-limited calls with backoff. Offline, that call
# must fail at once with a message that says what to do instead, not after a timeout.


# %% [exercise] agent_model difficulty=1 importance=3 minutes=5
def agent_model(name: str, env: dict[str, str] | None = None) -> str:
    """The Inspect model name to run an agent on. A zoo or mockllm model needs nothing; "openai/..." and
    "anthropic/..." need their key (API_KEYS) in env (os.environ by default) and otherwise raise
    RuntimeError at once, naming the missing variable and the offline alternative OFFLINE_MODEL."""
    raise NotImplementedError()


# %% [hint]
# The provider is the part of the name before the first "/". An empty variable is as good as none.

# %%
assert agent_model(OFFLINE_MODEL, {}) == "zoo/chat-mini"
started = time.perf_counter()
try:
    agent_model("openai/gpt-4o-mini", {})
    raise AssertionError("an API model without a key must fail")
except RuntimeError as error:
    print(error)
    assert "zoo/chat-mini" in str(error) and "OPENAI_API_KEY" in str(error)
assert time.perf_counter() - started < 1.0  # at once, before any network call
# Inspect's own provider fails at once too here (no key; the openai package is not installed offline).
started = time.perf_counter()
try:
    from inspect_ai.model import get_model

    get_model("openai/gpt-4o-mini", api_key=None)
    inspect_failed = False
except Exception as error:  # noqa: BLE001
    print(type(error).__name__, str(error)[:200])
    inspect_failed = True
assert inspect_failed and time.perf_counter() - started < 10.0
assert set(API_KEYS) == {"openai", "anthropic"} and JSON_TYPES[int] == "integer" and REACT_PROMPT and solved_example()

# %% [markdown]
# ## Summary
#
# - A tool is a function plus a schema; the loop appends the model's call and the tool's result as messages,
#   and a tool error is text, never a crash.
# - Inspect's `@tool`, `@solver` and `execute_tools` express the same loop, and your hand-written loop and
#   Inspect's gave the same greedy results sample by sample.
# - On a wiki one sentence richer than its training data, chat-mini's success rate drops from near 1 to a
#   measurable fraction, and to near 0 on a three-hop question it never saw.
# - Elicitation changes the measured rate more than the sampling noise: an unfamiliar instruction lowers it, a
#   familiar example raises it, and retrying on a self-check adds a gain near the edge of what 80 questions can
#   resolve. Report intervals, and judge a comparison by the interval of the difference (Newcombe's), not by
#   whether two intervals overlap.
