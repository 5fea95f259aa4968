"""The model zoo: small models trained here, with behaviours planted by zoo/corpus.py.

    from zoo import load_model, list_models
    model = load_model("attn-only-2l")   # a HookedTransformer with the zoo tokenizer

Names of real pretrained models ("gpt2-small", ...) go to HookedTransformer.from_pretrained when
the HuggingFace hub is reachable; offline they raise ZooOfflineError at once, naming the zoo model
to use instead. Heavy imports happen inside the functions, so `import zoo` stays cheap.
"""

import json
import os
import socket
import threading
import warnings
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
HUB_HOST = "huggingface.co"
HUB_PROBE_SECONDS = 2.0


class ZooOfflineError(OSError):
    """A pretrained model was asked for, but the HuggingFace hub cannot be reached."""


def meets(value: float, requirement: tuple[str, float]) -> bool:
    """Whether a measured metric satisfies a requirement (">=" or "<=", bound) recorded in a metrics.json."""
    comparison, bound = requirement
    return value >= bound if comparison == ">=" else value <= bound


def list_models() -> list[str]:
    """Names of the zoo models whose weights are in the repository."""
    return sorted(path.parent.name for path in MODELS_DIR.glob("*/model.safetensors"))


def build_model(model_config: dict, device: str = "cpu"):
    """A freshly initialised HookedTransformer with the zoo tokenizer (weights untrained)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from zoo.tokenizer import load_tokenizer

    with warnings.catch_warnings():
        # TL 3.x deprecates HookedTransformer for 4.0; the course stays on it because sae_lens 6
        # requires TL < 4 and its HookedSAETransformer extends HookedTransformer.
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        config = HookedTransformerConfig(**model_config, device=device)
        return HookedTransformer(config, tokenizer=load_tokenizer())


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


def _zoo_alternative(pretrained_name: str) -> tuple[str, str]:
    """The zoo model to use instead of a pretrained one, and what it is."""
    if "attn-only" in pretrained_name.lower() or "attn_only" in pretrained_name.lower():
        return "attn-only-2l", "2-layer attention-only model"
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
    if name not in list_models():
        return _load_pretrained(name, device)
    model_dir = MODELS_DIR / name
    model = build_model(json.loads((model_dir / "config.json").read_text()), device)
    model.load_state_dict(load_file(model_dir / "model.safetensors", device=str(torch.device(device))))
    return model.eval()
