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
#    that decides what the model learns.
# 3. **A generative adversarial network (GAN)** drops reconstruction entirely: a generator learns to
#    fool a discriminator that learns to tell its images from real ones. You will build a small
#    DCGAN with transposed convolutions and train it.
#
# A bonus exercise implements the transposed convolution itself.
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
# time). They are small enough that each model here trains in seconds on a laptop CPU.

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
from tests.checks.chapter0_fundamentals.vaes_and_gans import check

# These models are tiny: one thread avoids the overhead of splitting each small matrix product
# across cores, and runs several times faster on a busy machine.
torch.set_num_threads(1)

train_images, train_labels = digits("train", size=16)
test_images, test_labels = digits("test", size=16)
print(
    f"train {tuple(train_images.shape)}, test {tuple(test_images.shape)}, pixel values in "
    f"[{train_images.min():.0f}, {train_images.max():.0f}]"
)
image_grid(
    train_images[:20, 0],
    rows=2,
    titles=[str(int(label)) for label in train_labels[:20]],
    title="The first twenty training digits",
    height=260,
).show()

# %% [markdown]
# `image_grid` draws a batch of grayscale images given as `(n, height, width)`, so we drop the channel
# axis with `[:, 0]` when we call it. A second helper tiles a batch of images into one picture, which is lighter to draw than a grid of
# separate panels when there are many images.


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
# parameters have the names the check expects (`encoder.0.weight`, ...):
#
# | `self.encoder` | shape after it | `self.decoder` | shape after it |
# |---|---|---|---|
# | `Conv2d(1, 16, kernel_size=4, stride=2, padding=1)`, `ReLU` | (16, 8, 8) | `Linear(latent_dim, hidden)`, `ReLU` | (hidden,) |
# | `Conv2d(16, 32, kernel_size=4, stride=2, padding=1)`, `ReLU` | (32, 4, 4) | `Linear(hidden, 512)`, `ReLU` | (512,) |
# | `Flatten()` | (512,) | `Unflatten(1, (32, 4, 4))` | (32, 4, 4) |
# | `Linear(512, hidden)`, `ReLU` | (hidden,) | `ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1)`, `ReLU` | (16, 8, 8) |
# | `Linear(hidden, latent_dim)` | (latent_dim,) | `ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1)`, `Sigmoid` | (1, 16, 16) |
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
# Each row of the table is one or two entries of an `nn.Sequential(...)`: the encoder's has 8 entries
# and the decoder's 9. `forward` is `self.decoder(self.encoder(x))`.

# %% [markdown]
# ### Training it
#
# The loop is the one you know: shuffle, take batches of 64, minimise the mean squared error with
# Adam. Everything is seeded, so the numbers below come out the same every run.


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
# ### The holes in the code space
#
# Can we *generate* digits by decoding codes we make up? Nothing in the training asked the codes to
# fill any particular region, so we do not know where to draw them from. Try the obvious choice: a
# Gaussian with the same mean and spread, coordinate by coordinate, as the codes of the training
# images. The decoded images are a mix: a few digits, many smudges and fragments. The training codes
# lie on a thin, curved set inside the 8-dimensional space, and independent random coordinates often
# land off it.

# %%
torch.manual_seed(0)
with torch.no_grad():
    train_codes = autoencoder.encoder(train_images)
    random_codes = train_codes.mean(0) + train_codes.std(0) * torch.randn(24, 8)
    imshow(
        tile(autoencoder.decoder(random_codes), rows=3), title="Autoencoder: decoding random codes", height=260
    ).show()

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
    """A sample of N(mu, exp(logvar)) written as a differentiable function of mu and logvar, given
    standard normal `noise`: mu + sigma * noise, where sigma = exp(logvar / 2)."""
    raise NotImplementedError()


# %% [hint]
# `logvar` is $\log\sigma^2$, so the standard deviation is `torch.exp(0.5 * logvar)`, not
# `torch.exp(logvar)` (that is the variance).

# %% [markdown]
# ### The KL term
#
# The penalty is the Kullback-Leibler divergence from the encoder's Gaussian to the standard normal.
# For one coordinate it has a closed form,
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1)\big) = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \log\sigma^2\big),$$
#
# which is zero exactly when $\mu = 0$ and $\sigma = 1$. The coordinates are independent, so the KL
# of the whole code is the sum over coordinates. Return one number per example; the check compares
# your function with `torch.distributions.kl_divergence` as well as with hand-worked cases.


