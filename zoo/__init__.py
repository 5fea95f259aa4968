"""The model zoo: small models trained here, with behaviours planted by zoo/corpus.py.

    from zoo import load_model, list_models, model_info
    model = load_model("attn-only-2l")   # a HookedTransformer with the zoo tokenizer
    list_models(kind="chat")             # the chat organisms
    model_info("gpt2-mini").plants       # what its training data planted

Each model directory zoo/models/<name>/ holds a zoo.json that states the model's kind (KINDS) and
what its data planted. Directories named in the ZOO_MODEL_PATH environment variable (separated by
os.pathsep) are searched after zoo/models/, so a model saved elsewhere (a learner's fine-tune, a
test's throwaway model) loads by name too, in TransformerLens and in Inspect ("zoo/<name>").
A model directory may carry its own tokenizer/ folder; otherwise it reads zoo/tokenizer/.

Names of real pretrained models ("gpt2-small", ...) go to HookedTransformer.from_pretrained when
the HuggingFace hub is reachable; offline they raise ZooOfflineError at once, naming the zoo model
to use instead. Heavy imports happen inside the functions, so `import zoo` stays cheap.
"""

import json
import os
import socket
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
MODEL_PATH_VARIABLE = "ZOO_MODEL_PATH"
KINDS = {
    "base": "base language model: plain text in, next token out",
    "chat": "chat organism: conversations in the chat template of zoo/chat_template.py",
}
HUB_HOST = "huggingface.co"
HUB_PROBE_SECONDS = 2.0


class ZooOfflineError(OSError):
    """A pretrained model was asked for, but the HuggingFace hub cannot be reached."""


def meets(value: float, requirement: tuple[str, float]) -> bool:
    """Whether a measured metric satisfies a requirement (">=" or "<=", bound) recorded in a metrics.json."""
    comparison, bound = requirement
    return value >= bound if comparison == ">=" else value <= bound


@dataclass(frozen=True)
class ModelInfo:
    """What a zoo model is: its kind (a key of KINDS), what its data planted, where it lives."""

    name: str
    kind: str
    description: str
    directory: Path
    plants: dict[str, str] = field(default_factory=dict)  # behaviour -> how the generator planted it

    @property
    def metrics(self) -> dict:
        """The model's metrics.json (empty when it has none)."""
        path = self.directory / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}


def _search_path() -> list[Path]:
    extra = [Path(entry) for entry in os.environ.get(MODEL_PATH_VARIABLE, "").split(os.pathsep) if entry]
    return [MODELS_DIR, *extra]


def _model_dirs() -> dict[str, Path]:
    """Every model directory by name; zoo/models/ first, then ZOO_MODEL_PATH in order (first wins)."""
    found: dict[str, Path] = {}
    for root in _search_path():
        for weights in sorted(root.glob("*/model.safetensors")):
            found.setdefault(weights.parent.name, weights.parent)
    return found


def model_dir(name: str) -> Path:
    """The directory of zoo model `name` (zoo/models/<name>/, or one on ZOO_MODEL_PATH)."""
    directories = _model_dirs()
    if name not in directories:
        raise ValueError(f"{name!r} is not a zoo model. The zoo has: {', '.join(sorted(directories))}.")
    return directories[name]


def model_info(name: str) -> ModelInfo:
    """The registry entry of a zoo model, read from its zoo.json."""
    directory = model_dir(name)
    path = directory / "zoo.json"
    if not path.exists():
        raise ValueError(f"zoo model {name!r} has no {path} stating its kind ({', '.join(KINDS)}) and what it plants")
    entry = json.loads(path.read_text())
    if entry.get("kind") not in KINDS:
        raise ValueError(f"{path}: kind {entry.get('kind')!r} is not one of {', '.join(KINDS)}")
    return ModelInfo(name, entry["kind"], entry.get("description", ""), directory, dict(entry.get("plants", {})))


def list_models(kind: str | None = None) -> list[str]:
    """Names of the zoo models whose weights are in the repository (or on ZOO_MODEL_PATH); with
    `kind` ("base", "chat"), only the models of that kind."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; the zoo's kinds are {', '.join(KINDS)}")
    directories = _model_dirs()
    if kind is None:
        return sorted(directories)
    # A model still being written has no zoo.json yet: it has no kind, so it is left out.
    return sorted(
        name
        for name, directory in directories.items()
        if (directory / "zoo.json").exists() and model_info(name).kind == kind
    )


def build_model(model_config: dict, device: str = "cpu", tokenizer_dir: Path | None = None):
    """A freshly initialised HookedTransformer with the zoo tokenizer, or the tokenizer saved in
    `tokenizer_dir` (weights untrained)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    from zoo.tokenizer import load_tokenizer

    # TransformerLens reloads a tokenizer by its name_or_path, so it is loaded from a directory.
    tokenizer = (
        load_tokenizer() if tokenizer_dir is None else AutoTokenizer.from_pretrained(str(Path(tokenizer_dir).resolve()))
    )
    with warnings.catch_warnings():
        # TL 3.x deprecates HookedTransformer for 4.0; the course stays on it because sae_lens 6
        # requires TL < 4 and its HookedSAETransformer extends HookedTransformer.
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        config = HookedTransformerConfig(**model_config, device=device)
        return HookedTransformer(config, tokenizer=tokenizer)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _hub_reachable() -> bool:
    """False when HF_HUB_OFFLINE is set or huggingface.co:443 does not answer within ~2 s."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    reachable = []

    def probe():
        try:
            socket.create_connection((HUB_HOST, 443), timeout=HUB_PROBE_SECONDS).close()
            reachable.append(True)
        except OSError:
            pass

    # A thread bounds the DNS lookup too, which the socket timeout does not cover.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_SECONDS + 0.5)
    return bool(reachable)


CHAT_NAME_MARKS = ("instruct", "chat", "-it", "qwen3")  # chat and reasoning models (Qwen3 thinks aloud)


def _zoo_alternative(pretrained_name: str) -> tuple[str, str]:
    """The zoo model to use instead of a pretrained one, and what it is."""
    name = pretrained_name.lower()
    if "attn-only" in name or "attn_only" in name:
        return "attn-only-2l", "2-layer attention-only model"
    if any(mark in name for mark in CHAT_NAME_MARKS):
        return "chat-mini", "chat organism"
    return "gpt2-mini", "GPT-2-architecture model"


def _load_pretrained(name: str, device: str):
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import make_model_alias_map

    if name.lower() not in make_model_alias_map():
        raise ValueError(f"Unknown model {name!r}. The zoo has: {', '.join(list_models())}.")
    if not _hub_reachable():
        alternative, description = _zoo_alternative(name)
        raise ZooOfflineError(
            f"{name} needs the HuggingFace hub, which is unreachable. Offline, use "
            f"load_model({alternative!r}), the zoo's {description}."
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer.from_pretrained is deprecated")
        return HookedTransformer.from_pretrained(name, device=device)


def load_model(name: str, device: str | None = None):
    """A zoo model by name, ready with its tokenizer, in eval mode on `device` (default: cuda if
    available, else cpu). Other names are looked up among TransformerLens' pretrained models."""
    import torch
    from safetensors.torch import load_file

    device = device or _default_device()
    directory = _model_dirs().get(name)
    if directory is None:
        return _load_pretrained(name, device)
    tokenizer_dir = directory / "tokenizer"
    model = build_model(
        json.loads((directory / "config.json").read_text()), device, tokenizer_dir if tokenizer_dir.is_dir() else None
    )
    model.load_state_dict(load_file(directory / "model.safetensors", device=str(torch.device(device))))
    return model.eval()
