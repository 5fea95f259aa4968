# %% [markdown]
# # 0.5 VAEs and GANs
#
# So far every network you trained mapped an input to a label. This section turns the arrow around:
# networks that *produce* images. You will build three of them, each answering a question the previous
# one leaves open.
#
# 1. **An autoencoder** squeezes an image through a bottleneck of a few numbers and rebuilds it. It
#    learns a compact code, but the space of codes has holes: a random code decodes to a smudge.
# 2. **A variational autoencoder (VAE)** makes the code space usable for generation by encoding each
#    image as a small Gaussian cloud and pulling those clouds towards a standard normal. You will meet
#    the reparameterisation trick, a KL divergence in closed form, and a trade-off between two losses
#    that decides what the model learns; you will write its training loop (with a KL warm-up) and
#    estimate how likely the model finds a test digit, by importance sampling.
# 3. **A generative adversarial network (GAN)** drops reconstruction entirely: a generator learns to
#    fool a discriminator that learns to tell its images from real ones. You will build a small
#    DCGAN with transposed convolutions, write the round of the game that trains it (where one
#    misplaced `detach` sends one player's gradients into the other), and walk between its samples
#    along an arc.
#
# A bonus exercise implements the transposed convolution itself. Each part ends with a **try it**:
# predict what a change will do, then run the cell that shows it.
#
# **Why this is in a safety course.** Autoencoders come back in chapter 1 as *sparse autoencoders*,
# one of the main tools for reading the features inside language models; the VAE's loss is the
# simplest case of trading reconstruction against a penalty on the code, which is exactly what an SAE
# does. GAN training is a two-player game, and watching its losses is a first lesson in how
# optimisation with an adversary behaves differently from ordinary training.
#
# **Prerequisites.** `nn.Module`, `nn.Conv2d` and training loops with an optimizer (sections 0.2 and
# 0.3). The maths needs only Gaussians and logarithms.
#
# **The data.** The course's image data is scikit-learn's bundled handwritten digits: 1,797 real 8x8
# grayscale scans of the digits 0-9, which `course.data.digits` scales to $[0, 1]$, upsamples to
# 16x16 and splits into 1,437 training, 180 validation and 180 test images (the same split every
# time). They are small enough to train every model here on a laptop CPU: the whole solved notebook,
# which trains five models, used about 45 seconds of one CPU core when we measured it once.

# %%
import math

import einops
import plotly.express as px
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from course.data import digits
from course.plot import image_grid, imshow, line
from tests.checks.chapter0_fundamentals.vaes_and_gans import check  # noqa: F401 (the build adds the check cells)

# These models are tiny: one thread avoids the overhead of splitting each small matrix product
# across cores.
torch.set_num_threads(1)

train_images, train_labels = digits("train", size=16)
test_images, test_labels = digits("test", size=16)
print(
    f"train {tuple(train_images.shape)}, test {tuple(test_images.shape)}, pixel values in "
    f"[{train_images.min():.0f}, {train_images.max():.0f}]"
)
assert (len(train_images), len(digits("val")[0]), len(test_images)) == (1437, 180, 180)
assert train_images.min() == 0 and train_images.max() == 1
image_grid(
    train_images[:20, 0],
    rows=2,
    titles=[str(int(label)) for label in train_labels[:20]],
    title="The first twenty training digits",
    height=260,
).show()

# %% [markdown]
# `image_grid` draws a batch of grayscale images given as `(n, height, width)`, so we drop the channel
# axis with `[:, 0]` when we call it. A second helper tiles a batch of images into one picture, which is
# lighter to draw than a grid of separate panels when there are many images.


# %%
def tile(images: Float[Tensor, "n 1 h w"], rows: int) -> Float[Tensor, "rows*h cols*w"]:
    """Lay n images out in `rows` rows, as one image."""
    return einops.rearrange(images, "(r c) 1 h w -> (r h) (c w)", r=rows)


# %% [markdown]
# ## 1. An autoencoder
#
# An autoencoder is two networks in a row. The **encoder** maps an image $x$ to a short vector
# $z$, the *latent code*; the **decoder** maps $z$ back to an image $\hat x$. Training minimises the
# reconstruction error $\lVert x - \hat x \rVert^2$. Since $z$ has far fewer numbers than $x$ has pixels
# (here 8 against 256), the pair must find what the images have in common and store only how each one
# differs.
#
# The encoder halves the image twice with stride-2 convolutions, then uses two linear layers. The
# decoder mirrors it: two linear layers, then two **transposed convolutions** that double the image
# each time. A transposed convolution runs a convolution backwards: where a convolution with stride
# $s$ reads a $k \times k$ window of its input for each output pixel, a transposed one *writes* a
# $k \times k$ window of its output for each input pixel, placed $s$ pixels apart and summed where
# windows overlap. Its output has side $(H - 1)s + k - 2p$ for padding $p$: with $k = 4$, $s = 2$,
# $p = 1$, exactly $2H$. (You implement it yourself in the bonus.)
#
# Build the model with two `nn.Sequential` attributes, with these layers in this order, so that its
# parameters have the names the check expects (`encoder.0.weight`, ...). Every convolution here, ordinary
# or transposed, has kernel size 4, stride 2 and padding 1: the table writes `Conv2d(1, 16, 4, 2, 1)`, the
# same call as `Conv2d(1, 16, kernel_size=4, stride=2, padding=1)`.
#
# | `self.encoder` | shape after it | `self.decoder` | shape after it |
# |---|---|---|---|
# | `Conv2d(1, 16, 4, 2, 1)`, `ReLU` | (16, 8, 8) | `Linear(latent_dim, hidden)`, `ReLU` | (hidden,) |
# | `Conv2d(16, 32, 4, 2, 1)`, `ReLU` | (32, 4, 4) | `Linear(hidden, 512)`, `ReLU` | (512,) |
# | `Flatten()` | (512,) | `Unflatten(1, (32, 4, 4))` | (32, 4, 4) |
# | `Linear(512, hidden)`, `ReLU` | (hidden,) | `ConvTranspose2d(32, 16, 4, 2, 1)`, `ReLU` | (16, 8, 8) |
# | `Linear(hidden, latent_dim)` | (latent_dim,) | `ConvTranspose2d(16, 1, 4, 2, 1)`, `Sigmoid` | (1, 16, 16) |
#
# The code has no activation (it may take any real value); the final `Sigmoid` keeps the output in
# $(0, 1)$, like the pixels.


# %% [exercise] Autoencoder difficulty=2 importance=4 minutes=15
class Autoencoder(nn.Module):
    """Compress an image to `latent_dim` numbers and reconstruct it from them."""

    def __init__(self, latent_dim: int, hidden: int = 128):
        super().__init__()
        raise NotImplementedError()  # build self.encoder and self.decoder

    def forward(self, x: Float[Tensor, "batch 1 16 16"]) -> Float[Tensor, "batch 1 16 16"]:
        raise NotImplementedError()


# %% [hint]
# Read each column of the table top to bottom: every comma-separated layer is one entry of an
# `nn.Sequential`, so the encoder has 8 entries and the decoder 9. Later cells call the encoder and the
# decoder on their own (to get codes, and to decode codes we make up), so each half must be complete by
# itself: what is left for `forward` to do?

# %% [hint]
# A skeleton; fill in the rest of each column in the same way.
#
# ```python
# self.encoder = nn.Sequential(
#     nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1), nn.ReLU(),
#     ...,  # the second convolution and its ReLU, Flatten, then the two Linear layers with a ReLU between
# )
# self.decoder = nn.Sequential(
#     nn.Linear(latent_dim, hidden), nn.ReLU(),
#     ...,  # ending with the Sigmoid, inside the decoder
# )
# ```
#
# `forward` passes the image through one half and the result through the other.

# %% [markdown]
# ### Training it
#
# The loop is the one you know: shuffle, take batches of 64, minimise the mean squared error with
# Adam. Everything is seeded.


