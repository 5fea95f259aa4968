# %% [markdown]
# # 1.1 Transformer from scratch
#
# Interpretability asks *how* a model computes what it computes, and that question only makes sense
# once you know, line by line, what the model is. In this section you write a GPT-2-style
# transformer yourself, load the weights of a trained model into it, and check that your code
# produces the very same numbers. Then you train a small one, and generate text from it.
#
# Everything runs on the course's **model zoo** (`zoo/`): small models trained offline on a story
# corpus whose patterns the course planted (names, places, songs sung twice, years, facts about
# cities). The model you rebuild is `gpt2-mini`: GPT-2's architecture with 4 layers, a residual
# stream of width 128, 4 attention heads per layer, MLPs of width 512 and a context of 64 tokens.
# It is a TransformerLens `HookedTransformer`, and chapter 1 studies it with TransformerLens'
# tools; here you find out what those tools are looking at.
#
# **What you will build**
#
# 1. The pieces: `LayerNorm`, `Embed`, `PosEmbed`, `Attention` (with the causal mask), `gelu_new`,
#    `MLP`, `TransformerBlock`, `Unembed`, and the whole `DemoTransformer`. Each is checked by
#    loading the zoo model's weights into it and comparing with TransformerLens on real text.
# 2. The language-modelling loss, and a short training run on the story corpus.
# 3. Sampling: greedy decoding, temperature, a frequency penalty, top-k and top-p, then beam search.
# 4. A key-value cache, which makes generation cheaper and must not change a single token.
#
# **Prerequisites**: chapter 0 (tensors, einops, `nn.Module`, training loops).

# %%
import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm

from course.plot import line
from solutions.chapter1_transformer_interp.transformer_from_scratch import Config, KVCache, load_zoo_weights
from tests.checks.chapter1_transformer_interp.transformer_from_scratch import check
from zoo import corpus, load_model

# Tiny models run fastest on one thread; several threads mostly wait on each other.
torch.set_num_threads(1)
torch.manual_seed(0)

# %% [markdown]
# ## What a transformer does
#
# A language model reads a sequence of **tokens** and, at every position, predicts the next one.
# The zoo's tokenizer is word level and shaped like GPT-2's: a word carries its leading space
# (`" Mary"`), punctuation is its own token, and every sequence starts with the `<|endoftext|>`
# token, which TransformerLens prepends.

# %%
reference_model = load_model("gpt2-mini", device="cpu")
reference_model.eval()
text = corpus.story_documents("validation", 1, 30)[0]
print(text)
print(reference_model.to_str_tokens(text)[:16])

# %% [markdown]
# The model maps token ids `[batch, pos]` to **logits** `[batch, pos, d_vocab]`: at each position,
# one unnormalised score per vocabulary word for what comes next. Inside, the computation is:
#
# 1. **Embeddings.** Each token id picks a row of `W_E` and each position a row of `W_pos`; their
#    sum is the start of the **residual stream**, one vector of width `d_model` per position.
# 2. **Blocks.** Each of `n_layers` blocks reads the residual stream and *adds* to it: first an
#    attention layer (the only place where positions exchange information), then an MLP (which
#    works on each position separately). Each reads a LayerNorm'd copy of the stream.
# 3. **Unembedding.** A final LayerNorm, then `W_U` maps each residual vector to logits.
#
# Training minimises the cross-entropy of the true next token under the softmax of the logits.
#
# The reference model's config and its state dict show the names and shapes you will reproduce.
# `Config` (given) holds the same fields; `Config.from_zoo("gpt2-mini")` reads the zoo's
# `config.json`.

# %%
cfg = Config.from_zoo("gpt2-mini")
print(cfg)
for name, param in list(reference_model.state_dict().items())[:22]:
    print(f"{name:28} {tuple(param.shape)}")