# %% [exercise] gaussian_kl difficulty=1 importance=4 minutes=10
def gaussian_kl(mu: Float[Tensor, "batch latent"], logvar: Float[Tensor, "batch latent"]) -> Float[Tensor, "batch"]:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) for each example, summed over the latent dimensions."""
    raise NotImplementedError()


# %% [hint]
# $\sigma^2$ is `logvar.exp()` and $\log\sigma^2$ is `logvar` itself. Sum over `dim=-1`.

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
    """(total, reconstruction term, KL term), each averaged over the batch. The reconstruction term is
    the squared error summed over an image's pixels; total = reconstruction + beta * KL."""
    raise NotImplementedError()


# %% [hint]
# `(reconstruction - images).pow(2).flatten(1).sum(dim=1)` is one squared error per image; take its
# `.mean()`. Do the same with `gaussian_kl(mu, logvar)`.

# %% [markdown]
# ### The VAE module
#
# The VAE reuses the autoencoder's layers with one change: the encoder's last layer is
# `Linear(hidden, 2 * latent_dim)`, whose output is split into $\mu$ (the first `latent_dim` numbers)
# and $\log\sigma^2$ (the rest). Keep the attribute names `encoder` and `decoder` and the same layer
# order, and store `latent_dim` as `self.latent_dim`. Write `encode`, which returns `(mu, logvar)`,
# and `forward`, which decodes `reparameterise(mu, logvar, noise)` and returns
# `(reconstruction, mu, logvar)`. When `noise` is `None`, draw it fresh with `torch.randn_like(mu)`;
# the check passes its own noise so that your output can be compared with the reference's.


# %% [exercise] VAE difficulty=2 importance=4 minutes=15
class VAE(nn.Module):
    """An autoencoder whose encoder outputs a Gaussian over latent codes rather than one code."""

    def __init__(self, latent_dim: int, hidden: int = 128):
        super().__init__()
        raise NotImplementedError()  # store self.latent_dim; build self.encoder (2 * latent_dim outputs) and self.decoder

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
# `mu, logvar = self.encoder(x).chunk(2, dim=-1)` splits the last axis into two halves, `mu` first.

# %% [markdown]
# ### Training a VAE with a 2D code
#
# With only two latent dimensions the code space is a plane we can look at directly. We train with
# $\beta = 0.2$ (a decoder noise level $s \approx 0.32$ in the reading above), logging both terms.