# %%
def train_autoencoder(
    model: nn.Module, images: Tensor, epochs: int, lr: float = 2e-3, batch_size: int = 64, seed: int = 0
) -> list[float]:
    """Train `model` to reconstruct `images`; return the loss of every step."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(epochs), desc="autoencoder"):
        for batch in images[torch.randperm(len(images))].split(batch_size):
            loss = F.mse_loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


torch.manual_seed(0)
autoencoder = Autoencoder(latent_dim=8)
ae_losses = train_autoencoder(autoencoder, train_images, epochs=20)
line({"training loss": ae_losses}, title="Autoencoder: mean squared error per pixel", yaxis="MSE").show()

# %% [markdown]
# How good is a mean squared error of this size? Compare it with the simplest "model" there is:
# predict the average training image for every input. On the test images, the autoencoder's error per
# pixel comes out below 0.012, less than a quarter of that baseline (about 0.045).

# %%
autoencoder.eval()
with torch.no_grad():
    test_reconstructions = autoencoder(test_images)
ae_test_mse = F.mse_loss(test_reconstructions, test_images).item()
baseline_mse = F.mse_loss(train_images.mean(0, keepdim=True).expand_as(test_images), test_images).item()
print(f"test MSE: autoencoder {ae_test_mse:.4f}, mean-image baseline {baseline_mse:.4f}")
assert ae_test_mse < 0.012 and ae_test_mse < baseline_mse / 4
assert abs(baseline_mse - 0.045) < 0.003

image_grid(
    torch.cat([test_images[:10], test_reconstructions[:10]])[:, 0],
    rows=2,
    title="Test digits (top) and their reconstructions from 8 numbers (bottom)",
    height=260,
).show()

# %% [markdown]
# ### Try it: the holes in the code space
#
# Can we *generate* digits by decoding codes we make up? Nothing in the training asked the codes to
# fill any particular region, so we do not know where to draw them from. Try the obvious choice: a
# Gaussian with the same mean and spread, coordinate by coordinate, as the codes of the training
# images. Before you look: how many of the 24 decoded images would you expect to be digits?

# %%
torch.manual_seed(0)
with torch.no_grad():
    train_codes = autoencoder.encoder(train_images)
    random_codes = train_codes.mean(0) + train_codes.std(0) * torch.randn(24, 8)
    random_decodes = autoencoder.decoder(random_codes)
imshow(tile(random_decodes, rows=3), title="Autoencoder: decoding random codes", height=260).show()

# %% [markdown]
# The training codes do not fill that Gaussian. Measure it with distances to the nearest neighbour: a
# random code lies about twice as far from its nearest training code as the code of a real test digit
# does, in a region the decoder never had to handle, and its decoded image lies about half as far again
# from its nearest training image as a real test digit does.


# %%
def nearest_distance(points: Tensor, references: Tensor) -> Tensor:
    """Each point's Euclidean distance to the nearest of `references` (both flattened to one row each)."""
    return torch.cdist(points.flatten(1), references.flatten(1)).min(dim=1).values


with torch.no_grad():
    test_codes = autoencoder.encoder(test_images)
code_gap = nearest_distance(random_codes, train_codes).median() / nearest_distance(test_codes, train_codes).median()
image_gap = (
    nearest_distance(random_decodes, train_images).median() / nearest_distance(test_images, train_images).median()
)
print(
    f"median distance to the nearest training example, random over real: codes {code_gap:.2f}x, images {image_gap:.2f}x"
)
assert 1.8 < code_gap < 2.7 and 1.3 < image_gap < 1.8

# %% [markdown]
# ## 2. A variational autoencoder
#
# A VAE (Kingma and Welling, 2013) fixes where the codes live. Its encoder does not output one code
# per image but a Gaussian: a mean $\mu(x)$ and a log-variance $\log \sigma^2(x)$ for each latent
# coordinate. Training decodes a *sample* $z \sim \mathcal N(\mu, \sigma^2)$ from that Gaussian, and
# adds a penalty that pulls every image's Gaussian towards the standard normal $\mathcal N(0, I)$.
# Two things follow. Nearby codes must decode to similar images (the decoder sees a cloud of codes for
# each image, not a point); and the codes of all the images together fill out roughly a standard
# normal, so that $z \sim \mathcal N(0, I)$ decodes to something plausible.
#
# ### The reparameterisation trick
#
# We need gradients of the loss with respect to $\mu$ and $\log\sigma^2$, but "draw a random sample"
# has no gradient. The trick is to move the randomness into an input: draw $\varepsilon \sim \mathcal
# N(0, I)$ and set
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \sigma = \exp\!\big(\tfrac12 \log \sigma^2\big).$$
#
# That $z$ has the right distribution and is a differentiable function of $\mu$ and $\log\sigma^2$.
# The encoder outputs the log-variance rather than $\sigma$ itself because it can take any real value,
# while $\sigma$ must be positive. The function takes the noise $\varepsilon$ as an argument, so the
# result is reproducible.


# %% [exercise] reparameterise difficulty=1 importance=5 minutes=5
def reparameterise(
    mu: Float[Tensor, "batch latent"], logvar: Float[Tensor, "batch latent"], noise: Float[Tensor, "batch latent"]
) -> Float[Tensor, "batch latent"]:
    """A sample of N(mu, exp(logvar)), written as a differentiable function of mu and logvar: the one that the
    given standard normal `noise` picks out. Finite whenever that standard deviation is."""
    raise NotImplementedError()


# %% [hint]
# `logvar` is the log of the *variance*. Which power of the variance is the standard deviation, and how
# do you take that power while staying in log space? Use the `noise` you are given rather than drawing
# your own: that is what makes the result reproducible.

# %% [hint]
# Halving a logarithm takes a square root: $\sigma = \exp(\tfrac12 \log\sigma^2)$. Taking the square
# root of `logvar.exp()` gives the same number only while the variance fits in a float: above a
# log-variance of about 88, `exp` overflows to infinity in float32.

# %% [markdown]
# Is that $z$ really distributed as $\mathcal N(\mu, \sigma^2)$? Feed your function a hundred thousand
# draws of noise for one $\mu$ and $\sigma$ and compare the sample's mean and standard deviation with
# them.

# %%
torch.manual_seed(0)
draws = reparameterise(torch.full((100_000, 1), 3.0), torch.full((100_000, 1), math.log(0.25)), torch.randn(100_000, 1))
print(f"mu 3, sigma 0.5: sample mean {draws.mean():.4f}, sample standard deviation {draws.std():.4f}")
assert abs(draws.mean() - 3.0) < 0.01 and abs(draws.std() - 0.5) < 0.01

# %% [markdown]
# ### The KL term
#
# The penalty is the Kullback-Leibler divergence from the encoder's Gaussian to the standard normal.
# For one coordinate it has a closed form,
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1)\big)
#   = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \log\sigma^2\big),$$
#
# which is zero exactly when $\mu = 0$ and $\sigma = 1$. The coordinates are independent, so the KL
# of the whole code is the sum over coordinates. Return one number per example. The check compares
# your function with hand-worked cases and with the reference implementation (which the course's own
# tests compare with `torch.distributions.kl_divergence`).