# %% [markdown]
# Those names are the contract: name your parameters exactly like TransformerLens (`W_E`, `W_pos`,
# `w` and `b` in a LayerNorm, `W_Q` of shape `[n_heads, d_model, d_head]` ...) and the zoo weights
# load into your modules with `load_zoo_weights(module, reference_model.state_dict(), prefix)`. The
# checks do exactly that (the attention's `mask` and `IGNORE` buffers are TransformerLens' own and
# are skipped). We cache the reference model's activations on a few story documents to test with.

# %%
docs = corpus.story_documents("validation", 4, 40)
tokens = torch.stack([reference_model.to_tokens(doc)[0, :32] for doc in docs])
reference_logits, reference_cache = reference_model.run_with_cache(tokens)
print(tokens.shape, reference_logits.shape)

# %% [markdown]
# ## LayerNorm
#
# LayerNorm rescales each residual vector $x \in \mathbb{R}^{d_\text{model}}$ to mean 0 and
# variance 1, then applies a learned elementwise scale $w$ and shift $b$:
#
# $$\text{LN}(x) = \frac{x - \bar{x}}{\sqrt{\operatorname{Var}(x) + \varepsilon}} \odot w + b,$$
#
# with the *biased* variance (divide by $d_\text{model}$) and $\varepsilon$ = `cfg.layer_norm_eps`.
# Parameters: `self.w` (ones) and `self.b` (zeros), each of shape `[d_model]`; keep `cfg` as
# `self.cfg`.


# %% [exercise] LayerNorm difficulty=1 importance=4 minutes=10
class LayerNorm(nn.Module):
    def __init__(self, cfg: Config):
        """self.cfg = cfg; parameters w (ones) and b (zeros), shape [d_model]."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, residual: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """Normalise over d_model, then scale by w and shift by b."""
        raise NotImplementedError()


# %% [hint]
# `residual.var(dim=-1, unbiased=False)` is the biased variance; or compute
# `centred.pow(2).mean(-1, keepdim=True)`. Keep the dimension so the division broadcasts.

# %% [markdown]
# ## Embeddings
#
# `Embed` holds `W_E` of shape `[d_vocab, d_model]` and returns row `tokens[b, p]` for each
# position. `PosEmbed` holds `W_pos` of shape `[n_ctx, d_model]` and returns row `p` at position
# `p`, the same for every sequence in the batch. Initialise both with a normal distribution of
# standard deviation `cfg.init_range`.


# %% [exercise] Embed difficulty=1 importance=3 minutes=5
class Embed(nn.Module):
    def __init__(self, cfg: Config):
        """W_E: [d_vocab, d_model], normal with std cfg.init_range."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# Indexing a `[d_vocab, d_model]` tensor with a `[batch, pos]` integer tensor gives `[batch, pos, d_model]`.


