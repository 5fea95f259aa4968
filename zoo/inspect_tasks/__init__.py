"""Small Inspect tasks on the zoo's story world, for the plumbing tests and as examples for chapters 3-4.

    inspect eval zoo/inspect_tasks/wiki.py --model zoo/chat-mini       # from the repository root
    inspect eval zoo/inspect_tasks/city_country.py@city_country --model zoo/chat-mini -T template="Which country is {city} in?"

city_country.py: which country a city is in, answered from memory (city_country) or with a `map` tool
(city_lookup, the tool of tests/zoo/tiny_chat.py's throwaway organism). wiki.py: questions about people
answered with the `lookup` tool on a wiki drawn per sample, as chat-mini was trained to.

They run unchanged on any Inspect model: `zoo/<name>` offline, `mockllm/model` with scripted outputs
(tests/test_inspect_offline.py), or a hosted model online.
"""