# %% [exercise] gaussian_kl difficulty=1 importance=4 minutes=10
def gaussian_kl(mu: Float[Tensor, "batch latent"], logvar: Float[Tensor, "batch latent"]) -> Float[Tensor, " batch"]:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) for each example, summed over the latent dimensions; finite
    even for a variance too small for float32 to hold."""
    raise NotImplementedError()


# %% [hint]
# Every term of the closed form needs $\sigma^2$ or $\log\sigma^2$: can you get both straight from
# `logvar`, without computing $\sigma$ first? (A confident encoder can output a log-variance of $-200$:
# then $\sigma^2$ underflows to 0 in float32 and its log is $-\infty$, though the KL is a finite 99.5.)
# Then ask which axis holds the latent coordinates.

# %% [hint]
# $\sigma^2$ is `logvar.exp()` and $\log\sigma^2$ is `logvar` itself. Sum over the last axis.

# %% [markdown]
# ### The loss, and the balance between its two terms
#
# The VAE minimises, averaged over a batch,
#
# $$\mathcal L = \underbrace{\lVert x - \hat x \rVert^2}_{\text{reconstruction}} + \beta\,
# \underbrace{\mathrm{KL}\big(\mathcal N(\mu(x), \sigma^2(x)) \,\|\, \mathcal N(0, I)\big)}_{\text{KL}},$$
#
# where the squared error is **summed** over the image's pixels and the KL over the latent
# coordinates, so that both measure one whole image.
#
# Where does $\beta$ come from? The VAE is derived as maximising a lower bound on $\log p(x)$ (the
# ELBO): $\mathbb E_z[\log p(x \mid z)] - \mathrm{KL}$. If the decoder models each pixel as Gaussian
# noise of variance $s^2$ around $\hat x$, then $-\log p(x \mid z) = \lVert x - \hat x\rVert^2 / 2s^2
# + \text{const}$; multiplying the whole bound by $2s^2$ gives the loss above with $\beta = 2s^2$. So
# $\beta$ is a statement about how noisy we believe the images are. A large $\beta$ says
# "reconstruction errors are cheap": the model keeps the codes close to the prior, carries little
# information about each image, and reconstructs blurrily. A small $\beta$ lets the codes spread out
# and carry more detail, at the cost of a code space that matches the prior less well. (The
# $\beta$-VAE of Higgins et al., 2017, turns this knob on purpose.) Averaging the squared error over
# pixels instead of summing it is a classic bug: it silently divides the reconstruction term by 256,
# that is, multiplies $\beta$ by 256.
#
# Return the total and its two parts, each a 0-dimensional tensor, so that training can log them.


# %% [exercise] vae_loss difficulty=2 importance=5 minutes=10
def vae_loss(
    reconstruction: Float[Tensor, "batch 1 h w"],
    images: Float[Tensor, "batch 1 h w"],
    mu: Float[Tensor, "batch latent"],
    logvar: Float[Tensor, "batch latent"],
    beta: float,
) -> tuple[Float[Tensor, ""], Float[Tensor, ""], Float[Tensor, ""]]:
    """(total loss, reconstruction term, KL term), each averaged over the batch: the reconstruction term is
    an image's squared error summed over its pixels, the KL term its code's KL summed over the latent
    dimensions, and the total weights the KL term by beta."""
    raise NotImplementedError()


# %% [hint]
# Make each term one number per image first (shape `(batch,)`), then average over the batch. The
# squared error is summed over every pixel of an image, whatever its channels, height and width
# (`F.mse_loss` averages them instead: the bug described above). Return the KL term as it is, before
# $\beta$ weights it: training logs it.

# %% [hint]
# `(reconstruction - images).pow(2).flatten(1)` has one row of squared errors per image: sum each row,
# then take the `.mean()` over the batch. `gaussian_kl(mu, logvar)` is already one number per image.

# %% [markdown]
# ### The VAE module
#
# The VAE reuses the autoencoder's layers with one change: the encoder's last layer is
# `Linear(hidden, 2 * latent_dim)`, whose output is split into $\mu$ (the first `latent_dim` numbers)
# and $\log\sigma^2$ (the rest). Keep the attribute names `encoder` and `decoder` and the same layer
# order, and store `latent_dim` as `self.latent_dim`. Write `encode`, which returns `(mu, logvar)`,
# and `forward`, which decodes `reparameterise(mu, logvar, noise)` and returns
# `(reconstruction, mu, logvar)`. When `noise` is `None`, draw it fresh from a standard normal; the
# check passes its own noise so that your output can be compared with the reference's, and then checks
# the noise you draw without it. As in the autoencoder, the decoder must be complete by itself: later
# cells decode codes with `vae.decoder` alone.


# %% [exercise] VAE difficulty=2 importance=4 minutes=15
class VAE(nn.Module):
    """An autoencoder whose encoder outputs a Gaussian over latent codes rather than one code."""

    def __init__(self, latent_dim: int, hidden: int = 128):
        super().__init__()
        raise NotImplementedError()  # store self.latent_dim; build self.encoder (2 * latent_dim outputs), self.decoder

    def encode(
        self, x: Float[Tensor, "batch 1 16 16"]
    ) -> tuple[Float[Tensor, "batch latent"], Float[Tensor, "batch latent"]]:
        """The mean and log-variance of each image's latent Gaussian: the encoder's first and second halves."""
        raise NotImplementedError()

    def forward(
        self, x: Float[Tensor, "batch 1 16 16"], noise: Float[Tensor, "batch latent"] | None = None
    ) -> tuple[Float[Tensor, "batch 1 16 16"], Float[Tensor, "batch latent"], Float[Tensor, "batch latent"]]:
        """(reconstruction, mu, logvar). The latent is sampled with `noise` (fresh N(0, 1) noise if None)."""
        raise NotImplementedError()


# %% [hint]
# Start from your autoencoder: only the encoder's last layer changes. How do you split the last axis of
# a tensor into two equal halves, in order? Which function you have already written turns $\mu$,
# $\log\sigma^2$ and noise into a code? When no noise is given, what shape and distribution must the
# fresh noise have?

# %% [hint]
# `self.encoder(x).chunk(2, dim=-1)` gives the two halves, `mu` first. In `forward`, decode
# `reparameterise(mu, logvar, noise)`, after replacing a missing `noise` with `torch.randn_like(mu)`.

# %% [markdown]
# ### The training loop, with a KL warm-up
#
# Now write the loop that trains a VAE, the one every later cell of this part calls. It is the
# autoencoder's loop with the VAE's loss, plus one refinement often used in practice: a **KL warm-up**
# (Bowman et al., 2016). Early on, the decoder cannot use the codes yet, and a full-weight KL term can
# pull every code onto the prior before they carry anything; so the weight on the KL term starts at 0
# and rises in a straight line to `beta` over the first `warmup_steps` steps, then stays there. At
# step $t$ (counting from 0) it is $\beta_t = \beta \min(1, t / T)$ for $T$ warm-up steps, and
# `warmup_steps=0` means no warm-up: the full `beta` from the first step.
#
# So that the check can compare your loop with the reference step by step, follow this recipe:
# call `torch.manual_seed(seed)` once at the start; build `torch.optim.Adam(model.parameters(), lr=lr)`;
# in every epoch, shuffle with one `torch.randperm(len(images))` and take batches of `batch_size` in
# that order (the last one may be smaller); let the model's forward draw its own noise. Return a dict
# of three lists, one entry per step: `"beta"` (the KL weight used), `"reconstruction"` and `"KL"` (the
# two terms of `vae_loss`, as Python floats, the KL term before weighting).


# %% [exercise] train_vae difficulty=3 importance=5 minutes=20
def train_vae(
    model: nn.Module,
    images: Float[Tensor, "n 1 h w"],
    epochs: int,
    beta: float,
    warmup_steps: int = 0,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Train the VAE `model` on `images` with vae_loss and Adam, the KL weight rising linearly from 0 at the first
    step to `beta` at step `warmup_steps` and staying there; return the KL weight, the reconstruction term and
    the KL term of every step, under the keys "beta", "reconstruction" and "KL"."""
    raise NotImplementedError()


# %% [hint]
# Start from `train_autoencoder` above: what changes is what the model returns, the loss, and one number
# that now depends on a step counter running across epochs. Work the weight schedule out on paper first
# for `warmup_steps=4`: which steps get 0, 1/4, 1/2, 3/4 and the full weight? And what must
# `warmup_steps=0` give without dividing by it? Finally: what would the gradients of the previous step
# do to this one if nothing cleared them?

# %% [hint]
# A skeleton of the body of the inner loop, over the batches of one epoch's shuffled order:
#
# ```python
# weight = ...  # beta * min(1, step / warmup_steps), or beta when warmup_steps is 0
# reconstruction, mu, logvar = model(batch)
# loss, reconstruction_term, kl_term = vae_loss(...)
# ...  # zero the gradients, backward, step
# ...  # append weight, reconstruction_term.item() and kl_term.item(); then step += 1
# ```

# %% [markdown]
# The schedule, on four batches of 64 with a warm-up of four steps, should read 0, 1/4, 1/2, 3/4:

# %%
torch.manual_seed(0)
assert train_vae(VAE(latent_dim=2), train_images[:256], epochs=1, beta=1.0, warmup_steps=4)["beta"] == [
    0,
    0.25,
    0.5,
    0.75,
]

# %% [markdown]
# ### Training a VAE with a 2D code
#
# With only two latent dimensions the code space is a plane we can look at directly. We train with
# $\beta = 0.2$ (a decoder noise level $s \approx 0.32$ in the reading above), without a warm-up, logging
# both terms.

# %%
torch.manual_seed(0)
vae = VAE(latent_dim=2)
vae_history = train_vae(vae, train_images, epochs=30, beta=0.2)
line(
    {k: vae_history[k] for k in ("reconstruction", "KL")},
    title="VAE (beta = 0.2): the two terms of the loss per step",
    yaxis="per image",
).show()


def vae_report(model: VAE) -> dict[str, float]:
    """Test reconstruction MSE per pixel (decoding mu) and mean KL per image."""
    model.eval()
    with torch.no_grad():
        mu, logvar = model.encode(test_images)
        return {"mse": F.mse_loss(model.decoder(mu), test_images).item(), "kl": gaussian_kl(mu, logvar).mean().item()}


vae_stats = vae_report(vae)
print(f"VAE on the test set: MSE per pixel {vae_stats['mse']:.4f}, KL per image {vae_stats['kl']:.2f} nats")

# %% [markdown]
# Two numbers carry the trade-off. The KL term is well above zero (more than 2 nats per image): the
# codes carry real information about their images. And two numbers per image are enough to beat the
# mean-image baseline by a wide margin (an error below 0.027 against about 0.045), though not the
# 8-number autoencoder.

# %%
assert vae_stats["kl"] > 2.0
assert vae_stats["mse"] < 0.027 < baseline_mse
assert vae_stats["mse"] > ae_test_mse