# %% [exercise] PosEmbed difficulty=1 importance=3 minutes=5
class PosEmbed(nn.Module):
    def __init__(self, cfg: Config):
        """W_pos: [n_ctx, d_model], normal with std cfg.init_range."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# `einops.repeat(self.W_pos[:seq_len], "pos d -> batch pos d", batch=batch)`.

# %% [markdown]
# ## Attention
#
# Each head $h$ computes, from the normalised residual stream $x$ (shape `[batch, pos, d_model]`),
# queries, keys and values $q = x W_Q^h + b_Q^h$, $k = x W_K^h + b_K^h$, $v = x W_V^h + b_V^h$
# (each `[batch, pos, d_head]`). The score of query position $i$ for key position $j$ is
# $q_i \cdot k_j / \sqrt{d_\text{head}}$. A language model must not see the future, so the
# **causal mask** sets the scores with $j > i$ to $-\infty$ (the buffer `self.IGNORE`) before a
# softmax over $j$ turns them into the **attention pattern**. Each head's output is
# $z_i = \sum_j \text{pattern}_{ij} v_j$, and the layer returns
# $\sum_h z^h W_O^h + b_O$.
#
# Parameters, as in TransformerLens: `W_Q`, `W_K`, `W_V` of shape `[n_heads, d_model, d_head]`,
# `W_O` of shape `[n_heads, d_head, d_model]`, biases `b_Q`, `b_K`, `b_V` `[n_heads, d_head]` and
# `b_O` `[d_model]` (zeros); weights normal with std `cfg.init_range`. Register `IGNORE` with
# `persistent=False` so it stays out of the state dict, and keep `self.cfg`.


# %% [exercise] Attention difficulty=3 importance=5 minutes=25
class Attention(nn.Module):
    IGNORE: Tensor

    def __init__(self, cfg: Config):
        """self.cfg; W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O; buffer IGNORE = -inf (persistent=False)."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, normalized_resid_pre: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """Causal multi-head self-attention."""
        raise NotImplementedError()


# %% [hint]
# `einops.einsum(x, self.W_Q, "b p d, h d e -> b p h e")` gives every head's queries at once;
# `"b q h e, b k h e -> b h q k"` the scores; `"b h q k, b k h e -> b q h e"` the weighted values.

# %% [hint]
# The mask: `torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)` is True above the
# diagonal, where the key comes after the query; `scores.masked_fill(mask, self.IGNORE)`.

# %% [markdown]
# ## MLP
#
# The MLP is $\text{GELU}(x W_\text{in} + b_\text{in}) W_\text{out} + b_\text{out}$, applied at each
# position, with `W_in` `[d_model, d_mlp]` and `W_out` `[d_mlp, d_model]`. GPT-2 (and the zoo's
# `act_fn: gelu_new`) uses the tanh approximation of GELU:
#
# $$\text{gelu\_new}(x) = \tfrac{1}{2}x\left(1 + \tanh\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right).$$


# %% [exercise] gelu_new difficulty=1 importance=2 minutes=5
def gelu_new(x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """GPT-2's tanh approximation of GELU, elementwise."""
    raise NotImplementedError()


# %% [hint]
# Write the formula with `torch.tanh` and `math.sqrt(2 / math.pi)`. (`torch.nn.functional.gelu`
# without `approximate="tanh"` is the exact GELU, which differs slightly.)


# %% [exercise] MLP difficulty=1 importance=4 minutes=10
class MLP(nn.Module):
    def __init__(self, cfg: Config):
        """W_in [d_model, d_mlp], b_in [d_mlp], W_out [d_mlp, d_model], b_out [d_model]."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, normalized_resid_mid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# `gelu_new(x @ self.W_in + self.b_in) @ self.W_out + self.b_out`.

# %% [markdown]
# ## The block, the unembedding and the whole model
#
# A block is **pre-norm**: each sublayer reads a LayerNorm'd copy of the stream and adds its output
# back. Submodules: `ln1`, `attn`, `ln2`, `mlp` (those names make the state dict keys
# `blocks.0.ln1.w` ...).
#
# $$\text{resid\_mid} = \text{resid\_pre} + \text{attn}(\text{ln1}(\text{resid\_pre})), \qquad
# \text{resid\_post} = \text{resid\_mid} + \text{mlp}(\text{ln2}(\text{resid\_mid})).$$


# %% [exercise] TransformerBlock difficulty=1 importance=5 minutes=10
class TransformerBlock(nn.Module):
    def __init__(self, cfg: Config):
        """Submodules ln1, attn, ln2, mlp."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, resid_pre: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# Two lines: add the attention output to the stream, then add the MLP output to the result.

# %% [markdown]
# `Unembed` holds `W_U` `[d_model, d_vocab]` (normal, std `cfg.init_range`) and `b_U` `[d_vocab]`
# (zeros). `DemoTransformer` puts everything together with submodules `embed`, `pos_embed`,
# `blocks` (an `nn.ModuleList` of `n_layers` blocks), `ln_final` and `unembed`; keep `self.cfg`.


