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
#    `MLP`, `TransformerBlock`, `Unembed`, and the whole `DemoTransformer`. Each piece is checked by
#    loading the zoo model's weights into it and comparing with TransformerLens on real text; the
#    whole model you then compare with the zoo model yourself.
# 2. The language-modelling loss, and the training loop, run for a short while on the story corpus.
# 3. Sampling: greedy decoding, sampling at a temperature, a frequency penalty, top-k and top-p, then beam
#    search, with end tokens.
# 4. A key-value cache, which saves recomputing earlier positions and must not change a single token,
#    and a generation loop that uses it on a batch, with end tokens.
#
# **Prerequisites**: chapter 0 (tensors, einops, `nn.Module`, training loops).

# %%
import copy
import math
from collections.abc import Callable

import einops  # noqa: F401 (the exercises use it)
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from course.plot import line
from solutions.chapter1_transformer_interp.transformer_from_scratch import Config, KVCache, load_zoo_weights
from tests.checks.chapter1_transformer_interp.transformer_from_scratch import check  # noqa: F401 (used by the check cells the build adds)
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
# world=1: the story world gpt2-mini was trained on (zoo/README.md; later worlds add words it never saw)
text = corpus.story_documents("validation", 1, 30, world=1)[0]
print(text)
str_tokens = reference_model.to_str_tokens(text)
print(str_tokens[:16])
assert str_tokens[0] == "<|endoftext|>" and str_tokens[2] == " Julia" and "," in str_tokens

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
assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.n_ctx) == (4, 128, 4, 512, 64)
for name, param in list(reference_model.state_dict().items())[:22]:
    print(f"{name:28} {tuple(param.shape)}")

# %% [markdown]
# Those names are the contract: name your parameters exactly like TransformerLens (`W_E`, `W_pos`,
# `w` and `b` in a LayerNorm, `W_Q` of shape `[n_heads, d_model, d_head]` ...) and the zoo weights
# load into your modules with `load_zoo_weights(module, reference_model.state_dict(), prefix)`. The
# checks do exactly that (the attention's `mask` and `IGNORE` buffers are TransformerLens' own and
# are skipped). We cache the reference model's activations on a few story documents to test with.

# %%
docs = corpus.story_documents("validation", 4, 40, world=1)
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


# %% [exercise] LayerNorm difficulty=2 importance=4 minutes=15
class LayerNorm(nn.Module):
    """Normalise each residual vector to mean 0 and variance 1, then scale by w and shift by b."""

    def __init__(self, cfg: Config):
        """Keeps cfg; parameters w (ones) and b (zeros), each of shape [d_model]."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, residual: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# Which dimension do the mean and the variance run over, and does it survive so that the division
# broadcasts? The variance is the biased one (divide by $d_\text{model}$), and `torch.var` is not
# biased unless told. Where $\varepsilon$ sits matters for a nearly constant vector: inside the square
# root, it keeps the output small instead of blowing the tiny differences up to size 1.

# %% [hint]
# Centre first: subtract the mean over the last dimension (with `keepdim=True`). The variance is then
# the mean of the centred values squared. Divide the centred vector by the square root of
# (variance + `self.cfg.layer_norm_eps`), then multiply by `w` and add `b`.

# %% [markdown]
# ## Embeddings
#
# `Embed` holds `W_E` of shape `[d_vocab, d_model]` and returns row `tokens[b, p]` for each
# position. `PosEmbed` holds `W_pos` of shape `[n_ctx, d_model]` and returns row `p` at position
# `p`, the same for every sequence in the batch. Initialise both with a normal distribution of
# standard deviation `cfg.init_range`.


# %% [exercise] Embed difficulty=1 importance=3 minutes=5
class Embed(nn.Module):
    """Token embedding: the row of W_E for each token id."""

    def __init__(self, cfg: Config):
        """W_E of shape [d_vocab, d_model], normal with standard deviation cfg.init_range."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# What shape do you get when you index a [d_vocab, d_model] tensor with a [batch, pos] tensor of
# integers? For the initialisation, `nn.init.normal_` takes a standard deviation.

# %% [hint]
# Integer indexing picks one row per id and keeps the index's shape in front: `self.W_E[tokens]` is
# already `[batch, pos, d_model]`.