# %% [markdown]
# ### The code space
#
# Here is every test digit placed at its code $\mu(x)$, coloured by its label. Nobody told the VAE the
# labels; do the digits of one class gather in one region? A simple measure: label each test digit with
# the label of the *training* digit whose code is nearest. That guesses right for more than 65% of the
# test digits, from two numbers learned without labels, where guessing from the label frequencies
# alone would be right about 10% of the time. The codes also spread over the plane on the scale of the
# prior: on each axis their mean is within 0.3 of 0 and their standard deviation between 0.7 and 1.5.

# %%
with torch.no_grad():
    test_mu, _ = vae.encode(test_images)
    train_mu, _ = vae.encode(train_images)
px.scatter(
    x=test_mu[:, 0].numpy(),
    y=test_mu[:, 1].numpy(),
    color=[str(int(label)) for label in test_labels],
    category_orders={"color": [str(d) for d in range(10)]},
    labels={"x": "z[0]", "y": "z[1]", "color": "digit"},
    title="VAE codes of the test digits",
    width=620,
    height=520,
).show()

nearest_label = train_labels[torch.cdist(test_mu, train_mu).argmin(dim=1)]
nearest_accuracy = (nearest_label == test_labels).float().mean().item()
chance = (train_labels.bincount() / len(train_labels) * test_labels.bincount() / len(test_labels)).sum().item()
print(f"nearest-training-code label accuracy: {nearest_accuracy:.1%} (chance: {chance:.1%})")
print(
    f"codes: mean {[round(m, 2) for m in test_mu.mean(0).tolist()]}, "
    f"standard deviation {[round(s, 2) for s in test_mu.std(0).tolist()]}"
)
assert nearest_accuracy > 0.65 and abs(chance - 0.10) < 0.01
assert (test_mu.mean(0).abs() < 0.3).all() and ((0.7 < test_mu.std(0)) & (test_mu.std(0) < 1.5)).all()

# %% [markdown]
# Because the codes spread over roughly a standard normal, we can walk across the plane and decode as
# we go: an 8 x 8 grid of codes from $-2$ to $2$ in each coordinate. Neighbouring images change
# gradually: the mean squared difference between two neighbours is on average less than a quarter of
# that between two images picked anywhere in the grid, and never more than half of it.

# %%
axis = torch.linspace(-2, 2, 8)
grid_codes = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
with torch.no_grad():
    grid_images = vae.decoder(grid_codes)
imshow(tile(grid_images, rows=8), title="Decoding a grid of codes in [-2, 2]^2", height=520).show()

grid = grid_images.reshape(8, 8, -1)
down, across = (grid[1:] - grid[:-1]).pow(2).mean(-1), (grid[:, 1:] - grid[:, :-1]).pow(2).mean(-1)
neighbours = torch.cat([down.flatten(), across.flatten()])
any_pair = (torch.cdist(grid.flatten(0, 1), grid.flatten(0, 1)).pow(2) / grid.shape[-1]).mean()
print(
    f"mean squared difference: neighbours {neighbours.mean():.4f} on average, {neighbours.max():.4f} at most; "
    f"any two grid images {any_pair:.4f}"
)
assert neighbours.mean() < any_pair / 4 and neighbours.max() < any_pair / 2

# %% [markdown]
# And sampling is now just "draw $z \sim \mathcal N(0, I)$, decode". The samples' average brightness
# matches the data's to within 0.03 (both are within 0.01 of 0.30: most of each image is background).

# %%
torch.manual_seed(1)
with torch.no_grad():
    vae_samples = vae.decoder(torch.randn(500, 2))
image_grid(vae_samples[:24, 0], rows=3, title="VAE samples: z ~ N(0, I), decoded", height=330).show()
print(f"mean pixel: samples {vae_samples.mean():.3f}, data {train_images.mean():.3f}")
assert abs(vae_samples.mean() - train_images.mean()) < 0.03 and abs(train_images.mean() - 0.30) < 0.01

# %% [markdown]
# ### Interpolating between two digits
#
# Take a test 0 and a test 7, encode both, and decode points on the straight line between their codes.
# In the VAE's plane the path crosses whatever digits lie between the two codes in the scatter plot
# above, so the 0 turns into other digits on its way to the 7: at least three of the ten images are
# nearest to a training digit that is neither a 0 nor a 7. In the autoencoder's 8-dimensional space the
# path has room to pass between other digits' codes: fewer of its images are nearest to another digit,
# and they stay closer to a plain cross-fade of the two end images (less than three quarters of the
# VAE's mean squared distance from it). Neither is "right": the VAE's code is organised by where
# digits sit in the plane, the autoencoder's is not organised at all beyond what reconstruction needs.


# %%
def interpolate(encode, decode, start: Tensor, end: Tensor, steps: int = 10) -> Tensor:
    """Decode `steps` codes evenly spaced on the segment between the codes of two images."""
    with torch.no_grad():
        z0, z1 = encode(start[None]), encode(end[None])
        weights = torch.linspace(0, 1, steps)[:, None]
        return decode((1 - weights) * z0 + weights * z1)


zero, seven = test_images[test_labels == 0][0], test_images[test_labels == 7][0]
vae_path = interpolate(lambda x: vae.encode(x)[0], vae.decoder, zero, seven)
ae_path = interpolate(autoencoder.encoder, autoencoder.decoder, zero, seven)
image_grid(
    torch.cat([vae_path, ae_path])[:, 0], rows=2, title="From a 0 to a 7: VAE (top), autoencoder (bottom)", height=260
).show()

cross_fade = torch.stack([(1 - w) * zero + w * seven for w in torch.linspace(0, 1, 10)])
others, fade_distance = {}, {}
for name, path in (("VAE", vae_path), ("autoencoder", ae_path)):
    labels = train_labels[torch.cdist(path.flatten(1), train_images.flatten(1)).argmin(dim=1)]
    others[name] = int(((labels != 0) & (labels != 7)).sum())
    fade_distance[name] = (path - cross_fade).pow(2).mean().item()
    print(
        f"{name}: nearest training digits {labels.tolist()}, mean squared distance from the cross-fade "
        f"{fade_distance[name]:.4f}"
    )
assert others["VAE"] >= 3 and others["autoencoder"] < others["VAE"]
assert fade_distance["autoencoder"] < 0.75 * fade_distance["VAE"]

# %% [markdown]
# ### How likely is a digit? The VAE as a density model
#
# Read as a generative model, the VAE says: draw $z \sim \mathcal N(0, I)$, decode it, and add Gaussian
# noise of variance $s^2 = \beta / 2$ to each pixel (the reading of $\beta$ above). That defines a density
# $p(x) = \mathbb E_{z \sim \mathcal N(0, I)}[p(x \mid z)]$ for every image, and a good generative model
# gives test images a high one. Averaging $p(x \mid z)$ over codes from the prior is hopeless: almost
# every such code decodes to some other digit. **Importance sampling** draws the codes from the encoder's
# Gaussian $q(z \mid x)$ instead, where $p(x \mid z)$ is large, and reweights:
#
# $$p(x) = \mathbb E_{z \sim q(z \mid x)}\!\left[\frac{p(x \mid z)\, p(z)}{q(z \mid x)}\right]
#   \approx \frac1K \sum_{k=1}^K \frac{p(x \mid z_k)\, p(z_k)}{q(z_k \mid x)}.$$
#
# The log of that average, with $K$ codes, is a lower bound on $\log p(x)$ on average, which tightens as
# $K$ grows (Burda et al., 2016); with $K = 1$ its average is the ELBO, the objective the VAE was trained
# on. Write the estimate for a batch of images, with $K$ codes per image picked by `noise` of shape
# `(K, batch, latent)` through your `reparameterise`. Keep every density's normalising constant: a
# Gaussian of variance $v$ in $n$ dimensions has $\log$-density $-\lVert x - m \rVert^2 / 2v -
# \tfrac n2 \log(2\pi v)$. And stay in log space throughout: a single ratio here can be $e^{-1000}$.


# %% [exercise] log_likelihood_estimate difficulty=3 importance=3 minutes=30
def log_likelihood_estimate(
    model: nn.Module, images: Float[Tensor, "batch 1 h w"], noise: Float[Tensor, "samples batch latent"], beta: float
) -> Float[Tensor, " batch"]:
    """For each image, an importance-sampled estimate of log p(x) under the VAE read as a generative model: the
    prior N(0, I) on codes, and pixels with Gaussian noise of variance beta / 2 around the decoded image. It is
    the log of the mean, over the codes that `noise` picks from the image's Gaussian, of p(x | z) p(z) / q(z | x);
    finite even where every one of those ratios underflows."""
    raise NotImplementedError()