# %%
def train_vae(
    model: VAE, images: Tensor, epochs: int, beta: float, lr: float = 2e-3, batch_size: int = 64, seed: int = 0
) -> dict[str, list[float]]:
    """Train `model` with vae_loss; return the reconstruction and KL terms of every step."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"reconstruction": [], "KL": []}
    for _ in tqdm(range(epochs), desc=f"VAE, beta={beta}"):
        for batch in images[torch.randperm(len(images))].split(batch_size):
            reconstruction, mu, logvar = model(batch)
            loss, reconstruction_term, kl_term = vae_loss(reconstruction, batch, mu, logvar, beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history["reconstruction"].append(reconstruction_term.item())
            history["KL"].append(kl_term.item())
    return history


torch.manual_seed(0)
vae = VAE(latent_dim=2)
vae_history = train_vae(vae, train_images, epochs=30, beta=0.2)
line(vae_history, title="VAE (beta = 0.2): the two terms of the loss per step", yaxis="per image").show()


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
# labels, yet most digits gather in their own region: the model found the classes as the main axes of
# variation in the images. A simple measure: label each test digit with the label of the *training*
# digit whose code is nearest. That guesses right for more than 65% of the test digits (chance is
# 10%), from two numbers learned without labels.

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
print(f"nearest-training-code label accuracy: {nearest_accuracy:.1%}")
assert nearest_accuracy > 0.65
assert test_mu.std(0).min() > 0.5  # the codes spread over the plane, on the scale of the prior

# %% [markdown]
# Because the codes fill out a standard normal, we can walk across the plane and decode as we go: an
# 8 x 8 grid of codes from $-2$ to $2$ in each coordinate. Neighbouring images change smoothly, with
# one digit morphing into the next.

# %%
axis = torch.linspace(-2, 2, 8)
grid_codes = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
with torch.no_grad():
    imshow(tile(vae.decoder(grid_codes), rows=8), title="Decoding a grid of codes in [-2, 2]^2", height=520).show()

# %% [markdown]
# And sampling is now just "draw $z \sim \mathcal N(0, I)$, decode". The samples' average brightness
# matches the data's to within 0.03 (both are about 0.30: most of each image is background).

# %%
torch.manual_seed(1)
with torch.no_grad():
    vae_samples = vae.decoder(torch.randn(500, 2))
image_grid(vae_samples[:24, 0], rows=3, title="VAE samples: z ~ N(0, I), decoded", height=330).show()
print(f"mean pixel: samples {vae_samples.mean():.3f}, data {train_images.mean():.3f}")
assert abs(vae_samples.mean() - train_images.mean()) < 0.03

# %% [markdown]
# ### Interpolating between two digits
#
# Take a test 0 and a test 7, encode both, and decode points on the straight line between their codes.
# In the VAE's plane the path crosses whatever digits lie between the two codes in the scatter plot
# above, so the 0 turns into other digits on its way to the 7. In the autoencoder's 8-dimensional
# space the path is free to go round them, so its middle images are blends of the two ends. Neither is
# "right": the VAE's code is organised by where digits sit in the plane, the autoencoder's is not
# organised at all beyond what reconstruction needs.


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

# %% [markdown]
# ### Turning the knob: $\beta = 1$
#
# Train the same VAE with five times the weight on the KL term. As the derivation predicts, the codes
# carry less information (a smaller KL) and the reconstructions get worse.

# %%
torch.manual_seed(0)
vae_beta1 = VAE(latent_dim=2)
train_vae(vae_beta1, train_images, epochs=30, beta=1.0)
beta1_stats = vae_report(vae_beta1)
print(
    f"beta = 0.2: MSE {vae_stats['mse']:.4f}, KL {vae_stats['kl']:.2f};  "
    f"beta = 1: MSE {beta1_stats['mse']:.4f}, KL {beta1_stats['kl']:.2f}"
)
assert beta1_stats["kl"] < vae_stats["kl"] - 0.5
assert beta1_stats["mse"] > vae_stats["mse"]

# %% [markdown]
# ## 3. A GAN
#
# A GAN (Goodfellow et al., 2014) learns to generate without ever reconstructing. A **generator** $G$
# maps noise $z \sim \mathcal N(0, I)$ to an image; a **discriminator** $D$ maps an image to the
# probability that it is real. They play a game:
#
# $$\min_G \max_D \;\; \mathbb E_{x \sim \text{data}}\big[\log D(x)\big] + \mathbb E_{z}\big[\log\big(1 - D(G(z))\big)\big].$$
#
# $D$ is trained as an ordinary binary classifier (real = 1, fake = 0); $G$ is trained to make $D$ wrong.
# At the game's equilibrium the generator's images have the data's distribution and $D$ outputs
# $\tfrac12$ everywhere.
#
# We build a **DCGAN** (Radford et al., 2015), the recipe that first made GAN training on images
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
# Nine entries in the `nn.Sequential`, in the order of the table (each comma-separated layer is one
# entry).

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

    def forward(self, x: Float[Tensor, "batch 1 16 16"]) -> Float[Tensor, "batch"]:
        raise NotImplementedError()


# %% [hint]
# Seven entries in `self.layers`. The last layer gives shape `(batch, 1)`: `.squeeze(-1)` makes it
# `(batch,)`.

# %% [markdown]
# ### The two losses
#
# Write $D = \mathrm{sigmoid}(\ell)$ for a logit $\ell$. The discriminator's loss is the binary
# cross-entropy with real images labelled 1 and fakes labelled 0:
#
# $$\mathcal L_D = -\operatorname{mean}_{\text{real}} \log D(x) \;-\; \operatorname{mean}_{\text{fake}} \log\big(1 - D(G(z))\big).$$
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
def discriminator_loss(real_logits: Float[Tensor, "batch"], fake_logits: Float[Tensor, "batch"]) -> Float[Tensor, ""]:
    """Binary cross-entropy with real images labelled 1 and fakes 0: -mean log D(real) - mean log(1 - D(fake)),
    where D = sigmoid(logit), computed stably from the logits."""
    raise NotImplementedError()


# %% [hint]
# `F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()`: the two terms are added, each
# averaged over its own batch.


# %% [exercise] generator_loss difficulty=1 importance=4 minutes=5
def generator_loss(fake_logits: Float[Tensor, "batch"]) -> Float[Tensor, ""]:
    """The non-saturating generator loss: -mean log D(fake), computed stably from the logits."""
    raise NotImplementedError()


# %% [hint]
# $-\log \mathrm{sigmoid}(\ell) = \mathrm{softplus}(-\ell)$.

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
# `isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))`, then `nn.init.normal_(module.weight,
# 0.0, 0.02)`; the third argument of `normal_` is the standard deviation. Some layers have
# `bias=None`: check before zeroing it.

# %% [markdown]
# ### Training the GAN
#
# Each step trains $D$ on a batch of real images and a batch of fakes, then trains $G$ through $D$.
# Two details matter. The fakes are `detach`ed for $D$'s step, so that $D$'s loss does not push
# gradients into $G$. And $G$'s step reuses the same fakes, now *not* detached, since $G$'s gradient
# flows through $D$ into $G$.
#
# GAN losses do not go steadily down, because each player's loss depends on the other: expect them to
# wander and occasionally spike. We also track how often $D$ classifies real and fake images correctly.


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
    """Alternate a discriminator step and a generator step on every batch; return their losses and D's accuracy."""
    torch.manual_seed(seed)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    history = {"discriminator loss": [], "generator loss": [], "D accuracy": []}
    for _ in tqdm(range(epochs), desc="GAN"):
        for real in images[torch.randperm(len(images))].split(batch_size):
            fake = generator(torch.randn(len(real), generator.latent_dim))
            real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
            loss_d = discriminator_loss(real_logits, fake_logits)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()

            loss_g = generator_loss(discriminator(fake))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()

            accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
            history["discriminator loss"].append(loss_d.item())
            history["generator loss"].append(loss_g.item())
            history["D accuracy"].append(accuracy.item())
    return history