# %% [exercise] Unembed difficulty=1 importance=3 minutes=5
class Unembed(nn.Module):
    def __init__(self, cfg: Config):
        """W_U [d_model, d_vocab], b_U [d_vocab]."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, normalized_resid_final: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        raise NotImplementedError()


# %% [hint]
# `normalized_resid_final @ self.W_U + self.b_U`.


# %% [exercise] DemoTransformer difficulty=2 importance=5 minutes=10
class DemoTransformer(nn.Module):
    def __init__(self, cfg: Config):
        """self.cfg; submodules embed, pos_embed, blocks (nn.ModuleList), ln_final, unembed."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        raise NotImplementedError()


# %% [hint]
# `residual = self.embed(tokens) + self.pos_embed(tokens)`, then `residual = block(residual)` for
# each block, then `self.unembed(self.ln_final(residual))`.

# %% [markdown]
# The check compared your model with TransformerLens on the zoo weights. See it for yourself: load
# the whole `gpt2-mini` state dict into your model and compare logits on the story documents.

# %%
demo_model = DemoTransformer(cfg)
load_zoo_weights(demo_model, reference_model.state_dict())
demo_model.eval()
with torch.no_grad():
    demo_logits = demo_model(tokens)
largest_gap = (demo_logits - reference_logits).abs().max().item()
print(f"largest difference from the zoo model's logits: {largest_gap:.2e}")
assert largest_gap < 1e-4

# %% [markdown]
# Your model also predicts like the zoo model. Here is the probability it gives the true next token
# at each position of the first document. Words that the sentence template fixes (`" went"`,
# `" to"`, `" the"` after "When Julia and James") get a probability above 0.9, while a name the
# story has not mentioned yet is a guess among the corpus's fifty names.

# %%
probs = demo_logits.softmax(-1)[0, :-1].gather(-1, tokens[0, 1:, None])[:, 0]
str_tokens = reference_model.to_str_tokens(tokens[0])
line({"p(next token)": probs.tolist()}, title="Probability of the true next token", xaxis="position").show()
for token, p in list(zip(str_tokens[1:], probs.tolist()))[:12]:
    print(f"{token!r:14} {p:.2f}")
template_positions = [i for i, token in enumerate(str_tokens[1:9]) if token in (" went", " to", " the")]
assert len(template_positions) == 3 and probs[template_positions].min() > 0.9

# %% [markdown]
# ## The loss
#
# The logits at position $i$ predict token $i+1$, so the loss of a batch is the mean, over every
# position but the last, of $-\log \text{softmax}(\text{logits}_i)[\text{token}_{i+1}]$.