# %% [hint]
# Work in logs: compute the log of each ratio, one number per code and image (shape `(K, batch)`), as a
# sum of three log-densities. Which two of them are Gaussians over the code, and which one over the pixels?
# Then the mean over $K$ of the ratios themselves, taken without leaving log space: which identity gives
# $\log \sum_k e^{a_k}$ without computing any $e^{a_k}$ on its own?

# %% [hint]
# Shapes: `reparameterise(mu, logvar, noise)` broadcasts to `(K, batch, latent)`; flatten the first two
# axes to decode, and restore them with `.unflatten(0, ...)`. Since $z - \mu = \sigma \varepsilon$, the
# exponent of $q(z \mid x)$ needs only the noise; its normalising constant includes $-\tfrac12 \log\sigma^2$
# per coordinate. `torch.logsumexp(..., dim=0) - math.log(K)` is the log of the mean.

# %% [markdown]
# On the test digits, with the $\beta = 0.2$ VAE, the average estimate grows with the number of codes,
# by less each time: from 1 code to 10 it gains more than from 10 to 100, as a bound that converges
# should.

# %%
torch.manual_seed(4)
with torch.no_grad():
    log_p = {
        k: log_likelihood_estimate(vae, test_images, torch.randn(k, len(test_images), 2), 0.2).mean().item()
        for k in (1, 10, 100)
    }
print("mean estimated log p(x) per test digit, by number of codes:", {k: round(v, 2) for k, v in log_p.items()})
assert log_p[1] < log_p[10] < log_p[100] and log_p[100] - log_p[10] < log_p[10] - log_p[1]

# %% [markdown]
# ### Try it: no KL term, and a heavy one
#
# Train the same VAE twice more, with $\beta = 0$ and with $\beta = 5$, 25 times the weight we used.
# Before you run the cell, predict for each: how large is the KL per image compared with the $\beta = 0.2$
# model's, how spread out are the codes $\mu(x)$ of the test digits (their standard deviation on each
# axis, which was about 1), how wide is each image's own Gaussian ($\sigma$), and how good are the
# reconstructions compared with the mean-image baseline? Think of $\beta = 2s^2$: what does a decoder
# noise level of $s^2 = 2.5$ say about pixels whose variance is about 0.1?


# %%
def code_spread(model: VAE) -> tuple[Tensor, float]:
    """The standard deviation of the test digits' codes mu on each axis, and their mean sigma."""
    with torch.no_grad():
        mu, logvar = model.encode(test_images)
    return mu.std(0), (0.5 * logvar).exp().mean().item()


knob = {}
for beta in (0.0, 5.0):
    torch.manual_seed(0)
    knob[beta] = VAE(latent_dim=2)
    train_vae(knob[beta], train_images, epochs=30, beta=beta)
for beta, model in ((0.2, vae), *knob.items()):
    stats, (spread, sigma) = vae_report(model), code_spread(model)
    print(
        f"beta = {beta}: MSE {stats['mse']:.4f}, KL {stats['kl']:.2f}, code spread "
        f"{[round(x, 3) for x in spread.tolist()]}, mean sigma {sigma:.3f}"
    )

# %% [markdown]
# With no KL term the VAE turns back into an autoencoder: each image's Gaussian shrinks to a point
# (a mean $\sigma$ below 0.05), the codes spread well beyond the prior (a standard deviation above 1.5
# on both axes), and the KL grows to more than three times the $\beta = 0.2$ model's. With $\beta = 5$
# the opposite happens, all the way: every code sits on the prior (a KL below 0.01 nats, the codes' standard
# deviation below 0.05 on each axis), the decoder ignores its input and draws the average digit, and the error equals
# the mean-image baseline to within 0.003. This is **posterior collapse**: the loss says that no image is
# worth the cost of a code.

# %%
(spread_0, sigma_0), (spread_5, _) = code_spread(knob[0.0]), code_spread(knob[5.0])
stats_0, stats_5 = vae_report(knob[0.0]), vae_report(knob[5.0])
assert sigma_0 < 0.05 and (spread_0 > 1.5).all() and stats_0["kl"] > 3 * vae_stats["kl"]
assert stats_5["kl"] < 0.01 and (spread_5 < 0.05).all() and abs(stats_5["mse"] - baseline_mse) < 0.003

# %% [markdown]
# ## 3. A GAN
#
# A GAN (Goodfellow et al., 2014) learns to generate without ever reconstructing. A **generator** $G$
# maps noise $z \sim \mathcal N(0, I)$ to an image; a **discriminator** $D$ maps an image to the
# probability that it is real. They play a game:
#
# $$\min_G \max_D \;\; \mathbb E_{x \sim \text{data}}\big[\log D(x)\big]
#   + \mathbb E_{z}\big[\log\big(1 - D(G(z))\big)\big].$$
#
# $D$ is trained as an ordinary binary classifier (real = 1, fake = 0); $G$ is trained to make $D$ wrong.
# At the game's equilibrium the generator's images have the data's distribution and $D$ outputs
# $\tfrac12$ everywhere.
#
# We build a **DCGAN** (Radford et al., 2015), a recipe that made GAN training on images much more
# reliable: no pooling or fully connected hidden layers, but strided convolutions in $D$ and
# transposed convolutions in $G$; batch normalisation in both; ReLU in $G$ and LeakyReLU (slope 0.2)
# in $D$; weights initialised from $\mathcal N(0, 0.02^2)$; Adam with $\beta_1 = 0.5$. DCGAN's
# generator ends in $\tanh$ for data scaled to $[-1, 1]$; our pixels are in $[0, 1]$, so ours ends in a
# sigmoid.
#
# ### The generator
#
# Store `latent_dim` as `self.latent_dim` (the training loop reads it). With `c = channels`, the
# layers of `self.layers`, an `nn.Sequential`, are:
#
# | layer | shape after it |
# |---|---|
# | `Linear(latent_dim, 2c * 4 * 4, bias=False)` | (2c·16,) |
# | `Unflatten(1, (2c, 4, 4))` | (2c, 4, 4) |
# | `BatchNorm2d(2c)`, `ReLU` | (2c, 4, 4) |
# | `ConvTranspose2d(2c, c, kernel_size=4, stride=2, padding=1, bias=False)`, `BatchNorm2d(c)`, `ReLU` | (c, 8, 8) |
# | `ConvTranspose2d(c, 1, kernel_size=4, stride=2, padding=1)`, `Sigmoid` | (1, 16, 16) |
#
# The layers followed by batch norm have no bias: batch norm subtracts the mean, which would cancel it.


# %% [exercise] Generator difficulty=2 importance=4 minutes=10
class Generator(nn.Module):
    """DCGAN-style generator: a latent vector to a 16x16 image, upsampling with transposed convolutions."""

    def __init__(self, latent_dim: int, channels: int = 32):
        super().__init__()
        raise NotImplementedError()  # store self.latent_dim (the training loop reads it); build self.layers

    def forward(self, z: Float[Tensor, "batch latent"]) -> Float[Tensor, "batch 1 16 16"]:
        raise NotImplementedError()


# %% [hint]
# Each comma-separated layer of the table is one entry of the `nn.Sequential`, in the table's order:
# count them before you write any. Which of them are built without a bias, and why? And the training loop
# reads one attribute that is not a layer.

# %% [hint]
# A skeleton, with `c = channels`:
#
# ```python
# self.latent_dim = latent_dim
# self.layers = nn.Sequential(
#     nn.Linear(latent_dim, 2 * c * 4 * 4, bias=False),
#     nn.Unflatten(1, (2 * c, 4, 4)),
#     ...,  # BatchNorm2d, ReLU; the first transposed convolution, BatchNorm2d, ReLU; the last one, Sigmoid
# )
# ```

# %% [markdown]
# ### The discriminator
#
# The discriminator mirrors the generator, and returns a **logit** per image (shape `(batch,)`), not a
# probability: the losses below apply the sigmoid themselves, in a numerically stable way.
#
# | layer | shape after it |
# |---|---|
# | `Conv2d(1, c, kernel_size=4, stride=2, padding=1)`, `LeakyReLU(0.2)` | (c, 8, 8) |
# | `Conv2d(c, 2c, kernel_size=4, stride=2, padding=1, bias=False)`, `BatchNorm2d(2c)`, `LeakyReLU(0.2)` | (2c, 4, 4) |
# | `Flatten()`, `Linear(2c * 4 * 4, 1)` | (1,) |


# %% [exercise] Discriminator difficulty=2 importance=4 minutes=10
class Discriminator(nn.Module):
    """DCGAN-style discriminator: a 16x16 image to one logit (high: "real"), downsampling with strided
    convolutions and LeakyReLU."""

    def __init__(self, channels: int = 32):
        super().__init__()
        raise NotImplementedError()  # build self.layers

    def forward(self, x: Float[Tensor, "batch 1 16 16"]) -> Float[Tensor, " batch"]:
        raise NotImplementedError()