torch.manual_seed(0)
generator, discriminator = Generator(latent_dim=16), Discriminator()
initialise_weights(generator)
initialise_weights(discriminator)
gan_history = train_gan(generator, discriminator, train_images, epochs=20)
line({k: gan_history[k] for k in ("discriminator loss", "generator loss")}, title="GAN losses per step").show()

# %% [markdown]
# ### Samples, and what we can check about them
#
# Judging generated images is hard; here are three facts that a working GAN shows and a broken one
# (collapsed to one image, or stuck producing blank or noisy images) does not.
#
# 1. The discriminator, in evaluation mode on fresh images, is far from perfect: its accuracy on real
#    versus fake is below 85%. (Perfect discrimination would mean the generator lost the game.)
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
    bias: Float[Tensor, "out_channels"] | None,
    stride: int,
    padding: int,
) -> Float[Tensor, "batch out_channels out_height out_width"]:
    """The transposed convolution, as torch.nn.functional.conv_transpose2d computes it: each input pixel
    (i, j) adds weight[c_in, :] times its value into the output window whose top-left corner is
    (i * stride, j * stride); then `padding` rows and columns are cut from every edge.
    out_height = (height - 1) * stride + kernel_height - 2 * padding."""
    raise NotImplementedError()


# %% [hint]
# For kernel position `(a, b)`: `torch.einsum("bihw,io->bohw", x, weight[:, :, a, b])` is what every
# input pixel contributes, and `canvas[:, :, a : a + (H - 1) * stride + 1 : stride, b : b + (W - 1) * stride + 1 : stride]`
# is where it goes (`+=`).

# %% [hint]
# Cutting the padding: `canvas[:, :, padding : canvas.shape[2] - padding, padding : canvas.shape[3] - padding]`
# (a plain `padding:-padding` breaks when `padding` is 0).

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
#   holes, so decoding random codes does not generate digits.
# - **VAEs** encode each image as a Gaussian and pull those Gaussians towards $\mathcal N(0, I)$.
#   The reparameterisation trick ($z = \mu + \sigma \varepsilon$) makes the sampling differentiable;
#   the KL term has a closed form. The weight $\beta$ on the KL term sets how much information the
#   codes carry: it is the decoder's assumed noise level in disguise. With a 2D code the VAE arranged
#   the digits by class without seeing a label, and every point of the plane decodes to a plausible
#   image.
# - **GANs** learn to generate through a game against a discriminator. DCGAN's recipe (strided and
#   transposed convolutions, batch norm, LeakyReLU, $\mathcal N(0, 0.02^2)$ init, Adam with
#   $\beta_1 = 0.5$) and the non-saturating generator loss make a small GAN train in seconds. Its
#   losses do not tell you how well it is doing; checks on the samples do.
# - **Numerics**: losses on probabilities are computed from logits (`softplus`), never as
#   `log(sigmoid(...))`.
#
# **Going further.** Give the VAE a larger code and compare its samples with the GAN's. Train the
# GAN longer and watch for mode collapse (the spread statistic above falling). Condition both models
# on the digit label (concatenate a one-hot label to $z$ and to $D$'s input) to generate a chosen
# digit. Read how sparse autoencoders (chapter 1) change the VAE's penalty: an L1 penalty on a wide
# code instead of a KL on a narrow one.
