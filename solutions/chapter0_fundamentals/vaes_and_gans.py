"""Reference solutions for 0.5 VAEs and GANs: an autoencoder, a variational autoencoder and a DCGAN,
for 16x16 grayscale images with pixel values in [0, 1] (the course's handwritten digits).

Conventions used throughout the section:

- Images are (batch, 1, 16, 16) float tensors in [0, 1]; latent codes are (batch, latent_dim).
- Every model is built from `nn.Sequential` blocks whose layer order the notebook spells out, so that
  the checks can copy the reference's weights into the learner's module by name.
- Losses are averaged over the batch; the VAE's reconstruction term is summed over pixels and its KL
  term over latent dimensions, so the two are on the scale of one image.
"""

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
    """A sample of N(mu, exp(logvar)) written as a differentiable function of mu and logvar, given
    standard normal `noise`: mu + sigma * noise, where sigma = exp(logvar / 2)."""
    return mu + torch.exp(0.5 * logvar) * noise


def gaussian_kl(mu: Float[Tensor, "batch latent"], logvar: Float[Tensor, "batch latent"]) -> Float[Tensor, "batch"]:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) for each example, summed over the latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=-1)


def vae_loss(
    reconstruction: Float[Tensor, "batch 1 h w"],
    images: Float[Tensor, "batch 1 h w"],
    mu: Float[Tensor, "batch latent"],
    logvar: Float[Tensor, "batch latent"],
    beta: float,
) -> tuple[Float[Tensor, ""], Float[Tensor, ""], Float[Tensor, ""]]:
    """(total, reconstruction term, KL term), each averaged over the batch. The reconstruction term is
    the squared error summed over an image's pixels; total = reconstruction + beta * KL."""
    reconstruction_term = (reconstruction - images).pow(2).flatten(1).sum(dim=1).mean()
    kl_term = gaussian_kl(mu, logvar).mean()
    return reconstruction_term + beta * kl_term, reconstruction_term, kl_term


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


# ----------------------------------------------------------------------------- transposed convolution


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

    def forward(self, x: Float[Tensor, "batch 1 16 16"]) -> Float[Tensor, "batch"]:
        return self.layers(x).squeeze(-1)


def discriminator_loss(real_logits: Float[Tensor, "batch"], fake_logits: Float[Tensor, "batch"]) -> Float[Tensor, ""]:
    """Binary cross-entropy with real images labelled 1 and fakes 0: -mean log D(real) - mean log(1 - D(fake)),
    where D = sigmoid(logit), computed stably from the logits."""
    # log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l), both finite for any l.
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Float[Tensor, "batch"]) -> Float[Tensor, ""]:
    """The non-saturating generator loss: -mean log D(fake), computed stably from the logits."""
    return F.softplus(-fake_logits).mean()


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