# %% [hint]
# Seven entries in `self.layers`, one per comma-separated layer of the table. The last one gives
# shape `(batch, 1)`: which axis must go to return `(batch,)`, and what would a batch of one image
# lose if you dropped every axis of size 1?

# %% [hint]
# `.squeeze(-1)` removes only the last axis; a bare `.squeeze()` also removes the batch axis when the
# batch holds one image. LeakyReLU's default slope is 0.01: pass 0.2.

# %% [markdown]
# ### The two losses
#
# Write $D = \mathrm{sigmoid}(\ell)$ for a logit $\ell$. The discriminator's loss is the binary
# cross-entropy with real images labelled 1 and fakes labelled 0:
#
# $$\mathcal L_D = -\operatorname{mean}_{\text{real}} \log D(x)
#   \;-\; \operatorname{mean}_{\text{fake}} \log\big(1 - D(G(z))\big).$$
#
# For the generator, the game says minimise $\log(1 - D(G(z)))$. Early in training, though, $D$ rejects
# the fakes easily, $D(G(z)) \approx 0$, and that function is flat there: the generator gets almost no
# gradient exactly when it most needs one. Goodfellow et al. proposed the **non-saturating** loss
# instead, which has the same fixed point but a strong gradient where the fakes are bad:
#
# $$\mathcal L_G = -\operatorname{mean}_{\text{fake}} \log D(G(z)).$$
#
# Compute both from logits without forming $\log(\mathrm{sigmoid}(\ell))$ directly: for $\ell = -200$,
# $\mathrm{sigmoid}(\ell)$ rounds to 0 and its log to $-\infty$. Use the identities
# $-\log \mathrm{sigmoid}(\ell) = \mathrm{softplus}(-\ell)$ and $-\log(1 - \mathrm{sigmoid}(\ell)) =
# \mathrm{softplus}(\ell)$, with `F.softplus` (or `F.binary_cross_entropy_with_logits`, which does the
# same).


# %% [exercise] discriminator_loss difficulty=2 importance=4 minutes=10
def discriminator_loss(real_logits: Float[Tensor, " batch"], fake_logits: Float[Tensor, " batch"]) -> Float[Tensor, ""]:
    """The discriminator's binary cross-entropy, real images labelled 1 and fakes 0, from its logits: each
    batch averaged on its own (the two may differ in size) and the two averages added. Finite for any logits."""
    raise NotImplementedError()


# %% [hint]
# Match each of the two terms of $\mathcal L_D$ with one of the two identities above, minding the signs.
# Average each batch on its own: the real and fake batches need not be the same size, so their terms
# cannot be added element by element.

# %% [hint]
# Real images: the mean over the batch of the softplus of *minus* their logits. Fakes: the mean of the
# softplus of their logits. The loss is the sum of the two means.


# %% [exercise] generator_loss difficulty=1 importance=4 minutes=5
def generator_loss(fake_logits: Float[Tensor, " batch"]) -> Float[Tensor, ""]:
    """The non-saturating generator loss, from the discriminator's logits on a batch of fakes: the binary
    cross-entropy with every fake labelled real, averaged over the batch. Finite for any logits."""
    raise NotImplementedError()


# %% [hint]
# The generator wants every fake called real. Which of the two identities turns $-\log D$ into a
# softplus, and of which sign of the logit?

# %% [hint]
# It is the real-image term of the discriminator's loss, applied to the fakes' logits.

# %% [markdown]
# Why the non-saturating loss? Take a fake that $D$ rejects confidently, with logit $-6$ ($D \approx
# 0.0025$), and compare the gradient each generator loss sends back through that logit. The saturating
# loss $\log(1 - D)$ gives about $0.0025$; yours gives about $1$, four hundred times more. And here is
# why the losses must be computed from logits: at $\ell = -200$ the sigmoid rounds to exactly 0 and its
# log to $-\infty$.

# %%
logit = torch.tensor([-6.0], requires_grad=True)
(saturating_gradient,) = torch.autograd.grad(-F.softplus(logit).mean(), logit)  # log(1 - sigmoid) = -softplus
(non_saturating_gradient,) = torch.autograd.grad(generator_loss(logit), logit)
print(
    f"gradient at logit -6: saturating {saturating_gradient.item():.4f}, "
    f"non-saturating {non_saturating_gradient.item():.4f}"
)
assert abs(saturating_gradient.item()) < 0.003 and abs(non_saturating_gradient.item()) > 0.99
assert torch.sigmoid(torch.tensor(-200.0)) == 0 and torch.sigmoid(torch.tensor(-200.0)).log() == -math.inf

# %% [markdown]
# ### DCGAN initialisation
#
# DCGAN initialises every convolution, transposed convolution and linear weight from
# $\mathcal N(0, 0.02^2)$, every batch-norm scale from $\mathcal N(1, 0.02^2)$, and every bias (and
# batch-norm shift) to zero. Write a function that does this in place to any model; `model.modules()`
# visits every submodule, nested ones included. The check applies it to a model and compares the
# statistics of its weights with these targets.


# %% [exercise] initialise_weights difficulty=1 importance=2 minutes=10
def initialise_weights(model: nn.Module) -> None:
    """DCGAN initialisation, in place: weights of every convolution, transposed convolution and linear
    layer from N(0, 0.02^2); batch-norm scales from N(1, 0.02^2); every bias (and batch-norm shift) zero."""
    raise NotImplementedError()


# %% [hint]
# Sort every submodule, nested ones included, into three kinds: a layer whose weight is drawn from
# $\mathcal N(0, 0.02^2)$, a batch norm, or something with nothing to set. Not every layer has a bias
# (the generator's layers before a batch norm were built without one): what is its `bias` then?

# %% [hint]
# `isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))` picks the first kind;
# `nn.init.normal_(tensor, mean, std)` and `nn.init.zeros_(tensor)` fill a tensor in place. The third
# argument of `normal_` is the standard deviation, not the variance. A layer built with `bias=False`
# has `bias` None: check before zeroing it.

# %% [markdown]
# ### One round of the game
#
# Each round trains $D$ on a batch of real images and a batch of fakes, then trains $G$ through $D$.
# Write `gan_step`, which plays one round with the two networks and their two optimizers, given a
# batch of real images and the codes $z$ to make the fakes from. Three things decide whether it is right,
# and none of them shows in the losses it returns:
#
# 1. **$D$'s update must not reach $G$.** $D$'s loss is computed on the fakes, which are a function of
#    $G$'s parameters: backpropagating it as it is fills $G$'s gradients too (and spends the graph
#    through $G$ that $G$'s own update needs). Cut the fakes off from $G$'s graph for $D$'s loss
#    (`Tensor.detach`), and only there.
# 2. **$G$'s update must not move $D$.** $G$'s loss is backpropagated through $D$, which fills $D$'s
#    gradients as well; that is harmless only if $D$'s optimizer never applies them. $G$'s update uses
#    the same fakes, not detached, and $D$ as it is *after* its own update.
# 3. **Gradients accumulate.** Whatever a network's `.grad` holds when its optimizer steps is applied,
#    including what the previous round, or the other network's loss, left there.
#
# Pass the real and the fake batches through $D$ separately, as DCGAN does (batch norm then normalises
# each with its own statistics). Return a dict with the two losses as floats under `"discriminator loss"`
# and `"generator loss"`, and under `"D accuracy"` the discriminator's accuracy *before* its update: the
# fraction of real images with a positive logit and the fraction of fakes with a negative one, averaged
# (the two batches may differ in size). The check records each network's gradients at the moment its
# optimizer steps.


# %% [exercise] gan_step difficulty=3 importance=5 minutes=25
def gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    real: Float[Tensor, "batch 1 16 16"],
    z: Float[Tensor, "n latent"],
) -> dict[str, float]:
    """One round of the game on a batch: a discriminator update on `real` and on the fakes generated from `z`
    that leaves the generator untouched, then a generator update through the discriminator on the same fakes
    that leaves the discriminator untouched. Returns the two losses and the discriminator's accuracy before its
    update, under the keys "discriminator loss", "generator loss" and "D accuracy"."""
    raise NotImplementedError()


# %% [hint]
# Draw the computation graph: $z \to G \to$ fakes $\to D \to$ logits $\to$ loss, for each of the two
# losses. For each backward pass, which parameters does it reach, and which of those does the optimizer
# that steps next own? Decide where the one `detach` goes, and where each `zero_grad` must come so that
# each optimizer applies only its own network's gradients from its own loss.