# %% [exercise] PosEmbed difficulty=1 importance=3 minutes=5
class PosEmbed(nn.Module):
    """Learned positional embedding: the row of W_pos for each position, the same for every sequence of the batch."""

    def __init__(self, cfg: Config):
        """W_pos of shape [n_ctx, d_model], normal with standard deviation cfg.init_range."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# The output depends on the shape of `tokens`, not on their values. Which rows of `W_pos` does a
# sequence of length `seq_len` use, and how do you give the same rows to every sequence of the batch?

# %% [hint]
# Slice the first `seq_len` rows, then repeat them along a new batch dimension:
# `einops.repeat(rows, "pos d -> batch pos d", batch=batch)` (or `expand`).

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
    """Causal multi-head self-attention with per-head weights, as in TransformerLens."""

    IGNORE: Tensor

    def __init__(self, cfg: Config):
        """Keeps cfg; W_Q, W_K, W_V, W_O normal with standard deviation cfg.init_range; b_Q, b_K, b_V,
        b_O zeros; the buffer IGNORE = -inf, kept out of the state dict."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, normalized_resid_pre: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# Write down the shapes before the code: queries, keys and values of every head at once are
# `[batch, pos, n_heads, d_head]`, the scores `[batch, n_heads, query_pos, key_pos]`. The mask depends
# only on the two positions: which entries of that square must get no weight at all, however low the
# allowed scores are? (A large negative number is not the same as $-\infty$ there.)

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
def gelu_new(x: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
    """GPT-2's tanh approximation of GELU, elementwise."""
    raise NotImplementedError()


# %% [hint]
# Translate the formula term by term. `torch.tanh` is stable for any input, so no exponential of your
# own is needed (one would overflow for large $x$). Check yourself: 0 at 0, and about $x$ for large $x$.

# %% [hint]
# `torch.nn.functional.gelu(x, approximate="tanh")` computes the same function, so you can compare
# with it; without `approximate="tanh"` it is the exact GELU, which differs slightly.


# %% [exercise] MLP difficulty=1 importance=4 minutes=10
class MLP(nn.Module):
    """Two linear maps with GPT-2's GELU between them, applied at each position."""

    def __init__(self, cfg: Config):
        """W_in [d_model, d_mlp] and W_out [d_mlp, d_model], normal with standard deviation
        cfg.init_range; b_in [d_mlp] and b_out [d_model], zeros."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, normalized_resid_mid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# Three steps at each position: up to `d_mlp`, the activation, back down to `d_model`. Which
# activation does the zoo's config name, and which of your functions is it?

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
    """Pre-LayerNorm block: the attention layer and then the MLP each add to the residual stream."""

    def __init__(self, cfg: Config):
        """Submodules ln1, attn, ln2 and mlp."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, resid_pre: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError()


# %% [hint]
# For each sublayer, ask what it reads and where its output goes: it reads a LayerNorm'd copy, and its
# output is added to the stream itself, not to the copy. Does the MLP see what attention added?

# %% [hint]
# Two lines: `resid_mid` is `resid_pre` plus the attention layer's output on `self.ln1(resid_pre)`;
# the block's output is `resid_mid` plus the MLP's output on `self.ln2(resid_mid)`.

# %% [markdown]
# `Unembed` holds `W_U` `[d_model, d_vocab]` (normal, std `cfg.init_range`) and `b_U` `[d_vocab]`
# (zeros). `DemoTransformer` puts everything together with submodules `embed`, `pos_embed`,
# `blocks` (an `nn.ModuleList` of `n_layers` blocks), `ln_final` and `unembed`; keep `self.cfg`.


# %% [exercise] Unembed difficulty=1 importance=3 minutes=5
class Unembed(nn.Module):
    """The final residual vectors to logits over the vocabulary."""

    def __init__(self, cfg: Config):
        """W_U [d_model, d_vocab], normal with standard deviation cfg.init_range; b_U [d_vocab], zeros."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, normalized_resid_final: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        raise NotImplementedError()


# %% [hint]
# A linear map from `d_model` to `d_vocab` at every position, with its bias. Which side of the matrix
# product does `W_U` go on, given its shape?

# %% [hint]
# `normalized_resid_final @ self.W_U + self.b_U`.


# %% [exercise] DemoTransformer difficulty=2 importance=5 minutes=10
class DemoTransformer(nn.Module):
    """The whole model: token ids to logits through embeddings, n_layers blocks, a final LayerNorm and
    the unembedding."""

    def __init__(self, cfg: Config):
        """Keeps cfg; submodules embed, pos_embed, blocks (an nn.ModuleList), ln_final and unembed."""
        super().__init__()
        raise NotImplementedError()

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        raise NotImplementedError()


# %% [hint]
# Follow the residual stream: what starts it, what does each block do to it, and what reads it at the
# end? If the check fails, it names the first part whose output differs from the reference's.

# %% [hint]
# `residual = self.embed(tokens) + self.pos_embed(tokens)`, then `residual = block(residual)` for
# each block, then `self.unembed(self.ln_final(residual))`.

# %% [markdown]
# The check compared your model with the reference on freshly initialised weights, which lets it
# name the first part whose output differs when something is wrong. Now the real test: load the
# whole `gpt2-mini` state dict into your model and compare its logits with the zoo model's on the
# story documents.

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
first_mentions = [i for i, token in enumerate(str_tokens[1:5]) if token.strip() in corpus.NAMES]
assert len(corpus.NAMES) == 50 and len(first_mentions) == 2 and probs[first_mentions].max() < 2.5 / 50

# %% [markdown]
# **Try it: positions.** `W_pos` is the model's only explicit signal of where a token is (apart
# from the causal mask, attention treats its keys as an unordered set). Predict what happens to
# the mean probability of the true next token if you zero `W_pos` in a copy of your model, then
# run the cell.

# %%
no_positions = copy.deepcopy(demo_model)
with torch.no_grad():
    no_positions.pos_embed.W_pos.zero_()
    probs_no_positions = no_positions(tokens).softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
probs_all = demo_logits.softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
print(f"mean p(true next token): with W_pos {probs_all.mean():.2f}, without {probs_no_positions.mean():.2f}")
assert probs_no_positions.mean() < probs_all.mean() - 0.1

# %% [markdown]
# If you skipped part 1 (the model's pieces), run the next cell: it loads the zoo weights into the
# reference `DemoTransformer` so that the rest of the notebook has a working `demo_model`.

# %%
# Fallback: the reference model, for a learner who skipped part 1.
from solutions.chapter1_transformer_interp.transformer_from_scratch import DemoTransformer

demo_model = DemoTransformer(cfg)
load_zoo_weights(demo_model, reference_model.state_dict())
demo_model.eval()
with torch.no_grad():
    demo_logits = demo_model(tokens)

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
# Line up predictions and targets: which positions have a next token to predict, and which tokens are
# the targets? Stay in log space throughout: in float32 a probability of $e^{-200}$ is 0, and its log
# is $-\infty$, while its log-probability, -200, is perfectly representable.

# %% [hint]
# `logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])` picks the log-probabilities of
# the true next tokens; average them and flip the sign.

# %%
demo_loss = next_token_loss(demo_logits, tokens).item()
reference_loss = reference_model(tokens, return_type="loss").item()
uniform_loss = math.log(cfg.d_vocab)
print(f"your loss {demo_loss:.4f}, TransformerLens' loss {reference_loss:.4f}, uniform guess {uniform_loss:.4f}")
assert abs(demo_loss - reference_loss) < 1e-4

# %% [markdown]
# ## Training a small transformer
#
# Now train one from scratch on the story corpus: a 2-layer model with `d_model` 48, on the
# training split cut into 24-token documents. Write the training loop, `train`: AdamW (one optimizer
# for the whole run, with the given learning rate and weight decay) on `next_token_loss`, taking the
# rows of `data` in order, `batch_size` rows at a time, `epochs` times over. When the rows do not
# divide evenly, an epoch's last batch is smaller; it still counts. Return the loss of every step as
# a Python float (the check trains a tiny model with your function and with the reference, from the
# same initial weights, and compares the losses step by step and the weights at the end).

# %%
train_docs = corpus.story_documents("train", 400, 30, world=1)
train_tokens = torch.stack([reference_model.to_tokens(doc)[0, :24] for doc in train_docs])
small_cfg = Config(d_model=48, n_layers=2, n_heads=3, d_head=16, d_mlp=192, n_ctx=24, d_vocab=cfg.d_vocab)
print(small_cfg, train_tokens.shape)


# %% [exercise] train difficulty=3 importance=5 minutes=25
def train(
    model: nn.Module, data: Int[Tensor, "n pos"], epochs: int, batch_size: int, lr: float, weight_decay: float
) -> list[float]:
    """Trains model in place with AdamW (one optimizer for the whole run) on next_token_loss, taking the
    rows of data in order, batch_size rows at a time (the last batch of an epoch may be smaller), epochs
    times over. Returns the loss of every step, as floats, in order."""
    raise NotImplementedError()


# %% [hint]
# A step has four parts: a forward pass and its loss, clearing what the last step left behind,
# the backward pass, the update. In which order, and which of them would silently go wrong if
# left out? How many steps does one epoch of 10 rows take in batches of 4? Should the optimizer
# (which keeps running averages of the gradients) be created once, or more often?

# %% [hint]
# Skeleton: build `torch.optim.AdamW(model.parameters(), lr=..., weight_decay=...)` before any loop;
# an outer loop over epochs; an inner loop over batch starts `0, batch_size, 2 * batch_size, ...` up
# to `len(data)` (slicing past the end just gives a shorter batch); in the inner loop, the loss of the
# batch on itself, then `zero_grad`, `backward`, `step`, and append `loss.item()`.

# %% [markdown]
# Eight epochs of 25 batches of 16 make 200 steps. They bring the loss from
# $\log(d_\text{vocab}) \approx 6.4$ (a uniform guess) to about 1.7; the zoo model, bigger and trained
# much longer, scores about 1.4 on the documents above.

# %%
torch.manual_seed(0)
small_model = DemoTransformer(small_cfg)
losses = train(small_model, train_tokens, epochs=8, batch_size=16, lr=5e-3, weight_decay=0.01)
line({"training loss": losses}, title="Training a 2-layer transformer on the story corpus", yaxis="loss").show()
first, last = losses[0], sum(losses[-25:]) / 25
print(f"{len(losses)} steps; first loss {first:.2f}, mean of the last epoch {last:.2f}")
assert len(losses) == 200 and abs(first - math.log(cfg.d_vocab)) < 0.2 and 1.45 < last < 1.8
assert 1.35 < reference_loss < 1.5

# %% [markdown]
# **Try it: the learning rate.** Before running the next cell, predict where the loss ends after
# the same 200 steps with a learning rate 50 times smaller (1e-4). The cell trains a fresh copy of
# the same model (same seed) and compares the last epochs.

# %%
torch.manual_seed(0)
slow_losses = train(DemoTransformer(small_cfg), train_tokens, epochs=8, batch_size=16, lr=1e-4, weight_decay=0.01)
slow_last = sum(slow_losses[-25:]) / 25
print(f"mean loss of the last epoch: lr 5e-3 {last:.2f}, lr 1e-4 {slow_last:.2f}")
assert slow_last > 5.0 and slow_last > last + 3.0

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
prompt_tokens = reference_model.to_tokens(prompt)[0]
n_prompt, full_stop = len(prompt_tokens), reference_model.to_single_token(".")
print(generate(demo_model, prompt, 20, greedy))

# %% [markdown]
# Greedy text is always the same for a given prompt. **Sampling** draws the next token from
# $\text{softmax}(\text{logits} / T)$ instead: a **temperature** $T < 1$ sharpens the distribution
# towards greedy, $T > 1$ flattens it towards uniform, and $T = 0$ is taken to mean greedy decoding.
# The entropy of the next-token distribution after the prompt shows the effect:

# %%
assert generate(demo_model, prompt, 20, greedy) == generate(demo_model, prompt, 20, greedy)
with torch.no_grad():
    next_logits = demo_model(reference_model.to_tokens(prompt))[0, -1]
entropies = {}
for temperature in (0.5, 1.0, 2.0):
    log_probs = (next_logits / temperature).log_softmax(-1)
    entropies[temperature] = -(log_probs.exp() * log_probs).sum().item()
    print(f"T={temperature}: entropy {entropies[temperature]:.2f} nats")
assert entropies[0.5] < entropies[1.0] < entropies[2.0] < math.log(cfg.d_vocab)

# %% [markdown]
# Write `sample_next_token`. Draw with the `torch.Generator` you are given, so that a seeded sampler
# gives the same text every time. The check draws many tokens and compares how often each appears
# with the probability it should have (within a stated number of standard errors), since two correct
# samplers need not draw the same tokens.


# %% [exercise] sample_next_token difficulty=2 importance=4 minutes=10
def sample_next_token(
    logits: Float[Tensor, "batch d_vocab"], temperature: float, generator: torch.Generator
) -> Int[Tensor, " batch"]:
    """One token id per row, drawn with `generator` from the softmax of the logits at the given
    temperature; temperature 0 means greedy decoding (each row's most likely token)."""
    raise NotImplementedError()


# %% [hint]
# Where does the temperature enter, and what would dividing by a temperature of 0 do? Treat 0 on its
# own. `torch.multinomial` draws from rows of probabilities and accepts a `generator`; mind the shape
# it returns. Logits of 1000 must not overflow: let a softmax do the exponentials.

# %% [hint]
# If `temperature == 0`, return each row's `argmax`. Otherwise take `(logits / temperature).softmax(-1)`,
# draw one sample per row with `torch.multinomial(probs, 1, generator=generator)`, and drop the last
# dimension so the result is `[batch]`.

# %% [markdown]
# Three common adjustments to the logits before sampling:
#
# - a **frequency penalty** subtracts $\alpha \cdot (\text{number of times the token already
#   appears})$, discouraging repeats;
# - **top-k** keeps only the $k$ most likely tokens (and any tied with the $k$-th);
# - **top-p** (nucleus sampling, Holtzman et al. 2019, *The Curious Case of Neural Text
#   Degeneration*) keeps the smallest set of most likely tokens whose probabilities add up to at
#   least $p$.
#
# Each returns new logits (removed tokens get $-\infty$), and does not modify its input.


# %% [exercise] apply_frequency_penalty difficulty=1 importance=2 minutes=10
def apply_frequency_penalty(
    logits: Float[Tensor, "batch d_vocab"], tokens: Int[Tensor, "batch pos"], penalty: float
) -> Float[Tensor, "batch d_vocab"]:
    """New logits: each token's logit lowered by penalty for every time the token already occurs in
    its row of tokens."""
    raise NotImplementedError()


# %% [hint]
# You need a `[batch, d_vocab]` tensor of counts: how often each token id occurs in each row of
# `tokens`. Which operation adds ones at given indices along a dimension (`scatter_add`, say)? Build a
# new tensor rather than editing `logits`.

# %% [hint]
# `torch.zeros_like(logits).scatter_add(1, tokens, torch.ones_like(tokens, dtype=logits.dtype))`
# counts each row's tokens.


# %% [exercise] top_k_logits difficulty=1 importance=3 minutes=5
def top_k_logits(logits: Float[Tensor, "batch d_vocab"], k: int) -> Float[Tensor, "batch d_vocab"]:
    """New logits: the k largest of each row kept (and any tied with the k-th largest), the rest -inf."""
    raise NotImplementedError()


# %% [hint]
# What is the smallest logit a row keeps? Compare every logit of the row with it; logits tied with it
# stay, so the rule is a threshold, not a list of k positions.

# %% [hint]
# `logits.topk(k, dim=-1).values[:, -1:]` is each row's k-th largest logit; `masked_fill` what is below it.


# %% [exercise] top_p_logits difficulty=3 importance=3 minutes=20
def top_p_logits(logits: Float[Tensor, "batch d_vocab"], top_p: float) -> Float[Tensor, "batch d_vocab"]:
    """New logits: in each row, the most probable tokens are kept, most probable first, until their
    probabilities add up to at least top_p (always at least one); the rest are -inf."""
    raise NotImplementedError()


# %% [hint]
# Go down each row from the most probable token. A token is needed exactly when the tokens before it
# have not yet reached `top_p`: think about the probability mass *before* each token, and about the
# case where the kept tokens reach `top_p` exactly. Then put the decisions back in vocabulary order.

# %% [hint]
# Sort descending (`sort` also returns the order), then a token is kept when the probability mass
# before it (cumsum minus its own probability) is below `top_p`; force the first one to be kept.
# `torch.zeros_like(keep).scatter(1, order, keep)` undoes the sort.

# %% [markdown]
# Put together, with a seeded generator so the samples are reproducible. The filters act on the
# model's own distribution; the temperature then reshapes what is left.


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
        logits = apply_frequency_penalty(logits, tokens, frequency_penalty)
        if top_k is not None:
            logits = top_k_logits(logits, top_k)
        if top_p is not None:
            logits = top_p_logits(logits, top_p)
        return sample_next_token(logits, temperature, generator)

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
# A temperature near 0 (not only 0 itself) is greedy decoding, and a seed fixes the samples:

# %%
assert generate(demo_model, prompt, 20, sampler(temperature=1e-4)) == generate(demo_model, prompt, 20, greedy)
assert generate(demo_model, prompt, 20, sampler(seed=3)) == generate(demo_model, prompt, 20, sampler(seed=3))

# %% [markdown]
# ### Beam search
#
# Greedy decoding picks the best *next* token, not the best *sequence*: a likely token can lead
# somewhere where every continuation is unlikely. **Beam search** keeps the `n_beams` most likely
# partial sequences, scored by the summed log-probability of their new tokens. At each step every
# kept sequence proposes every possible next token, and the best `n_beams` of all those candidates,
# whichever sequence they came from, are kept. A sequence that emits the end token
# (`eos_token_id`, if one is given) is finished: it keeps its score and competes in the final
# ranking, but grows no further. At the end, return the best `n_beams` sequences, finished or not,
# best first.
#
# `model` is anything that maps token ids `[n_sequences, pos]` to logits
# `[n_sequences, pos, d_vocab]`, such as your `DemoTransformer`: the check also uses small hand-built
# models whose probabilities you can multiply out yourself.


# %% [exercise] beam_search difficulty=4 importance=4 minutes=40
def beam_search(
    model: Callable[[Tensor], Tensor],
    prompt: Int[Tensor, " prompt_pos"],
    n_new: int,
    n_beams: int,
    eos_token_id: int | None = None,
) -> list[tuple[Int[Tensor, " pos"], float]]:
    """The n_beams most likely continuations of prompt found by beam search, best first, each as (its tokens,
    prompt included; the summed log-probability of its new tokens). A continuation ends after n_new new
    tokens or at eos_token_id, which it keeps as its last token; a finished one is extended no further."""
    raise NotImplementedError()


# %% [hint]
# Work the first check case by hand first: from token 0, tokens 1 and 2 have probabilities 0.5 and
# 0.4; the best continuation after 1 has 0.35, after 2 it has 0.8. Which two sequences of two new
# tokens should two beams keep, and which does greedy decoding pick? Then ask how to hold the live
# sequences so that one forward pass scores all of them (they always have the same length), and
# what to do when there are fewer candidates than beams.

# %% [hint]
# Keep the live sequences as one `[n_alive, pos]` tensor and their scores as `[n_alive]`. Each step:
# the log-softmax of the last position's logits, added to each sequence's score, gives an
# `[n_alive, d_vocab]` table of candidate scores. Flatten it and take its top `n_beams` (no more than
# there are candidates): a flat index says both which sequence (integer division by `d_vocab`) and
# which token (the remainder). Move the candidates that end in the end token to a list of finished
# ones; stop early when none is alive.

# %%
beams = beam_search(demo_model, prompt_tokens, 12, n_beams=4)
for beam_tokens, score in beams:
    print(f"{score:7.3f}  {reference_model.to_string(beam_tokens[1:])}")
ended = beam_search(demo_model, prompt_tokens, 30, n_beams=4, eos_token_id=full_stop)
print("with '.' as the end token:")
for beam_tokens, score in ended:
    print(f"{score:7.3f}  {reference_model.to_string(beam_tokens[1:])}")
assert all(beam_tokens[-1] == full_stop for beam_tokens, _ in ended)

# %% [markdown]
# Beam search's best sequence is at least as likely as greedy's (here, over 12 tokens):


# %%
def sequence_log_prob(model: nn.Module, text: str, n_prompt_tokens: int) -> float:
    """Summed log-probability of the tokens of text after its first n_prompt_tokens."""
    tokens = reference_model.to_tokens(text)
    with torch.no_grad():
        log_probs = model(tokens)[0, :-1].log_softmax(-1).gather(-1, tokens[0, 1:, None])[:, 0]
    return log_probs[n_prompt_tokens - 1 :].sum().item()


greedy_text = generate(demo_model, prompt, 12, greedy)
print(f"greedy {sequence_log_prob(demo_model, greedy_text, n_prompt):.3f}, beam {beams[0][1]:.3f}")
assert beams[0][1] >= sequence_log_prob(demo_model, greedy_text, n_prompt) - 1e-4

# %% [markdown]
# **Try it: one beam.** Predict what `beam_search` returns with `n_beams=1`, then run the cell.

# %%
one_beam = beam_search(demo_model, prompt_tokens, 12, n_beams=1)
print(reference_model.to_string(one_beam[0][0][1:]))
assert len(one_beam) == 1 and reference_model.to_string(one_beam[0][0][1:]) == greedy_text

# %% [markdown]
# If you skipped part 3 (sampling), run the next cell: the last exercise samples with `sampler`,
# which calls the sampling exercises.

# %%
# Fallback: the sampling references, for a learner who skipped part 3.
from solutions.chapter1_transformer_interp.transformer_from_scratch import (
    apply_frequency_penalty,
    sample_next_token,
    top_k_logits,
    top_p_logits,
)

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
# logits for the new tokens and the cache extended by them, in the same layout (the check compares
# both). Use your model's submodules and parameters (`model.embed`, `model.pos_embed.W_pos`,
# `block.ln1`, `block.attn.W_Q`, `block.mlp` ...). Two things change from `Attention.forward`: the
# new tokens' positions start at the cache's length, and the causal mask compares *absolute*
# positions (query $p$ sees keys $\le p$).


# %% [exercise] cached_forward difficulty=3 importance=3 minutes=30
def cached_forward(
    model: DemoTransformer, tokens: Int[Tensor, "batch new_pos"], cache: KVCache | None
) -> tuple[Float[Tensor, "batch new_pos d_vocab"], KVCache]:
    """The logits of `model` for new tokens that continue the sequences whose keys and values are in
    `cache` (None: no earlier tokens), and the cache extended by the new positions. A cache holds one
    (keys, values) pair per layer, each of shape [batch, earlier_pos, n_heads, d_head]."""
    raise NotImplementedError()


# %% [hint]
# Two questions. Where do the new tokens' positions start, given how many positions the cache already
# holds? And which keys may a new query see: every cached one, and the new ones up to its own
# *absolute* position? A chunk of several new tokens needs a mask; a single new token does not.

# %% [hint]
# `offset = 0 if cache is None else cache[0][0].shape[1]`; the positional embedding of the new
# tokens is `model.pos_embed.W_pos[offset:offset + n_new]`. Concatenate cached and new keys along
# dim 1 before computing scores.

# %% [hint]
# Mask: `query_pos = torch.arange(offset, offset + n_new)[:, None]`, `key_pos = torch.arange(n_keys)[None]`,
# masked where `key_pos > query_pos`.

# %% [markdown]
# Now put the cache to work in a generation loop, `generate_cached`: the prompt goes in with one
# call, then each new token with one call of its own. It works on a batch of prompts of the same
# length, chooses each token with a `pick_next` function like the samplers above (which sees the
# tokens so far, for the frequency penalty), and handles an end token: a row that has produced
# `eos_token_id` is finished, and is padded with it while the other rows go on, so that every row
# gets `n_new` new tokens. An end token inside the prompt does not count.


# %% [exercise] generate_cached difficulty=3 importance=3 minutes=20
def generate_cached(
    model: DemoTransformer,
    tokens: Int[Tensor, "batch pos"],
    n_new: int,
    pick_next: Callable[[Tensor, Tensor], Tensor],
    eos_token_id: int | None = None,
) -> Int[Tensor, "batch pos_and_new"]:
    """The tokens followed by n_new new tokens per row, computed with cached_forward and its cache: each new
    token is pick_next(the last position's logits [batch, d_vocab], the row's tokens so far [batch, pos]).
    A row that has produced eos_token_id (after its prompt) continues with eos_token_id only."""
    raise NotImplementedError()


# %% [hint]
# What does each call of `cached_forward` read, and what must you keep between calls? Count the
# calls for 8 new tokens: one for the prompt, then how many more (the last new token is never fed
# back)? For the end token, keep one flag per row: once set, what do you write in that row?

# %% [hint]
# Before the loop: a `[batch]` boolean tensor of finished rows, all False, and the first call on the
# whole prompt. In the loop: pick from the last position's logits and the tokens so far, overwrite the
# finished rows' picks with the end token (`masked_fill`), update the flags, append the picks as a
# new column, and feed only that column back together with the cache.

# %% [markdown]
# With greedy choices, cached generation must give exactly the tokens of `generate` above, which
# reruns the whole sequence every step:

# %%
for start in [prompt, "The war lasted from 17", "Paris is in"]:
    cached = reference_model.to_string(generate_cached(demo_model, reference_model.to_tokens(start), 30, greedy)[0, 1:])
    print(cached)
    assert cached == generate(demo_model, start, 30, greedy)
print("cached generation equals uncached generation, token for token")

# %% [markdown]
# Three samples of the same prompt at once, each ending at its first full stop:

# %%
prompt_batch = reference_model.to_tokens(prompt).repeat(3, 1)
samples = generate_cached(demo_model, prompt_batch, 25, sampler(seed=1), eos_token_id=full_stop)
for row in samples:
    print(reference_model.to_string(row[1:]))
for row in samples[:, n_prompt:].tolist():
    assert full_stop in row and set(row[row.index(full_stop) :]) == {full_stop}

# %% [markdown]
# **Try it: forget the cache.** A common bug in a generation loop is to pass `None` instead of the
# returned cache on each step. Predict what the text looks like then: the new token is at position
# 0 and sees nothing but itself.

# %%
with torch.no_grad():
    forgetful = reference_model.to_tokens(prompt)
    logits, _ = cached_forward(demo_model, forgetful, None)
    for _ in range(20):
        next_token = logits[:, -1].argmax(dim=-1)[:, None]
        forgetful = torch.cat([forgetful, next_token], dim=1)
        logits, _ = cached_forward(demo_model, next_token, None)
print(reference_model.to_string(forgetful[0, 1:]))
new_tokens = forgetful[0, n_prompt:].tolist()
assert len(set(new_tokens)) <= 3
assert reference_model.to_string(forgetful[0, 1:]) != generate(demo_model, prompt, 20, greedy)

# %% [markdown]
# ## Summary
#
# - A transformer is embeddings into a residual stream, blocks that each *add* an attention output
#   and an MLP output to it, and an unembedding. Attention is the only place where positions
#   exchange information, and the causal mask keeps it looking backwards.
# - With TransformerLens' parameter names, the zoo `gpt2-mini`'s weights load into your
#   `DemoTransformer`, whose logits match the zoo model's to within $10^{-4}$, as does its loss.
# - Two hundred steps of AdamW take a small transformer on the story corpus from a loss of about
#   6.4 (uniform) to about 1.7; fifty times smaller a learning rate leaves it above 5.
# - Without `W_pos` the loaded model still runs but predicts much worse: the mean probability of the
#   true next token falls by more than 0.1.
# - Decoding strategies (greedy, temperature, frequency penalty, top-k, top-p, beam search) only
#   change how the next token is chosen from the logits. A sampler is checked by its frequencies,
#   not by its draws. Beam search with one beam is greedy decoding, and with four beams its best
#   sequence is at least as likely as greedy's.
# - A KV cache saves recomputing the keys and values of earlier positions: your cached generation
#   is identical to uncached generation, and a loop that drops the cache degenerates into repeats.
#
# Next, 1.2 uses TransformerLens' hooks to look inside the same model.
