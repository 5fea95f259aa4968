"""Checks for 3.4 LLM agents.

The loop and the solver are checked on scripted models (a reply chosen by how many assistant turns the
conversation already has, so a script is the same however often it is called), the tools on small wikis
written here, the environment on hand-drawn linked wikis (paths worked out in the comments), and the
statistics on hand-computed intervals. The finding's truth (the plain agent's success rate on the
linked-wiki country questions) is measured on chat-mini when first needed, with the batched runner.
"""

import asyncio
import copy
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from inspect_ai.model import ChatCompletionChoice, ChatMessageAssistant, ChatMessageUser, ModelOutput
from inspect_ai.solver import TaskState
from inspect_ai.tool import ToolCall, ToolDef

from solutions.chapter3_evals import llm_agents as ref
from tests.harness import Case, Checker, Exercise, Finding, number_within
from zoo.chat_template import parse_tool_call


def _run_async(coroutine):
    """Run a coroutine to completion, also from inside a running event loop (a notebook's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# ----------------------------------------------------------------------------- tool_schema


def _lookup(name: str) -> str:
    """Look up a page.

    The page's text, or "unknown"."""
    return name


def _add(a: int, b: int = 0, scale: float = 1.0, verbose: bool = False) -> str:
    """Add two integers
    and scale the sum."""
    return str((a + b) * scale)


def _search(query: str, pages: list, filters: dict, limit: int) -> str:
    """Search."""
    return query