# %% [exercise] next_token_loss difficulty=1 importance=5 minutes=10
def next_token_loss(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
    """Mean cross-entropy of predicting tokens[:, i + 1] from logits[:, i]."""
    raise NotImplementedError()


# %% [hint]
# `logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])` picks the log-probabilities of
# the true next tokens.

# %%
demo_loss = next_token_loss(demo_logits, tokens).item()
reference_loss = reference_model(tokens, return_type="loss").item()
print(
    f"your loss {demo_loss:.4f}, TransformerLens' loss {reference_loss:.4f}, uniform guess {math.log(cfg.d_vocab):.4f}"
)
assert abs(demo_loss - reference_loss) < 1e-4

# %% [markdown]
# ## Training a small transformer
#
# Now train one from scratch on the story corpus: a 2-layer model with `d_model` 48, on the
# training split cut into 24-token documents, with AdamW. Two hundred steps are quick on a CPU and
# already bring the loss from $\log(d_\text{vocab}) \approx 6.4$ (a uniform guess) to below 2.2
# (we see about 1.6). The zoo model, bigger and trained much longer, scores about 1.4 on the
# documents above.

# %%
train_docs = corpus.story_documents("train", 400, 30)
train_tokens = torch.stack([reference_model.to_tokens(doc)[0, :24] for doc in train_docs])
small_cfg = Config(d_model=48, n_layers=2, n_heads=3, d_head=16, d_mlp=192, n_ctx=24, d_vocab=cfg.d_vocab)
print(small_cfg)


def train(
    model: nn.Module, data: Int[Tensor, "n pos"], steps: int, batch_size: int, lr: float, seed: int = 0
) -> list[float]:
    """AdamW on random batches of data; returns the loss of every step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc="training"):
        batch = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        loss = next_token_loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


torch.manual_seed(0)
small_model = DemoTransformer(small_cfg)
losses = train(small_model, train_tokens, steps=200, batch_size=16, lr=5e-3)
line({"training loss": losses}, title="Training a 2-layer transformer on the story corpus", yaxis="loss").show()
first, last = losses[0], sum(losses[-20:]) / 20
print(f"first loss {first:.2f}, mean of the last 20 {last:.2f}")
assert first > 6.0 and last < 2.2
assert 1.3 < reference_loss < 1.6

# %% [markdown]
# ## Sampling
#
# A model gives a distribution over the next token; a **decoding strategy** turns it into text.
# The simplest, **greedy** decoding, always takes the most likely token. We generate from the zoo
# weights in your `demo_model`.


# %%
def generate(model: nn.Module, prompt: str, n_new: int, pick_next) -> str:
    """Append n_new tokens to the prompt, each chosen by pick_next(logits [1, d_vocab], tokens [1, pos])."""
    tokens = reference_model.to_tokens(prompt)
    with torch.no_grad():
        for _ in range(n_new):
            logits = model(tokens[:, -model.cfg.n_ctx :])[:, -1]
            tokens = torch.cat([tokens, pick_next(logits, tokens)[:, None]], dim=1)
    return reference_model.to_string(tokens[0, 1:])


greedy = lambda logits, tokens: logits.argmax(dim=-1)  # noqa: E731
prompt = "When Mary and John went to the store,"
print(generate(demo_model, prompt, 20, greedy))

# %% [markdown]
# Greedy text is repetitive and always the same. **Sampling** draws from
# $\text{softmax}(\text{logits} / T)$ instead: a **temperature** $T < 1$ sharpens the distribution
# towards greedy, $T > 1$ flattens it. Three common adjustments to the logits before sampling:
#
# - a **frequency penalty** subtracts $\alpha \cdot (\text{number of times the token already
#   appears})$, discouraging repeats;
# - **top-k** keeps only the $k$ most likely tokens;
# - **top-p** (nucleus sampling, Holtzman et al. 2019, *The Curious Case of Neural Text
#   Degeneration*) keeps the smallest set of most likely tokens whose probabilities add up to at
#   least $p$.
#
# Each returns new logits (removed tokens get $-\infty$), and does not modify its input.


# %% [exercise] apply_frequency_penalty difficulty=1 importance=2 minutes=10
def apply_frequency_penalty(
    logits: Float[Tensor, "batch d_vocab"], tokens: Int[Tensor, "batch pos"], penalty: float
) -> Float[Tensor, "batch d_vocab"]:
    """Subtract penalty times the number of times each token already occurs in its sequence."""
    raise NotImplementedError()


# %% [hint]
# `torch.zeros_like(logits).scatter_add(1, tokens, torch.ones_like(tokens, dtype=logits.dtype))`
# counts each row's tokens.


# %% [exercise] top_k_logits difficulty=1 importance=3 minutes=5
def top_k_logits(logits: Float[Tensor, "batch d_vocab"], k: int) -> Float[Tensor, "batch d_vocab"]:
    """Keep the k largest logits of each row; set the rest to -inf."""
    raise NotImplementedError()


# %% [hint]
# `logits.topk(k, dim=-1).values[:, -1:]` is each row's k-th largest logit.


# %% [exercise] top_p_logits difficulty=2 importance=3 minutes=15
def top_p_logits(logits: Float[Tensor, "batch d_vocab"], top_p: float) -> Float[Tensor, "batch d_vocab"]:
    """Keep the most probable tokens of each row, in order, until their probabilities add up to at
    least top_p (always at least one); set the rest to -inf."""
    raise NotImplementedError()


# %% [hint]
# Sort descending, then a token is kept when the probability mass *before* it (cumsum minus its own
# probability) is below `top_p`. `torch.zeros_like(keep).scatter(1, order, keep)` undoes the sort.

# %% [markdown]
# Put together, with a seeded generator so the samples are reproducible:


# %%
def sampler(
    temperature: float = 1.0,
    frequency_penalty: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
):
    """A pick_next function that samples with the given settings."""
    generator = torch.Generator().manual_seed(seed)

    def pick_next(logits, tokens):
        logits = apply_frequency_penalty(logits / temperature, tokens, frequency_penalty)
        if top_k is not None:
            logits = top_k_logits(logits, top_k)
        if top_p is not None:
            logits = top_p_logits(logits, top_p)
        return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]

    return pick_next


for name, settings in {
    "T=1": {},
    "T=0.5": {"temperature": 0.5},
    "T=2": {"temperature": 2.0},
    "penalty 1": {"frequency_penalty": 1.0},
    "top-k 5": {"top_k": 5},
    "top-p 0.9": {"top_p": 0.9},
}.items():
    print(f"{name:10} {generate(demo_model, prompt, 20, sampler(**settings))}")

# %% [markdown]
# Temperature near 0 is greedy decoding, which we can assert:

# %%
assert generate(demo_model, prompt, 20, sampler(temperature=1e-4)) == generate(demo_model, prompt, 20, greedy)

# %% [markdown]
# ### Beam search
#
# Greedy decoding picks the best *next* token, not the best *sequence*. **Beam search** keeps the
# `n_beams` most likely partial sequences (by summed log-probability); at each step it extends each
# by its most likely continuations and keeps the best `n_beams` of all of them. With one beam it is
# greedy decoding. It is given here rather than set as an exercise; read it and check the claim.


# %%
def beam_search(model: nn.Module, prompt: str, n_new: int, n_beams: int) -> tuple[list[str], Tensor]:
    """The n_beams most likely continuations of n_new tokens, best first, with their log-probabilities."""
    beams = reference_model.to_tokens(prompt)
    scores = torch.zeros(1)
    with torch.no_grad():
        for _ in range(n_new):
            log_probs = model(beams)[:, -1].log_softmax(-1)
            candidates = (scores[:, None] + log_probs).flatten()  # [beam * d_vocab]
            scores, flat = candidates.topk(n_beams)
            beam, token = flat // log_probs.shape[-1], flat % log_probs.shape[-1]
            beams = torch.cat([beams[beam], token[:, None]], dim=1)
    return [reference_model.to_string(b[1:]) for b in beams], scores


texts, beam_scores = beam_search(demo_model, prompt, 12, n_beams=4)
for t, s in zip(texts, beam_scores.tolist()):
    print(f"{s:7.3f}  {t}")
assert beam_search(demo_model, prompt, 12, n_beams=1)[0][0] == generate(demo_model, prompt, 12, greedy)

# %% [markdown]
# Beam search's best sequence is at least as likely as greedy's (here, over 12 tokens):


# %%
def sequence_log_prob(model: nn.Module, text: str, n_prompt_tokens: int) -> float:
    """Summed log-probability of the tokens of text after its first n_prompt_tokens."""
    tokens = reference_model.to_tokens(text)
    with torch.no_grad():
        log_probs = model(tokens)[0, :-1].log_softmax(-1).gather(-1, tokens[0, 1:, None])[:, 0]
    return log_probs[n_prompt_tokens - 1 :].sum().item()


n_prompt = reference_model.to_tokens(prompt).shape[1]
greedy_text = generate(demo_model, prompt, 12, greedy)
print(f"greedy {sequence_log_prob(demo_model, greedy_text, n_prompt):.3f}, beam {beam_scores[0].item():.3f}")
assert beam_scores[0].item() >= sequence_log_prob(demo_model, greedy_text, n_prompt) - 1e-4

# %% [markdown]
# ## A key-value cache
#
# Generating $n$ tokens as above reruns the model on the whole prefix at every step. But the
# causal mask means that the keys and values at earlier positions never change when tokens are
# appended. A **KV cache** stores them: each step then runs the model on the new token only, whose
# query attends to the cached keys and values plus its own.
#
# Write `cached_forward(model, tokens, cache)`. `cache` is `None` (no earlier tokens) or a list
# with one `(keys, values)` pair per layer, each `[batch, earlier_pos, n_heads, d_head]`. Return the
# logits for the new tokens and the cache extended by them. Use your model's submodules and
# parameters (`model.embed`, `model.pos_embed.W_pos`, `block.ln1`, `block.attn.W_Q`, `block.mlp`
# ...). Two things change from `Attention.forward`: the new tokens' positions start at the cache's
# length, and the causal mask compares *absolute* positions (query $p$ sees keys $\le p$).


# %% [exercise] cached_forward difficulty=3 importance=3 minutes=30
def cached_forward(
    model: DemoTransformer, tokens: Int[Tensor, "batch new_pos"], cache: KVCache | None
) -> tuple[Float[Tensor, "batch new_pos d_vocab"], KVCache]:
    """Logits for the new tokens, which continue the sequences cached in `cache`, and the extended cache."""
    raise NotImplementedError()


# %% [hint]
# `offset = 0 if cache is None else cache[0][0].shape[1]`; the positional embedding of the new
# tokens is `model.pos_embed.W_pos[offset:offset + n_new]`. Concatenate cached and new keys along
# dim 1 before computing scores.

# %% [hint]
# Mask: `query_pos = torch.arange(offset, offset + n_new)[:, None]`, `key_pos = torch.arange(n_keys)[None]`,
# masked where `key_pos > query_pos`.

# %% [markdown]
# Now generate greedily with the cache (the prompt in one call, then one token per call) and
# without it. The tokens must be identical.


# %%
def generate_cached(model: DemoTransformer, prompt: str, n_new: int) -> str:
    """Greedy decoding with a KV cache."""
    tokens = reference_model.to_tokens(prompt)
    with torch.no_grad():
        logits, cache = cached_forward(model, tokens, None)
        for _ in range(n_new):
            next_token = logits[:, -1].argmax(dim=-1)[:, None]
            tokens = torch.cat([tokens, next_token], dim=1)
            logits, cache = cached_forward(model, next_token, cache)
    return reference_model.to_string(tokens[0, 1:])


for start in [prompt, "The war lasted from 17", "Paris is in"]:
    cached, uncached = generate_cached(demo_model, start, 30), generate(demo_model, start, 30, greedy)
    print(cached)
    assert cached == uncached
print("cached generation equals uncached generation, token for token")

# %% [markdown]
# ## Summary
#
# - A transformer is embeddings into a residual stream, blocks that each *add* an attention output
#   and an MLP output to it, and an unembedding. Attention is the only place where positions
#   exchange information, and the causal mask keeps it looking backwards.
# - With TransformerLens' parameter names, the zoo `gpt2-mini`'s weights load into your
#   `DemoTransformer`, whose logits match the zoo model's to within $10^{-4}$, as does its loss.
# - Two hundred steps of AdamW take a small transformer on the story corpus from a loss of about
#   6.4 (uniform) to under 2.2.
# - Decoding strategies (greedy, temperature, frequency penalty, top-k, top-p, beam search) only
#   change how the next token is chosen from the logits; a KV cache only changes the cost, and your
#   cached generation is identical to uncached generation.
#
# Next, 1.2 uses TransformerLens' hooks to look inside the same model.
