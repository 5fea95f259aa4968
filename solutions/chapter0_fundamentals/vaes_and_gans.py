"""Reference solutions for 0.5 VAEs and GANs: an autoencoder, a variational autoencoder and a DCGAN,
for 16x16 grayscale images with pixel values in [0, 1] (the course's handwritten digits).

Conventions used throughout the section:

- Images are (batch, 1, 16, 16) float tensors in [0, 1]; latent codes are (batch, latent_dim).
- Every model is built from `nn.Sequential` blocks whose layer order the notebook spells out, so that
  the checks can copy the reference's weights into the learner's module by name.
- Losses are averaged over the batch; the VAE's reconstruction term is summed over pixels and its KL
  term over latent dimensions, so the two are on the scale of one image.
"""

import math

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

# ----------------------------------------------------------------------------- autoencoder


class Autoencoder(nn.Module):
    """Compress an image to `latent_dim` numbers and reconstruct it from them."""

    def __init__(self, latent_dim: int, hidden: int = 128):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1),  # 16x16 -> 8x8
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1),  # 8x8 -> 4x4
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, latent_dim),
        )
        self.decoder = nn.Sequential(  # the encoder's mirror image
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 32 * 4 * 4),
            nn.ReLU(),
            nn.Unflatten(1, (32, 4, 4)),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1),  # 4x4 -> 8x8
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1),  # 8x8 -> 16x16
            nn.Sigmoid(),  # pixels in (0, 1)
        )

    def forward(self, x: Float[Tensor, "batch 1 16 16"]) -> Float[Tensor, "batch 1 16 16"]:
        return self.decoder(self.encoder(x))


# ----------------------------------------------------------------------------- variational autoencoder


def reparameterise(
    mu: Float[Tensor, "batch latent"], logvar: Float[Tensor, "batch latent"], noise: Float[Tensor, "batch latent"]
) -> Float[Tensor, "batch latent"]:
    """A sample of N(mu, exp(logvar)), written as a differentiable function of mu and logvar: the one that the
    given standard normal `noise` picks out. Finite whenever that standard deviation is."""
    return mu + torch.exp(0.5 * logvar) * noise


def gaussian_kl(mu: Float[Tensor, "batch latent"], logvar: Float[Tensor, "batch latent"]) -> Float[Tensor, " batch"]:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) for each example, summed over the latent dimensions; finite
    even for a variance too small for float32 to hold."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=-1)


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
    reconstruction_term = (reconstruction - images).pow(2).flatten(1).sum(dim=1).mean()
    kl_term = gaussian_kl(mu, logvar).mean()
    return reconstruction_term + beta * kl_term, reconstruction_term, kl_term


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
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(params=model.parameters(), lr=lr)
    history = {"beta": [], "reconstruction": [], "KL": []}
    step = 0
    for _ in range(epochs):
        for indices in torch.randperm(len(images)).split(batch_size):  # a fresh order every epoch
            batch = images[indices]
            weight = beta * min(1.0, step / warmup_steps) if warmup_steps > 0 else beta  # no warm-up: full weight
            reconstruction, mu, logvar = model(batch)
            loss, reconstruction_term, kl_term = vae_loss(reconstruction, batch, mu, logvar, weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history["beta"].append(weight)
            history["reconstruction"].append(reconstruction_term.item())
            history["KL"].append(kl_term.item())
            step += 1
    return history


class VAE(nn.Module):
    """An autoencoder whose encoder outputs a Gaussian over latent codes rather than one code."""

    def __init__(self, latent_dim: int, hidden: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1),  # 16x16 -> 8x8
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1),  # 8x8 -> 4x4
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),  # mu and logvar
        )
        self.decoder = nn.Sequential(  # the encoder's mirror image
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 32 * 4 * 4),
            nn.ReLU(),
            nn.Unflatten(1, (32, 4, 4)),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1),  # 4x4 -> 8x8
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1),  # 8x8 -> 16x16
            nn.Sigmoid(),  # pixels in (0, 1)
        )

    def encode(
        self, x: Float[Tensor, "batch 1 16 16"]
    ) -> tuple[Float[Tensor, "batch latent"], Float[Tensor, "batch latent"]]:
        """The mean and log-variance of each image's latent Gaussian: the encoder's first and second halves."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def forward(
        self, x: Float[Tensor, "batch 1 16 16"], noise: Float[Tensor, "batch latent"] | None = None
    ) -> tuple[Float[Tensor, "batch 1 16 16"], Float[Tensor, "batch latent"], Float[Tensor, "batch latent"]]:
        """(reconstruction, mu, logvar). The latent is sampled with `noise` (fresh N(0, 1) noise if None)."""
        mu, logvar = self.encode(x)
        if noise is None:
            noise = torch.randn_like(mu)
        return self.decoder(reparameterise(mu, logvar, noise)), mu, logvar


def log_likelihood_estimate(
    model: nn.Module, images: Float[Tensor, "batch 1 h w"], noise: Float[Tensor, "samples batch latent"], beta: float
) -> Float[Tensor, " batch"]:
    """For each image, an importance-sampled estimate of log p(x) under the VAE read as a generative model: the
    prior N(0, I) on codes, and pixels with Gaussian noise of variance beta / 2 around the decoded image. It is
    the log of the mean, over the codes that `noise` picks from the image's Gaussian, of p(x | z) p(z) / q(z | x);
    finite even where every one of those ratios underflows."""
    mu, logvar = model.encode(images)
    z = reparameterise(mu, logvar, noise)  # (samples, batch, latent): one code per sample and image
    decoded = model.decoder(z.flatten(0, 1)).unflatten(0, z.shape[:2])
    variance, pixels, latent = beta / 2, images[0].numel(), z.shape[-1]
    log_p_x = -(images - decoded).pow(2).flatten(2).sum(-1) / (2 * variance) - pixels / 2 * math.log(
        2 * math.pi * variance
    )
    log_p_z = -z.pow(2).sum(-1) / 2 - latent / 2 * math.log(2 * math.pi)
    # z - mu = sigma * noise, so the Gaussian's exponent needs only the noise.
    log_q = -(noise.pow(2) + logvar).sum(-1) / 2 - latent / 2 * math.log(2 * math.pi)
    return torch.logsumexp(log_p_x + log_p_z - log_q, dim=0) - math.log(len(noise))


# ----------------------------------------------------------------------------- transposed convolution


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
    batch, _, height, width = x.shape
    _, out_channels, kernel_height, kernel_width = weight.shape
    full = x.new_zeros(batch, out_channels, (height - 1) * stride + kernel_height, (width - 1) * stride + kernel_width)
    for ki in range(kernel_height):
        for kj in range(kernel_width):
            # Kernel entry (ki, kj) sends input pixel (i, j) to output pixel (i * stride + ki, j * stride + kj).
            contribution = torch.einsum("bihw,io->bohw", x, weight[:, :, ki, kj])
            full[:, :, ki : ki + (height - 1) * stride + 1 : stride, kj : kj + (width - 1) * stride + 1 : stride] += (
                contribution
            )
    out = full[:, :, padding : full.shape[2] - padding, padding : full.shape[3] - padding]
    if bias is not None:
        out = out + einops.rearrange(bias, "o -> 1 o 1 1")
    return out


# ----------------------------------------------------------------------------- DCGAN


class Generator(nn.Module):
    """DCGAN-style generator: a latent vector to a 16x16 image, upsampling with transposed convolutions."""

    def __init__(self, latent_dim: int, channels: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        self.layers = nn.Sequential(
            nn.Linear(latent_dim, 2 * channels * 4 * 4, bias=False),
            nn.Unflatten(1, (2 * channels, 4, 4)),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, kernel_size=4, stride=2, padding=1, bias=False),  # 4 -> 8
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, kernel_size=4, stride=2, padding=1),  # 8 -> 16
            nn.Sigmoid(),
        )

    def forward(self, z: Float[Tensor, "batch latent"]) -> Float[Tensor, "batch 1 16 16"]:
        return self.layers(z)


class Discriminator(nn.Module):
    """DCGAN-style discriminator: a 16x16 image to one logit (high: "real"), downsampling with strided
    convolutions and LeakyReLU."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=4, stride=2, padding=1),  # 16 -> 8
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, kernel_size=4, stride=2, padding=1, bias=False),  # 8 -> 4
            nn.BatchNorm2d(2 * channels),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, 1),
        )

    def forward(self, x: Float[Tensor, "batch 1 16 16"]) -> Float[Tensor, " batch"]:
        return self.layers(x).squeeze(-1)