# %% [hint]
# The order of operations:
#
# ```python
# fake = generator(z)
# real_logits, fake_logits = ...  # D on the real batch, and on the fakes cut off from G
# ...  # D's loss; optimizer_d: zero_grad, backward, step
# ...  # G's loss from D's logits on the fakes (not cut off); optimizer_g: zero_grad, backward, step
# ...  # the accuracy from real_logits and fake_logits, and the dict of floats
# ```

# %% [markdown]
# ### Training the GAN
#
# The loop calls your `gan_step` on every batch, with fresh codes each time. GAN losses need not go
# steadily down, because each player's loss depends on the other. In this run, $D$ wins the opening
# easily: within its first ten steps it classifies a whole batch of real and fake images correctly.
# Then the generator catches up, and $D$'s loss *rises*: averaged over the last ten epochs it is more
# than 1.5 times its average over the first.


# %%
def train_gan(
    generator: Generator,
    discriminator: Discriminator,
    images: Tensor,
    epochs: int,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Play one round of gan_step on every batch; return the losses and D's accuracy of every round."""
    torch.manual_seed(seed)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    history = {"discriminator loss": [], "generator loss": [], "D accuracy": []}
    for _ in tqdm(range(epochs), desc="GAN"):
        for real in images[torch.randperm(len(images))].split(batch_size):
            results = gan_step(
                generator, discriminator, opt_g, opt_d, real, torch.randn(len(real), generator.latent_dim)
            )
            for key in history:
                history[key].append(results[key])
    return history


torch.manual_seed(0)
generator, discriminator = Generator(latent_dim=16), Discriminator()
initialise_weights(generator)
initialise_weights(discriminator)
gan_history = train_gan(generator, discriminator, train_images, epochs=20)
line({k: gan_history[k] for k in ("discriminator loss", "generator loss")}, title="GAN losses per step").show()

steps_per_epoch = len(gan_history["discriminator loss"]) // 20
d_loss_first = sum(gan_history["discriminator loss"][:steps_per_epoch]) / steps_per_epoch
d_loss_last = sum(gan_history["discriminator loss"][-10 * steps_per_epoch :]) / (10 * steps_per_epoch)
print(
    f"D's best accuracy in its first ten steps: {max(gan_history['D accuracy'][:10]):.0%}; D's mean loss: "
    f"first epoch {d_loss_first:.3f}, last ten epochs {d_loss_last:.3f}"
)
assert max(gan_history["D accuracy"][:10]) == 1.0
assert d_loss_last > 1.5 * d_loss_first

# %% [markdown]
# ### Samples, and what we can check about them
#
# Judging generated images is hard; here are three facts that a working GAN shows and a broken one
# (collapsed to one image, or stuck producing blank or noisy images) does not.
#
# 1. The discriminator, in evaluation mode on 500 training images and 500 fresh samples, is far from
#    perfect: its accuracy on real versus fake is below 85%. (Perfect discrimination would mean the
#    generator lost the game.)
# 2. The samples' average brightness is within 0.05 of the data's.
# 3. The samples vary: each pixel's standard deviation across samples is, on average, more than half
#    the data's. A generator that collapsed onto a few images would have nearly none.

# %%
generator.eval()
discriminator.eval()
torch.manual_seed(2)
with torch.no_grad():
    gan_samples = generator(torch.randn(500, 16))
    eval_accuracy = (
        (discriminator(train_images[:500]) > 0).float().mean() + (discriminator(gan_samples) < 0).float().mean()
    ).item() / 2
image_grid(gan_samples[:24, 0], rows=3, title="GAN samples", height=330).show()

sample_spread, data_spread = gan_samples.std(0).mean().item(), train_images.std(0).mean().item()
print(f"D accuracy, real vs fake: {eval_accuracy:.1%}")
print(f"mean pixel: samples {gan_samples.mean():.3f}, data {train_images.mean():.3f}")
print(f"per-pixel std across images: samples {sample_spread:.3f}, data {data_spread:.3f}")
assert eval_accuracy < 0.85
assert abs(gan_samples.mean() - train_images.mean()) < 0.05
assert sample_spread > data_spread / 2

# %% [markdown]
# ### Walking between two samples: along an arc
#
# To morph one generated digit into another we decode codes between theirs. The straight line is the
# obvious path, but it leaves the region the generator was trained on. A code $z \sim \mathcal N(0, I)$
# in 16 dimensions has a norm close to $\sqrt{16} = 4$ (the probability sits in a thin shell, not near 0),
# while the midpoint of two independent codes has a norm of about $4/\sqrt2 \approx 2.8$: only about one
# code in twenty that the generator saw during training was that short. **Spherical interpolation**
# (slerp; Shoemake, 1985, for rotations, and White, 2016, for generative models) walks along the arc
# instead.
#
# Write it as a combination $a(t)\, z_0 + b(t)\, z_1$, and find the coefficients from the case of two
# unit codes at an angle $\Omega$: there the point at fraction $t$ must be the unit vector at angle
# $t\Omega$ from $z_0$, in the plane of $z_0$ and $z_1$ (so $t = 0$ gives $z_0$ and $t = 1$ gives $z_1$).
# Use the same coefficients, with the angle between the directions of $z_0$ and $z_1$, for codes of any
# norm: for two codes of equal norm the path then keeps that norm all the way. Take one code per
# argument and a 1D tensor of fractions; return one row per fraction. The check includes two copies of
# the same code: the answer must be that code, not NaN.


# %% [exercise] slerp difficulty=3 importance=3 minutes=25
def slerp(
    z0: Float[Tensor, " latent"], z1: Float[Tensor, " latent"], weights: Float[Tensor, " steps"]
) -> Float[Tensor, "steps latent"]:
    """Spherical interpolation: for each weight t, the point a fraction t of the way along the arc from z0 (t = 0)
    to z1 (t = 1), which keeps a constant norm when theirs are equal. Codes pointing the same way (to float
    precision) give the straight line between them; never NaN for two nonzero codes that are not opposite."""
    raise NotImplementedError()


# %% [hint]
# In the plane of two unit codes, build an orthonormal pair: $u = z_0$, and $v$, the part of $z_1$
# orthogonal to $z_0$, rescaled to length 1. The point you want is $\cos(t\Omega)\, u + \sin(t\Omega)\, v$;
# write $v$ back in terms of $z_0$ and $z_1$ and collect the coefficients (a sine identity tidies the first
# one). Then ask what `torch.arccos` returns for an argument of 1.0000001, and what your coefficients
# become when the angle is 0.

# %% [hint]
# The coefficients come out as $a(t) = \sin((1 - t)\Omega) / \sin\Omega$ and $b(t) = \sin(t\Omega) /
# \sin\Omega$. A skeleton:
#
# ```python
# cosine = ...  # F.normalize each code, dot product, then clamp into [-1, 1]
# angle = torch.arccos(cosine)
# t = weights[:, None]  # a column: one row per weight
# if angle < 1e-4:  # sin(angle) is about 0: the arc is the segment
#     return ...  # the straight line
# return ...  # a(t) * z0 + b(t) * z1, with torch.sin
# ```

# %% [markdown]
# The norms, on a thousand pairs of codes: the straight line's midpoints are about 0.7 times as long as
# the codes themselves (between 0.65 and 0.75), the arc's midpoints as long (within 2%). Then a walk
# between two generated digits along the arc.

# %%
torch.manual_seed(3)
starts, ends = torch.randn(1000, 16), torch.randn(1000, 16)
typical = torch.cat([starts, ends]).norm(dim=1).mean()
lerp_ratio = ((starts + ends) / 2).norm(dim=1).mean() / typical
slerp_ratio = (
    torch.stack([slerp(a, b, torch.tensor([0.5]))[0] for a, b in zip(starts, ends)]).norm(dim=1).mean() / typical
)
short = (torch.cat([starts, ends]).norm(dim=1) < 2.8).float().mean().item()
print(
    f"mean norm of a code {typical:.2f}, {short:.1%} of codes shorter than 2.8; midpoint norm over a code's norm: "
    f"straight line {lerp_ratio:.3f}, arc {slerp_ratio:.3f}"
)
assert abs(typical - 4) < 0.2 and 0.03 < short < 0.07
assert 0.65 < lerp_ratio < 0.75 and abs(slerp_ratio - 1) < 0.02

with torch.no_grad():
    walk = generator(slerp(starts[0], starts[1], torch.linspace(0, 1, 10)))
image_grid(walk[:, 0], rows=1, title="From one GAN sample to another along the arc", height=160).show()

# %% [markdown]
# ### Try it: the discriminator's step without `detach`
#
# Take a fresh generator and discriminator, make a batch of fakes, and backpropagate the discriminator's
# loss on them *without* detaching them. Before you run it, predict: do the generator's parameters now
# have gradients? And what happens when the generator's update then backpropagates its own loss through
# the same fakes?

# %%
torch.manual_seed(0)
fresh_generator, fresh_discriminator = Generator(latent_dim=16), Discriminator()
fakes = fresh_generator(torch.randn(8, 16))
discriminator_loss(fresh_discriminator(train_images[:8]), fresh_discriminator(fakes)).backward()
leaked = sum(p.grad.abs().sum().item() for p in fresh_generator.parameters() if p.grad is not None)
try:
    generator_loss(fresh_discriminator(fakes)).backward()
    second_backward = "ran"
except RuntimeError as error:
    second_backward = f"failed: {str(error).split('.')[0]}"
print(f"total |gradient| that the discriminator's loss left in the generator: {leaked:.3f}")
print(f"the generator's backward through the same fakes {second_backward}")
assert leaked > 0 and "second time" in second_backward

# %% [markdown]
# The discriminator's loss reached every parameter of the generator, pushing it to make its fakes *easier*
# to detect, and it freed the graph through the generator on the way, so the generator's own backward
# fails. Had the loop made new fakes for the generator instead, nothing would fail: the generator's
# `zero_grad` would hide the leak, and it would only cost a backward pass through $G$ every step. Your
# `gan_step` leaves the generator's gradients alone, which the check tested at the moment $D$'s
# optimizer stepped.

# %% [markdown]
# If you skipped part 3, set the flag in the next cell to True and run it: the bonus runs a generator's
# layers by hand, and the cell builds one from the reference (untrained: any weights do for that test).
# Leave it False otherwise: it would replace your trained generator.

# %%
# Fallback: the reference generator, only for learners who skipped part 3.
SKIPPED_PART_3 = False
if SKIPPED_PART_3:
    from solutions.chapter0_fundamentals.vaes_and_gans import Generator, initialise_weights

    torch.manual_seed(0)
    generator = Generator(latent_dim=16)
    initialise_weights(generator)
    generator.eval()

# %% [markdown]
# ## Bonus: the transposed convolution from scratch
#
# Both decoders and the generator grew images with `nn.ConvTranspose2d`. Implement the operation,
# matching `torch.nn.functional.conv_transpose2d`: for input `x` of shape `(batch, in, H, W)` and a
# weight of shape `(in, out, k_h, k_w)` (note: *in* channels first, the opposite of `nn.Conv2d`'s
# weight),
#
# 1. start from a zero canvas of shape `(batch, out, (H - 1) * stride + k_h, (W - 1) * stride + k_w)`;
# 2. for every input pixel $(i, j)$, add $\sum_{c} x[b, c, i, j] \cdot \text{weight}[c, :, :, :]$ into
#    the $k_h \times k_w$ window whose top-left corner is $(i \cdot \text{stride}, j \cdot \text{stride})$;
# 3. cut `padding` rows and columns off every edge, and add the bias (if any) to each output channel.
#
# Loop over the kernel's $k_h k_w$ positions, not over the pixels: kernel entry $(a, b)$ sends every
# input pixel $(i, j)$ to the output pixel $(i \cdot \text{stride} + a, j \cdot \text{stride} + b)$,
# which for all pixels at once is a strided slice of the canvas.
#
# Why "transposed"? An ordinary convolution is a linear map, a matrix $M$ from input pixels to output
# pixels. This operation is the map $M^\top$, which is also why it computes the gradient of a
# convolution with respect to its input.


# %% [exercise] conv_transpose2d difficulty=4 importance=2 minutes=30
def conv_transpose2d(
    x: Float[Tensor, "batch in_channels height width"],
    weight: Float[Tensor, "in_channels out_channels kernel_height kernel_width"],
    bias: Float[Tensor, " out_channels"] | None,
    stride: int,
    padding: int,
) -> Float[Tensor, "batch out_channels out_height out_width"]:
    """The transposed convolution of x with weight (in_channels first), as torch.nn.functional.conv_transpose2d
    computes it, with `padding` rows and columns cut from every edge of the output and the bias (if any)
    added to each output channel. Kernels need not be square."""
    raise NotImplementedError()


# %% [hint]
# Work the first hand-checked case on paper: input [[1, 2]], a 2x2 kernel of ones, stride 1. The output
# is 2x3, and its middle column receives from both pixels. Then, for one kernel position (a, b): which
# matrix, from input channels to output channels, multiplies every input pixel's channel vector, and
# which output pixels receive the results? They form a strided slice of the canvas that starts at
# (a, b). Read the kernel's height and width separately: kernels need not be square.

# %% [hint]
# For kernel position `(a, b)`: `torch.einsum("bihw,io->bohw", x, weight[:, :, a, b])` is what every
# input pixel contributes, and
# `canvas[:, :, a : a + (H - 1) * stride + 1 : stride, b : b + (W - 1) * stride + 1 : stride]`
# is where it goes (`+=`).

# %% [hint]
# Cutting the padding: `canvas[:, :, padding : canvas.shape[2] - padding, padding : canvas.shape[3] - padding]`
# (a plain `padding:-padding` breaks when `padding` is 0).

# %% [markdown]
# Autograd can test the claim that this is the transpose of a convolution: push a gradient back through
# an ordinary strided convolution, and the gradient with respect to its input is the transposed
# convolution of that gradient, with the same weight tensor read as (in, out) the other way round.

# %%
torch.manual_seed(0)
image, kernel = torch.randn(2, 3, 16, 16, requires_grad=True), torch.randn(5, 3, 4, 4)
output_gradient = torch.randn(2, 5, 8, 8)
(input_gradient,) = torch.autograd.grad(F.conv2d(image, kernel, stride=2, padding=1), image, output_gradient)
assert torch.allclose(conv_transpose2d(output_gradient, kernel, None, 2, 1), input_gradient, atol=1e-4)

# %% [markdown]
# As a final test, run the trained generator's layers by hand, with your transposed convolution in
# place of `nn.ConvTranspose2d`: the images come out the same.


# %%
def generate_by_hand(z: Tensor) -> Tensor:
    h = z
    for layer in generator.layers:
        if isinstance(layer, nn.ConvTranspose2d):
            h = conv_transpose2d(h, layer.weight, layer.bias, layer.stride[0], layer.padding[0])
        else:
            h = layer(h)
    return h


with torch.no_grad():
    z = torch.randn(8, 16)
    assert torch.allclose(generate_by_hand(z), generator(z), atol=1e-5)

# %% [markdown]
# ## Summary
#
# - **Autoencoders** learn a compact code by reconstruction through a bottleneck. Eight numbers were
#   enough to rebuild 16x16 digits with a quarter of a naive baseline's error, but the code space has
#   holes: random codes land far from the training codes and decode to images far from any real digit.
# - **VAEs** encode each image as a Gaussian and pull those Gaussians towards $\mathcal N(0, I)$.
#   The reparameterisation trick ($z = \mu + \sigma \varepsilon$) makes the sampling differentiable;
#   the KL term has a closed form. The weight $\beta$ on the KL term sets how much information the
#   codes carry: it is the decoder's assumed noise level in disguise. Without it the codes shrink to
#   points; with too much of it every code collapses onto the prior and the decoder draws the average
#   digit. With a 2D code the VAE placed most digits near others of their class without seeing a
#   label, and walking across the plane changes the decoded image gradually. Read as a density model,
#   it gives each digit a likelihood that importance sampling estimates, more tightly with more codes.
# - **GANs** learn to generate through a game against a discriminator. DCGAN's recipe (strided and
#   transposed convolutions, batch norm, LeakyReLU, $\mathcal N(0, 0.02^2)$ init, Adam with
#   $\beta_1 = 0.5$) and the non-saturating generator loss gave a small GAN whose samples pass the
#   three checks above. Each round must keep the players' gradients apart: `detach` the fakes for the
#   discriminator's loss, and let each optimizer apply only its own network's gradients. Its losses do
#   not tell you how well it is doing; checks on the samples do. Between samples, walk along an arc
#   (slerp): a straight line passes through codes shorter than the generator ever saw.
# - **Numerics**: losses on probabilities are computed from logits (`softplus`), never as
#   `log(sigmoid(...))`.
#
# **Going further.** Give the VAE a larger code and compare its samples with the GAN's. Train the
# GAN longer and watch for mode collapse (the spread statistic above falling). Condition both models
# on the digit label (concatenate a one-hot label to $z$ and to $D$'s input) to generate a chosen
# digit. Read how sparse autoencoders (chapter 1) change the VAE's penalty: an L1 penalty on a wide
# code instead of a KL on a narrow one.
