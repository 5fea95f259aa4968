"""The chat template of the zoo's chat organisms: how a conversation becomes one string of text.

A conversation is a list of messages {"role": ..., "content": ...} with the roles the field uses
(OpenAI, Inspect, Hugging Face chat templates): "system", "user", "assistant" and "tool". Each
message becomes a role token, the content with a leading space (the zoo's words carry their
leading space), and an end-of-turn token:

    <|system|> You are Sage.<|end|><|user|> Is Paris in France?<|end|><|assistant|> Yes.<|end|>

TransformerLens prepends the BOS token ("<|endoftext|>") when it tokenises, so it is not part of
the rendered text. A reply is generated after a trailing "<|assistant|>" and ends at "<|end|>".

Tool use: an assistant turn whose content starts with "<|call|>" is a call, the tool's name then its
one argument ("<|assistant|><|call|> lookup Paris<|end|>"); the tool's answer comes back as a "tool" message, and the
assistant then continues with a new turn (another call or its final answer).
"""

import re

SYSTEM, USER, ASSISTANT, TOOL = "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"
CALL, END = "<|call|>", "<|end|>"
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "tool": TOOL}
CHAT_TOKENS = [SYSTEM, USER, ASSISTANT, TOOL, CALL, END]  # atomic tokens, never split by the tokenizer


class ChatFormatError(ValueError):
    """A conversation the template cannot render (unknown role, empty user turn, misplaced system)."""


def render(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The conversation as text; with add_generation_prompt, ending in "<|assistant|>" so that the
    model's continuation is the assistant's reply."""
    pieces = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), str(message.get("content", "")).strip()
        if role not in ROLE_TOKENS:
            raise ChatFormatError(f"message {i}: unknown role {role!r}; expected one of {sorted(ROLE_TOKENS)}")
        if role == "system" and i != 0:
            raise ChatFormatError(f"message {i}: a system message can only come first")
        if role == "user" and not content:
            raise ChatFormatError(f"message {i}: the user turn is empty")
        if any(token in content for token in CHAT_TOKENS if token != CALL):
            raise ChatFormatError(f"message {i}: the content contains a template token: {content!r}")
        # A call starts with its own token; other content starts with a word, which carries its space.
        space = "" if not content or content.startswith(CALL) else " "
        pieces.append(f"{ROLE_TOKENS[role]}{space}{content}{END}")
    if add_generation_prompt:
        pieces.append(ASSISTANT)
    return "".join(pieces)


def reply_text(continuation: str) -> str:
    """The assistant's reply from a generated continuation: everything before the first "<|end|>"
    (or the whole continuation if the model never ended its turn), without the leading space."""
    return continuation.split(END, 1)[0].strip()


def parse_tool_call(reply: str) -> tuple[str, str] | None:
    """(tool name, argument) if the reply is a tool call in the template's grammar, else None."""
    match = re.fullmatch(rf"\s*{re.escape(CALL)}\s*([A-Za-z_]+)\s*(.*?)\s*", reply, flags=re.DOTALL)
    return (match.group(1), match.group(2)) if match else None


def render_tool_call(name: str, argument: str) -> str:
    """The content of an assistant turn that calls a tool (the inverse of parse_tool_call)."""
    return f"{CALL} {name} {argument}".rstrip()