def discriminator_loss(real_logits: Float[Tensor, " batch"], fake_logits: Float[Tensor, " batch"]) -> Float[Tensor, ""]:
    """The discriminator's binary cross-entropy, real images labelled 1 and fakes 0, from its logits: each
    batch averaged on its own (the two may differ in size) and the two averages added. Finite for any logits."""
    # log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l), both finite for any l.
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Float[Tensor, " batch"]) -> Float[Tensor, ""]:
    """The non-saturating generator loss, from the discriminator's logits on a batch of fakes: the binary
    cross-entropy with every fake labelled real, averaged over the batch. Finite for any logits."""
    return F.softplus(-fake_logits).mean()


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
    fake = generator(z)
    # Detached: D's loss must not reach G, whose graph the generator's update still needs.
    real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
    loss_d = discriminator_loss(real_logits, fake_logits)
    optimizer_d.zero_grad()
    loss_d.backward()
    optimizer_d.step()

    loss_g = generator_loss(discriminator(fake))
    optimizer_g.zero_grad()
    loss_g.backward()  # also fills D's gradients, which D's next update zeroes first
    optimizer_g.step()

    accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
    return {"discriminator loss": loss_d.item(), "generator loss": loss_g.item(), "D accuracy": accuracy.item()}


def slerp(
    z0: Float[Tensor, " latent"], z1: Float[Tensor, " latent"], weights: Float[Tensor, " steps"]
) -> Float[Tensor, "steps latent"]:
    """Spherical interpolation: for each weight t, the point a fraction t of the way along the arc from z0 (t = 0)
    to z1 (t = 1), which keeps a constant norm when theirs are equal. Codes pointing the same way (to float
    precision) give the straight line between them; never NaN for two nonzero codes that are not opposite."""
    cosine = (F.normalize(z0, dim=0) @ F.normalize(z1, dim=0)).clamp(-1.0, 1.0)  # rounding can pass 1
    angle = torch.arccos(cosine)
    t = weights[:, None]
    if angle < 1e-4:  # sin(angle) ~ 0: the arc is the segment, to float precision
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * angle) * z0 + torch.sin(t * angle) * z1) / torch.sin(angle)


def initialise_weights(model: nn.Module) -> None:
    """DCGAN initialisation, in place: weights of every convolution, transposed convolution and linear
    layer from N(0, 0.02^2); batch-norm scales from N(1, 0.02^2); every bias (and batch-norm shift) zero."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