def _schema_cases(gen):
    yield Case(
        (_lookup,),
        "one string parameter",
        expected={
            "name": "_lookup",
            "description": "Look up a page.",
            "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        },
    )
    yield Case((_add,), "defaults are optional; a description over two lines")
    yield Case((_search,), "list, dict and int parameters, all required")


def _schema_required_all(fn):
    schema = ref.tool_schema(fn)
    schema["parameters"]["required"] = list(schema["parameters"]["properties"])
    return schema


def _schema_whole_docstring(fn):
    schema = ref.tool_schema(fn)
    schema["description"] = fn.__doc__
    return schema


def _schema_int_is_number(fn):
    schema = ref.tool_schema(fn)
    for prop in schema["parameters"]["properties"].values():
        prop["type"] = "number" if prop["type"] == "integer" else prop["type"]
    return schema


# ----------------------------------------------------------------------------- run_tool


def _fails(argument: str) -> str:
    raise ValueError(f"bad argument {argument}")


_TOOLS = {"lookup": {"Paris": "Paris is in France."}.get, "calc": str.upper, "fail": _fails}


def _run_tool_cases(gen):
    yield Case((("lookup", "Paris"), _TOOLS), "a known page", expected="Paris is in France.")
    yield Case((("lookup", "Rome"), _TOOLS), "the tool returns None: still text", expected="None")
    yield Case(
        (("search", "Paris"), _TOOLS), "unknown tool", expected="error: no tool named search; tools: calc, fail, lookup"
    )
    yield Case((("fail", "x"), _TOOLS), "the tool raises", expected="error: bad argument x")
    yield Case((("calc", "abc"), _TOOLS), "another tool")


def _run_tool_raises(call, tools):
    name, argument = call
    return str(tools[name](argument)) if name in tools else f"error: no tool named {name}"


def _run_tool_unsorted(call, tools):
    name, argument = call
    if name not in tools:
        return f"error: no tool named {name}; tools: {', '.join(tools)}"
    return ref.run_tool(call, tools)


def _run_tool_no_str(call, tools):
    name, argument = call
    if name not in tools:
        return ref.run_tool(call, tools)
    try:
        return tools[name](argument)
    except Exception as error:  # noqa: BLE001
        return f"error: {error}"


# ----------------------------------------------------------------------------- agent_loop


@dataclass(frozen=True)
class Script:
    """A scripted model: its reply is replies[number of assistant turns so far] (the last one repeated)."""

    replies: tuple[str, ...]

    def __call__(self, messages: list[dict]) -> str:
        turns = sum(message["role"] == "assistant" for message in messages)
        return self.replies[min(turns, len(self.replies) - 1)]


_WIKI = {
    "Ann": "Ann lives in Paris. Ann works at the farm.",
    "Paris": "Paris is in France.",
}
_WIKI_TOOLS = {"lookup": lambda name: _WIKI.get(name.strip(), "unknown"), "calculator": ref.calculator}
_QUESTION = [{"role": "user", "content": "Which country does Ann live in?"}]
_TWO_HOPS = Script(("<|call|> lookup Ann", "<|call|> lookup Paris", "Ann lives in France."))


def _loop_cases(gen):
    # Two calls then the answer: user, call, result, call, result, answer.
    yield Case(
        (_TWO_HOPS, _QUESTION, _WIKI_TOOLS, 4),
        "two lookups, then the answer",
        expected=ref.Episode(
            [
                *_QUESTION,
                {"role": "assistant", "content": "<|call|> lookup Ann"},
                {"role": "tool", "content": _WIKI["Ann"]},
                {"role": "assistant", "content": "<|call|> lookup Paris"},
                {"role": "tool", "content": _WIKI["Paris"]},
                {"role": "assistant", "content": "Ann lives in France."},
            ],
            "Ann lives in France.",
            2,
        ),
    )
    yield Case((Script(("Ann lives in Paris.",)), _QUESTION, _WIKI_TOOLS, 4), "answers at once, no call")
    yield Case((_TWO_HOPS, _QUESTION, _WIKI_TOOLS, 2), "the turn limit hits before the answer")
    yield Case((_TWO_HOPS, _QUESTION, _WIKI_TOOLS, 3), "exactly enough turns")
    yield Case((Script(("<|call|> lookup Ann",)), _QUESTION, _WIKI_TOOLS, 6), "calls forever")
    yield Case((Script(("<|call|> search Ann", "<|call|> calculator 2 plus 3", "5.")), _QUESTION, _WIKI_TOOLS, 4),
               "an unknown tool, then another tool")  # fmt: skip
    system = [{"role": "system", "content": "You are Sage."}, *_QUESTION]
    yield Case((_TWO_HOPS, system, _WIKI_TOOLS, 4), "a system prompt first")


def _loop_tool_as_user(reply_fn, messages, tools, max_turns=4):
    episode = ref.agent_loop(reply_fn, messages, tools, max_turns)
    return ref.Episode(
        [{**m, "role": "user"} if m["role"] == "tool" else m for m in episode.messages], episode.answer, episode.n_calls
    )


def _loop_drops_calls(reply_fn, messages, tools, max_turns=4):
    conversation, n_calls = list(messages), 0
    for _ in range(max_turns):
        reply = reply_fn(conversation)
        call = parse_tool_call(reply)
        if call is None:
            conversation.append({"role": "assistant", "content": reply})
            return ref.Episode(conversation, reply, n_calls)
        n_calls += 1
        conversation.append({"role": "tool", "content": ref.run_tool(call, tools)})
    return ref.Episode(conversation, None, n_calls)


def _loop_last_reply_is_answer(reply_fn, messages, tools, max_turns=4):
    episode = ref.agent_loop(reply_fn, messages, tools, max_turns)
    if episode.answer is None:
        last = [m["content"] for m in episode.messages if m["role"] == "assistant"][-1]
        return ref.Episode(episode.messages, last, episode.n_calls)
    return episode


def _loop_one_turn_short(reply_fn, messages, tools, max_turns=4):
    return ref.agent_loop(reply_fn, messages, tools, max_turns - 1)


def _loop_mutates(reply_fn, messages, tools, max_turns=4):
    episode = ref.agent_loop(reply_fn, messages, tools, max_turns)
    messages[:] = episode.messages
    return ref.Episode(messages, episode.answer, episode.n_calls)


# ----------------------------------------------------------------------------- lookup_tool (Inspect)

_PAGES = {"Ann": "Ann lives in Paris.", "Paris": "Paris is in France.", "Bo": ""}


def _run_lookup_tool(impl, case):
    wiki, names = case.args
    tool = impl(wiki)
    definition = ToolDef(tool)
    results = [_run_async(tool(name)) for name in names]
    return {"name": definition.name, "parameters": list(definition.parameters.properties), "results": results}


def _lookup_cases(gen):
    yield Case(
        (_PAGES, ["Ann", "Paris"]),
        "known pages",
        expected={"name": "lookup", "parameters": ["name"], "results": ["Ann lives in Paris.", "Paris is in France."]},
    )
    yield Case((_PAGES, ["Rome", " Ann ", "ann", "Bo"]), "unknown, padded, lower-case and empty pages")


def _tool_named(name):
    from inspect_ai.tool import tool

    @tool(name=name)
    def lookup_tool(wiki: dict[str, str]):
        async def execute(name: str) -> str:
            """Look up a page.

            Args:
                name: The name.
            """
            return wiki.get(name.strip(), "unknown")

        return execute

    return lookup_tool


def _tool_no_strip():
    from inspect_ai.tool import tool

    @tool(name="lookup")
    def lookup_tool(wiki: dict[str, str]):
        async def execute(name: str) -> str:
            """Look up a page.

            Args:
                name: The name.
            """
            return wiki.get(name, "unknown")

        return execute

    return lookup_tool


def _tool_none():
    from inspect_ai.tool import tool

    @tool(name="lookup")
    def lookup_tool(wiki: dict[str, str]):
        async def execute(name: str) -> str:
            """Look up a page.

            Args:
                name: The name.
            """
            return wiki.get(name.strip(), "")

        return execute

    return lookup_tool


# ----------------------------------------------------------------------------- tool_loop_solver (Inspect)


def _scripted_generate(script: Script):
    """A stand-in for Inspect's generate: the script's reply, as a tool call when it is one. With
    tool_calls="loop" it runs the tools itself and generates again, as Inspect's generate does."""
    from inspect_ai.model import execute_tools

    async def generate(state: TaskState, tool_calls: str = "loop", **kwargs) -> TaskState:
        for _ in range(8):  # Inspect's own loop ends at the sample's message limit; this stand-in at 8 rounds
            turns = [{"role": m.role, "content": m.text} for m in state.messages if m.role == "assistant"]
            reply = script(turns)
            call = parse_tool_call(reply)
            if call is None:
                message = ChatMessageAssistant(content=reply)
            else:
                message = ChatMessageAssistant(
                    content="",
                    tool_calls=[ToolCall(id=f"c{len(turns)}", function=call[0], arguments={"name": call[1]})],
                )
            state.messages.append(message)
            state.output = ModelOutput(model="script", choices=[ChatCompletionChoice(message=message)])
            if tool_calls != "loop" or call is None:
                return state
            result = await execute_tools(state.messages, state.tools)
            state.messages.extend(result.messages)
        return state

    return generate


def _run_solver(impl, case):
    script, max_turns = case.args
    state = TaskState(
        model="script/model",
        sample_id=0,
        epoch=0,
        input="Which country does Ann live in?",
        messages=[ChatMessageUser(content="Which country does Ann live in?")],
    )
    state.tools = [ref.lookup_tool(_WIKI)]
    solve = impl(max_turns)
    state = _run_async(solve(state, _scripted_generate(script)))
    rows = []
    for message in state.messages[1:]:
        calls = [f"{c.function}({c.arguments.get('name')})" for c in (getattr(message, "tool_calls", None) or [])]
        rows.append([message.role, message.text, *calls])
    return rows


def _solver_cases(gen):
    yield Case(
        (_TWO_HOPS, 4),
        "two lookups, then the answer",
        expected=[
            ["assistant", "", "lookup(Ann)"],
            ["tool", _WIKI["Ann"]],
            ["assistant", "", "lookup(Paris)"],
            ["tool", _WIKI["Paris"]],
            ["assistant", "Ann lives in France."],
        ],
    )
    yield Case((Script(("<|call|> lookup Ann",)), 3), "calls forever: the turn limit stops it")
    yield Case((_TWO_HOPS, 2), "the limit hits before the answer")
    yield Case((Script(("Ann lives in Paris.",)), 4), "answers at once")


def _solver_default_loop():
    from inspect_ai.solver import solver

    @solver
    def tool_loop_solver(max_turns: int = 4):
        async def solve(state, generate):
            return await generate(state)

        return solve

    return tool_loop_solver


def _solver_forgets_results():
    from inspect_ai.solver import solver

    @solver
    def tool_loop_solver(max_turns: int = 4):
        async def solve(state, generate):
            for _ in range(max_turns):
                state = await generate(state, tool_calls="none")
                if not state.output.message.tool_calls:
                    break
            return state

        return solve

    return tool_loop_solver


def _solver_one_short():
    inner = ref.tool_loop_solver

    def tool_loop_solver(max_turns: int = 4):
        return inner(max_turns - 1)

    return tool_loop_solver


# ----------------------------------------------------------------------------- the environment

# Three people in a ring of friends. From Ann, the page that says "is in Spain" is Madrid's:
# Ann -> Madrid (Ann's own city). From Cy, Ann's page (the friend) is linked before Lima? Cy's page
# mentions Lima first, then Ann, so "is in Spain" is two links away via Ann: [Cy, Ann, Madrid].
_RING = {
    "Ann": "Ann lives in Madrid. Ann works at the farm. Bo is a friend of Ann.",
    "Bo": "Bo lives in Lima. Bo works at the park. Cy is a friend of Bo.",
    "Cy": "Cy lives in Lima. Cy works at the cafe. Ann is a friend of Cy.",
    "Madrid": "Madrid is in Spain.",
    "Lima": "Lima is in Peru.",
}


def _path_cases(gen):
    yield Case((_RING, "Ann", "is in Spain"), "two pages", expected=["Ann", "Madrid"])
    yield Case((_RING, "Cy", "is in Spain"), "through the friend", expected=["Cy", "Ann", "Madrid"])
    yield Case((_RING, "Ann", "Ann works"), "the start is the goal", expected=["Ann"])
    # Ann links Bo before Dee; Bo leads to Dee in two more links. Depth-first goes Ann, Bo, Cy, Dee; the
    # shortest path is the direct link.
    branch = {"Ann": "Ann knows Bo. Ann knows Dee.", "Bo": "Bo knows Cy.", "Cy": "Cy knows Dee.", "Dee": "Dee wins."}
    yield Case((branch, "Ann", "wins"), "a long way round and a short one", expected=["Ann", "Dee"])
    yield Case((_RING, "Madrid", "is in Peru"), "no links out of a city page", expected=None)
    yield Case((_RING, "Zed", "is in Peru"), "a start that is no page", expected=None)
    yield Case((_RING, "Ann", "is in Peru"), "a tie, broken by link order")
    rng = random.Random(int(gen.initial_seed()))
    for _ in range(4):
        wiki = ref.linked_wiki(rng, n_people=5)
        person = rng.choice([name for name in wiki if "lives in" in wiki[name]])
        country = rng.choice(["Canada", "Egypt", "France", "Germany", "Italy", "Japan", "Peru", "Spain"])
        yield Case((wiki, person, f"is in {country}"), "a random linked wiki")


def _path_dfs(wiki, start, goal_text):
    def visit(page, seen):
        if goal_text in wiki[page]:
            return [page]
        for neighbour in ref.links(wiki[page], wiki):
            if neighbour not in seen:
                rest = visit(neighbour, seen | {neighbour})
                if rest:
                    return [page, *rest]
        return None

    return visit(start, {start}) if start in wiki else None


def _path_without_start(wiki, start, goal_text):
    path = ref.shortest_path(wiki, start, goal_text)
    return path[1:] if path else path


def _path_checks_goal_late(wiki, start, goal_text):
    """Tests each page for the goal only after moving to a neighbour: the start is never a goal."""
    if start not in wiki:
        return None
    for neighbour in ref.links(wiki[start], wiki):
        path = ref.shortest_path(wiki, neighbour, goal_text)
        if path:
            return [start, *path]
    return None


def _score_cases(gen):
    def episode(answer, n_calls):
        return ref.Episode([], answer, n_calls)

    yield Case(
        (episode("Ann lives in France.", 2), "France", 2),
        "optimal",
        expected={"success": True, "calls": 2, "efficiency": 1.0},
    )
    yield Case(
        (episode("Ann lives in france", 4), "France", 2),
        "case, and two calls wasted",
        expected={"success": True, "calls": 4, "efficiency": 0.5},
    )
    yield Case(
        (episode("Ann lives in Francetown.", 1), "France", 2),
        "not a whole word",
        expected={"success": False, "calls": 1, "efficiency": 0.0},
    )
    yield Case((episode(None, 4), "France", 2), "no answer", expected={"success": False, "calls": 4, "efficiency": 0.0})
    yield Case(
        (episode("France.", 0), "France", 2),
        "right without looking: efficiency capped at 1",
        expected={"success": True, "calls": 0, "efficiency": 1.0},
    )
    yield Case((episode("Bo lives in Peru.", 3), "Peru", 1), "one third")  # fmt: skip


def _score_substring(episode, target, optimal_calls):
    result = ref.score_episode(episode, target, optimal_calls)
    success = target.lower() in (episode.answer or "").lower()
    return {
        **result,
        "success": success,
        "efficiency": min(1.0, optimal_calls / max(episode.n_calls, 1)) if success else 0.0,
    }


def _score_uncapped(episode, target, optimal_calls):
    result = ref.score_episode(episode, target, optimal_calls)
    if result["success"]:
        result["efficiency"] = optimal_calls / max(episode.n_calls, 1)
    return result


def _score_case_sensitive(episode, target, optimal_calls):
    result = ref.score_episode(episode, target, optimal_calls)
    if target not in (episode.answer or ""):
        result = {**result, "success": False, "efficiency": 0.0}
    return result


def _calc_cases(gen):
    yield Case(("2 plus 3",), "words", expected="5")
    yield Case(("7-10",), "symbols without spaces", expected="-3")
    yield Case(("-4 times 6",), "a negative number", expected="-24")
    yield Case(("2 ** 10",), "a power is not allowed", expected="error: cannot read 2 ** 10")
    yield Case(("__import__('os')",), "code is never run", expected="error: cannot read __import__('os')")
    yield Case(("12 minus -5",), "minus a negative")
    g = random.Random(int(gen.initial_seed()))
    for _ in range(4):
        a, b = g.randint(-99, 99), g.randint(-99, 99)
        yield Case((f"{a} {g.choice(['+', '-', '*', 'plus', 'minus', 'times'])} {b}",), "random")


def _calc_eval(expression):
    words = {"plus": "+", "minus": "-", "times": "*"}
    text = " ".join(words.get(w, w) for w in expression.split())
    try:
        return str(eval(text, {"__builtins__": {}}))  # noqa: S307 - the realistic mistake
    except Exception:  # noqa: BLE001
        return f"error: cannot read {expression}"


def _calc_no_negatives(expression):
    if "-" in expression.replace(" - ", " "):
        return f"error: cannot read {expression}"
    return ref.calculator(expression)


# ----------------------------------------------------------------------------- statistics and elicitation


def _newcombe_cases(gen):
    # 5 of 10 against 5 of 10 at z = 2: each Wilson interval is 0.5 +- 2 sqrt(0.035) / 1.4 = 0.5 +- 0.267261,
    # so d = 0 and the half-width is sqrt(2) * 0.267261 = 0.377964.
    yield Case((5, 10, 5, 10, 2.0), "equal rates (by hand)", expected=(0.0, -0.377964, 0.377964))
    # 4 of 4 against 0 of 4 at z = 2: Wilson (0.5, 1) and (0, 0.5), d = 1,
    # low = 1 - sqrt(0.5^2 + 0.5^2) = 0.292893, high = 1 + sqrt(0 + 0) = 1.
    yield Case((4, 4, 0, 4, 2.0), "all against none (by hand)", expected=(1.0, 0.292893, 1.0))
    yield Case((0, 4, 4, 4, 2.0), "none against all")
    yield Case((30, 80, 20, 80), "two elicitation methods on 80 questions")
    yield Case((7, 20, 45, 90), "unequal sizes")
    for _ in range(3):
        n_a, n_b = (int(10 + 190 * float(torch.rand(1, generator=gen))) for _ in range(2))
        k_a, k_b = (int((n + 1) * float(torch.rand(1, generator=gen))) for n in (n_a, n_b))
        yield Case((k_a, n_a, k_b, n_b), "random")


def _newcombe_wald(k_a, n_a, k_b, n_b, z=1.96):
    p_a, p_b = k_a / n_a, k_b / n_b
    half = z * math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    return (p_a - p_b, p_a - p_b - half, p_a - p_b + half)


def _newcombe_bounds_subtracted(k_a, n_a, k_b, n_b, z=1.96):
    low_a, high_a = ref.wilson_interval(k_a, n_a, z)
    low_b, high_b = ref.wilson_interval(k_b, n_b, z)
    return (k_a / n_a - k_b / n_b, low_a - high_b, high_a - low_b)


def _newcombe_sides_crossed(k_a, n_a, k_b, n_b, z=1.96):
    p_a, p_b = k_a / n_a, k_b / n_b
    low_a, high_a = ref.wilson_interval(k_a, n_a, z)
    low_b, high_b = ref.wilson_interval(k_b, n_b, z)
    d = p_a - p_b
    return (
        d,
        d - math.sqrt((p_a - low_a) ** 2 + (p_b - low_b) ** 2),
        d + math.sqrt((high_a - p_a) ** 2 + (high_b - p_b) ** 2),
    )


def _episode(*contents, answer):
    messages = [{"role": "user", "content": "Which country does Ann live in?"}]
    for content in contents:
        role = "assistant" if content.startswith("<|call|>") else "tool"
        messages.append({"role": role, "content": content})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return ref.Episode(messages, answer, sum(c.startswith("<|call|>") for c in contents))


_GOOD = _episode(
    "<|call|> lookup Ann", _WIKI["Ann"], "<|call|> lookup Paris", _WIKI["Paris"], answer="Ann lives in France."
)


def _self_check_cases(gen):
    yield Case((_GOOD,), "grounded in the last page", expected=True)
    yield Case(
        (_episode("<|call|> lookup Ann", _WIKI["Ann"], answer="Ann lives in France."),),
        "not on the page read",
        expected=False,
    )
    yield Case((_episode("<|call|> lookup Ann", _WIKI["Ann"], "<|call|> lookup Ann", _WIKI["Ann"], answer="Ann lives in Paris."),),
               "a repeated last call", expected=False)  # fmt: skip
    yield Case((_episode("<|call|> lookup Ann", _WIKI["Ann"], "<|call|> lookup Rome", "unknown", answer="Ann lives in Paris."),),
               "an unknown page", expected=False)  # fmt: skip
    yield Case((_episode("<|call|> lookup Ann", _WIKI["Ann"], answer=None),), "no answer", expected=False)
    yield Case((_episode(answer="Ann lives in France."),), "no call at all", expected=False)
    yield Case(
        (_episode("<|call|> lookup Ann", _WIKI["Ann"], answer="Ann lives in Paris."),),
        "one hop, grounded",
        expected=True,
    )
    yield Case((_episode("<|call|> lookup Ann", _WIKI["Ann"], "<|call|> lookup Paris", _WIKI["Paris"], answer="Ann lives in Pari."),),
               "a word that is only part of one", expected=False)  # fmt: skip
    yield Case((_episode("<|call|> lookup Paris", _WIKI["Paris"], "<|call|> lookup Ann", _WIKI["Ann"], "<|call|> lookup Paris",
                         _WIKI["Paris"], answer="Ann lives in France."),), "an earlier call repeated last", expected=False)  # fmt: skip
    yield Case((_episode("<|call|> lookup Ann", _WIKI["Ann"], "<|call|> calculator 2 ** 3", "error: cannot read 2 ** 3",
                         "<|call|> lookup Paris", _WIKI["Paris"], answer="France."),), "a tool error", expected=False)  # fmt: skip


def _check_any_page(episode):
    results = [m["content"] for m in episode.messages if m["role"] == "tool"]
    if not episode.answer or not results:
        return False
    return episode.answer.rstrip(".").split()[-1] in " ".join(results)


def _check_ignores_repeats(episode):
    calls = [m for m in episode.messages if m["role"] == "assistant" and m["content"].startswith("<|call|>")]
    if len(calls) >= 2 and calls[-1] == calls[-2]:
        return ref.self_check(ref.Episode(episode.messages[:-3] + episode.messages[-1:], episode.answer, 1))
    return ref.self_check(episode)


def _check_substring(episode):
    results = [m["content"] for m in episode.messages if m["role"] == "tool"]
    calls = [m["content"] for m in episode.messages if m["role"] == "assistant" and parse_tool_call(m["content"])]
    if not episode.answer or not results or calls[-1] in calls[:-1]:
        return False
    if any(text == "unknown" or text.startswith("error") for text in results):
        return False
    return episode.answer.rstrip(".").split()[-1] in results[-1]


def _run_retry(impl, case):
    episodes, max_tries = case.args
    made = []

    def run_once(attempt: int):
        made.append(attempt)
        return copy.deepcopy(episodes[min(attempt, len(episodes) - 1)])

    episode, tries = impl(run_once, ref.self_check, max_tries)
    return {"answer": episode.answer, "tries": tries, "attempts": made}


_BAD = _episode("<|call|> lookup Ann", _WIKI["Ann"], answer="Ann lives in Spain.")
_WORSE = _episode("<|call|> lookup Ann", _WIKI["Ann"], answer=None)


def _retry_cases(gen):
    yield Case(
        ((_BAD, _GOOD), 3), "fails, then passes", expected={"answer": _GOOD.answer, "tries": 2, "attempts": [0, 1]}
    )
    yield Case(((_GOOD,), 3), "passes at once", expected={"answer": _GOOD.answer, "tries": 1, "attempts": [0]})
    yield Case(
        ((_BAD, _WORSE), 3),
        "never passes: the last run is kept",
        expected={"answer": None, "tries": 3, "attempts": [0, 1, 2]},
    )
    yield Case(((_BAD, _BAD, _GOOD), 2), "passes only after the limit")
    yield Case(((_WORSE, _BAD, _BAD, _GOOD), 5), "passes on the fourth")  # fmt: skip


def _retry_keeps_first(run_once, verify, max_tries=3):
    first = None
    for attempt in range(max_tries):
        episode = run_once(attempt)
        first = first or episode
        if verify(episode):
            return episode, attempt + 1
    return first, max_tries


def _retry_same_seed(run_once, verify, max_tries=3):
    for attempt in range(max_tries):
        episode = run_once(0)
        if verify(episode):
            return episode, attempt + 1
    return episode, max_tries


def _retry_counts_from_zero(run_once, verify, max_tries=3):
    for attempt in range(max_tries):
        episode = run_once(attempt)
        if verify(episode):
            return episode, attempt
    return episode, max_tries


def _run_agent_model(impl, case):
    name, env = case.args
    try:
        return {"model": impl(name, env)}
    except RuntimeError as error:
        message = str(error)
        return {"error": "RuntimeError", "names the offline model": ref.OFFLINE_MODEL in message,
                "names the key": any(key in message for key in ref.API_KEYS.values())}  # fmt: skip


def _agent_model_cases(gen):
    yield Case(("zoo/chat-mini", {}), "offline", expected={"model": "zoo/chat-mini"})
    yield Case(
        ("openai/gpt-4o-mini", {}),
        "no key",
        expected={"error": "RuntimeError", "names the offline model": True, "names the key": True},
    )
    yield Case(("openai/gpt-4o-mini", {"OPENAI_API_KEY": "sk-x"}), "a key", expected={"model": "openai/gpt-4o-mini"})
    yield Case(("anthropic/claude-3-5-haiku-latest", {"OPENAI_API_KEY": "sk-x"}), "the other provider's key")
    yield Case(("anthropic/claude-3-5-haiku-latest", {"ANTHROPIC_API_KEY": ""}), "an empty key")
    yield Case(("mockllm/model", {}), "a mock model")  # fmt: skip


def _model_no_check(name, env=None):
    return name


def _model_value_error(name, env=None):
    try:
        return ref.agent_model(name, env)
    except RuntimeError as error:
        raise ValueError(str(error)) from None


def _model_vague(name, env=None):
    try:
        return ref.agent_model(name, env)
    except RuntimeError:
        raise RuntimeError("no API key") from None


def _model_empty_key_ok(name, env=None):
    env = {k: v or "set" for k, v in (env or {}).items()}
    return ref.agent_model(name, env)


# ----------------------------------------------------------------------------- the finding


def _plain_country_rate() -> float:
    """The plain agent's success rate on the notebook's 80 linked-wiki country questions (seed 1,
    sampling seed 0), measured on chat-mini with the batched runner."""
    from zoo.chat_helpers import chat_model

    model = chat_model("chat-mini")
    questions = ref.wiki_questions(80, "country", seed=1)
    episodes = ref.run_agents(model, [ref.start_messages(q) for q in questions], [q.wiki for q in questions], seed=0)
    return sum(ref.score_episode(e, q.target, 2)["success"] for e, q in zip(episodes, questions)) / len(questions)


check = Checker(
    "3.4",
    [
        Exercise(
            ref.tool_schema,
            _schema_cases,
            "Read the signature with inspect.signature: each parameter's annotation and default. The description "
            "is the docstring's first paragraph on one line.",
            wrong={
                "every parameter marked required, defaults ignored": _schema_required_all,
                "the whole docstring as the description": _schema_whole_docstring,
                "int given JSON type number instead of integer": _schema_int_is_number,
            },
        ),
        Exercise(
            ref.run_tool,
            _run_tool_cases,
            "A tool call can go wrong two ways: a name that is no tool, and a tool that raises. Both must become "
            "text the model can read, never an exception that stops the loop.",
            wrong={
                "an unknown tool's error does not list the tools": _run_tool_raises,
                "the tools listed in dict order, not sorted": _run_tool_unsorted,
                "the tool's result returned as is, not as text": _run_tool_no_str,
            },
        ),
        Exercise(
            ref.agent_loop,
            _loop_cases,
            "Each turn appends the assistant's reply; only a call adds a tool message after it. Count replies, not "
            "messages, against max_turns, and work on a copy of the caller's list.",
            wrong={
                "tool results sent back as user messages": _loop_tool_as_user,
                "the call itself left out of the conversation": _loop_drops_calls,
                "the last call taken as the answer at the turn limit": _loop_last_reply_is_answer,
                "one reply fewer than max_turns": _loop_one_turn_short,
                "the caller's message list extended in place": _loop_mutates,
            },
        ),
        Exercise(
            ref.lookup_tool,
            _lookup_cases,
            "The tool is named lookup (that is the name chat-mini calls); its inner function needs a docstring "
            "with an Args section, and it returns text for every name.",
            run=_run_lookup_tool,
            wrong={
                "the tool named after the function, not lookup": _tool_named("lookup_tool"),
                "names not stripped of spaces": _tool_no_strip(),
                "an empty string for an unknown page": _tool_none(),
            },
        ),
        Exercise(
            ref.tool_loop_solver,
            _solver_cases,
            "generate(state, tool_calls=...) decides who runs the tools. Ask it not to, then run them yourself with "
            "execute_tools and add its messages to state.messages.",
            run=_run_solver,
            wrong={
                "generate's default tool_calls='loop', so max_turns is ignored": _solver_default_loop(),
                "the tool calls never executed": _solver_forgets_results(),
                "one reply fewer than max_turns": _solver_one_short(),
            },
        ),
        Exercise(
            ref.shortest_path,
            _path_cases,
            "Breadth-first search finds the fewest links; remember each page's parent to rebuild the path, and test "
            "the start page too.",
            wrong={
                "depth-first search (a path, not the shortest)": _path_dfs,
                "the start page left out of the path": _path_without_start,
                "the start page never tested as the goal": _path_checks_goal_late,
            },
        ),
        Exercise(
            ref.score_episode,
            _score_cases,
            "Match the target as a whole word, ignoring case; efficiency is optimal over actual calls, capped at 1, "
            "and 0 for a failure.",
            wrong={
                "a substring counted as the answer": _score_substring,
                "efficiency not capped at 1": _score_uncapped,
                "a case-sensitive match": _score_case_sensitive,
            },
        ),
        Exercise(
            ref.calculator,
            _calc_cases,
            "Parse the whole expression with one regular expression: two integers (maybe negative) and an operator.",
            wrong={
                "eval on the text (powers and code run)": _calc_eval,
                "negative numbers refused": _calc_no_negatives,
            },
        ),
        Exercise(
            ref.newcombe_difference,
            _newcombe_cases,
            "The lower end of a - b is reached when a is low and b is high: which side of each Wilson interval is that?",
            wrong={
                "the Wald interval for a difference (p plus or minus z standard errors)": _newcombe_wald,
                "one Wilson interval's ends subtracted from the other's": _newcombe_bounds_subtracted,
                "the same side of both intervals on each end": _newcombe_sides_crossed,
            },  # fmt: skip
            atol=1e-5,
        ),
        Exercise(
            ref.self_check,
            _self_check_cases,
            "List the calls and the tool messages first; each condition in the docstring rejects one kind of bad "
            "episode. Compare whole words, not substrings.",
            wrong={
                "the answer looked for on any page, not the last one read": _check_any_page,
                "a repeated call allowed": _check_ignores_repeats,
                "a substring accepted as a word": _check_substring,
            },
        ),
        Exercise(
            ref.retry_until_verified,
            _retry_cases,
            "Pass each try its own attempt number (so it can use a new seed), and keep the latest episode.",
            run=_run_retry,
            wrong={
                "the first episode kept when none passes": _retry_keeps_first,
                "every try run with attempt 0 (the same seed)": _retry_same_seed,
                "the number of runs counted from 0": _retry_counts_from_zero,
            },
        ),
        Exercise(
            ref.agent_model,
            _agent_model_cases,
            "Only the hosted providers need a key; an empty variable counts as missing. The message must tell an "
            "offline learner what to run instead.",
            run=_run_agent_model,
            wrong={
                "no check: the API call fails later, deep inside Inspect": _model_no_check,
                "a ValueError instead of RuntimeError": _model_value_error,
                "a message that names neither the variable nor zoo/chat-mini": _model_vague,
                "an empty key accepted": _model_empty_key_ok,
            },
        ),
        Finding(
            "plain_country_rate",
            _plain_country_rate,
            number_within(0.15, "plain agent's success rate on the linked-wiki country questions"),
            "Run the plain agent (the question alone, sampled at temperature 1) on the 80 questions and score each "
            "episode against its target with score_episode.",
            wrong={
                "measured on the wiki without friend links (the training format)": 1.0,
            },
        ),
    ],
)
