"""Checks for 0.5 VAEs and GANs.

Module exercises (Autoencoder, VAE, Generator, Discriminator) are pinned by oracles: modules with the
reference's parameter names whose forward passes are written independently with torch.nn.functional.
BatchNorm layers run in training mode (batch statistics), so those outputs are deterministic too.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions.chapter0_fundamentals import vaes_and_gans as ref
from tests.harness import Case, Checker, Exercise


def _t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _images(gen, n: int) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=gen)


# ----------------------------------------------------------------------------- functional oracles


def _conv_stack(x, seq, ops):
    """Apply `ops` (a list of (kind, index)) to x using the weights of nn.Sequential `seq`."""
    for kind, i in ops:
        layer = seq[i] if isinstance(i, int) else None
        if kind == "conv":
            x = F.conv2d(x, layer.weight, layer.bias, stride=2, padding=1)
        elif kind == "convT":
            x = F.conv_transpose2d(x, layer.weight, layer.bias, stride=2, padding=1)
        elif kind == "linear":
            x = F.linear(x, layer.weight, layer.bias)
        elif kind == "bn":
            x = F.batch_norm(x, None, None, layer.weight, layer.bias, training=True, eps=1e-5)
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "leaky":
            x = F.leaky_relu(x, 0.2)
        elif kind == "flatten":
            x = x.reshape(len(x), -1)
        elif kind == "unflatten":
            x = x.reshape(len(x), -1, 4, 4)
        elif kind == "sigmoid":
            x = torch.sigmoid(x)
    return x


_ENCODER_OPS = [
    ("conv", 0),
    ("relu", None),
    ("conv", 2),
    ("relu", None),
    ("flatten", None),
    ("linear", 5),
    ("relu", None),
    ("linear", 7),
]
_DECODER_OPS = [
    ("linear", 0),
    ("relu", None),
    ("linear", 2),
    ("relu", None),
    ("unflatten", None),
    ("convT", 5),
    ("relu", None),
    ("convT", 7),
    ("sigmoid", None),
]


class _OracleAutoencoder(ref.Autoencoder):
    def forward(self, x):
        return _conv_stack(_conv_stack(x, self.encoder, _ENCODER_OPS), self.decoder, _DECODER_OPS)


class _OracleVAE(ref.VAE):
    def forward(self, x, noise=None):
        out = _conv_stack(x, self.encoder, _ENCODER_OPS)
        mu, logvar = out[:, : self.latent_dim], out[:, self.latent_dim :]
        z = mu + torch.sqrt(torch.exp(logvar)) * noise
        return _conv_stack(z, self.decoder, _DECODER_OPS), mu, logvar


class _OracleGenerator(ref.Generator):
    def forward(self, z):
        return _conv_stack(
            z,
            self.layers,
            [
                ("linear", 0),
                ("unflatten", None),
                ("bn", 2),
                ("relu", None),
                ("convT", 4),
                ("bn", 5),
                ("relu", None),
                ("convT", 7),
                ("sigmoid", None),
            ],
        )


class _OracleDiscriminator(ref.Discriminator):
    def forward(self, x):
        out = _conv_stack(
            x,
            self.layers,
            [("conv", 0), ("leaky", None), ("conv", 2), ("bn", 3), ("leaky", None), ("flatten", None), ("linear", 6)],
        )
        return out[:, 0]


# ----------------------------------------------------------------------------- autoencoder


def _autoencoder_cases(gen):
    yield Case((_images(gen, 4),), "4 random images, latent_dim 8", init=(8,))
    yield Case((_images(gen, 3),), "3 random images, latent_dim 2, hidden 32", init=(2, 32))
    yield Case((_images(gen, 1),), "1 random image, latent_dim 5, hidden 64", init=(5, 64))
    yield Case((torch.zeros(2, 1, 16, 16),), "2 blank images, latent_dim 3", init=(3,))


class _AutoencoderTanh(ref.Autoencoder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder[-1] = nn.Tanh()


class _AutoencoderReluLatent(ref.Autoencoder):
    def forward(self, x):
        return self.decoder(F.relu(self.encoder(x)))


class _AutoencoderChannelsLast(ref.Autoencoder):
    """Unflattens the decoder's 512 numbers as (4, 4, 32), channels last, then permutes to (32, 4, 4)."""

    def forward(self, x):
        h = self.decoder[:4](self.encoder(x))
        h = h.reshape(len(h), 4, 4, 32).permute(0, 3, 1, 2)
        return self.decoder[5:](h)


# ----------------------------------------------------------------------------- VAE pieces


def _reparameterise_cases(gen):
    # sigma = exp(logvar / 2) = 1 and 2: z = (1 + 1 * 0.5, 2 + 2 * -1) = (1.5, 0).
    yield Case(
        (_t(1.0, 2.0)[None], _t(0.0, 2 * math.log(2.0))[None], _t(0.5, -1.0)[None]),
        "mu (1, 2), logvar (0, 2 ln 2), noise (0.5, -1)",
        expected=_t(1.5, 0.0)[None],
    )
    yield Case(
        (torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3)), "mu 0, logvar 0, noise 1", expected=torch.ones(2, 3)
    )
    for n, d in [(4, 2), (8, 16)]:
        yield Case(
            (torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)),
            f"random ({n}, {d})",
        )


def _gaussian_kl_cases(gen):
    yield Case((torch.zeros(2, 3), torch.zeros(2, 3)), "mu 0, logvar 0: the prior itself", expected=torch.zeros(2))
    yield Case((_t(1.0, 0.0)[None], torch.zeros(1, 2)), "mu (1, 0), logvar 0: mu^2 / 2", expected=_t(0.5))
    yield Case(
        (torch.zeros(1, 1), _t(math.log(4.0))[None]),
        "mu 0, variance 4: (4 - 1 - ln 4) / 2",
        expected=_t(0.5 * (3 - math.log(4.0))),
    )
    for n, d in [(5, 2), (3, 10)]:
        yield Case((torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)), f"random ({n}, {d})")


def _kl_oracle(mu, logvar):
    posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(posterior, prior).sum(dim=-1)


def _vae_loss_cases(gen):
    # Squared error 1 on each of 4 pixels; KL of mu = (1, 0), logvar = 0 is 0.5: total 4 + 2 * 0.5 = 5.
    yield Case(
        (torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), _t(1.0, 0.0)[None], torch.zeros(1, 2), 2.0),
        "one 2x2 image off by 1 everywhere, mu (1, 0), logvar 0, beta 2",
        expected=(_t(5.0)[0], _t(4.0)[0], _t(0.5)[0]),
    )
    # Two images: squared errors 4 and 0, KLs 0.5 and 0: batch means 2 and 0.25; beta 0.1 -> 2.025.
    yield Case(
        (
            torch.zeros(2, 1, 2, 2),
            torch.stack([torch.ones(1, 2, 2), torch.zeros(1, 2, 2)]),
            _t(1.0, 0.0, 0.0, 0.0).reshape(2, 2),
            torch.zeros(2, 2),
            0.1,
        ),
        "two 2x2 images (squared errors 4 and 0, KLs 0.5 and 0), beta 0.1",
        expected=(_t(2.025)[0], _t(2.0)[0], _t(0.25)[0]),
    )
    for beta in (1.0, 0.05):
        n = 6
        yield Case(
            (
                _images(gen, n),
                _images(gen, n),
                torch.randn(n, 2, generator=gen),
                torch.randn(n, 2, generator=gen),
                beta,
            ),
            f"random batch of 6, beta {beta}",
        )


def _vae_loss_parts(reconstruction, images, mu, logvar, beta, pixel="sum", batch="mean", kl_dims="sum", beta_on="kl"):
    squared = (reconstruction - images).pow(2).flatten(1)
    rec = squared.sum(1) if pixel == "sum" else squared.mean(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
    kl = kl.sum(-1) if kl_dims == "sum" else kl.mean(-1)
    reduce = torch.mean if batch == "mean" else torch.sum
    rec, kl = reduce(rec), reduce(kl)
    total = rec + beta * kl if beta_on == "kl" else beta * rec + kl
    return total, rec, kl


def _vae_cases(gen):
    yield Case((_images(gen, 4), torch.randn(4, 2, generator=gen)), "4 random images, latent_dim 2", init=(2,))
    yield Case(
        (_images(gen, 3), torch.randn(3, 6, generator=gen)), "3 random images, latent_dim 6, hidden 32", init=(6, 32)
    )
    yield Case((_images(gen, 2), torch.zeros(2, 3)), "2 random images, noise 0 (decodes mu)", init=(3, 64))


class _VAESwapped(ref.VAE):
    def encode(self, x):
        logvar, mu = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar


class _VAEVarianceScale(ref.VAE):
    def forward(self, x, noise=None):
        mu, logvar = self.encode(x)
        return self.decoder(mu + logvar.exp() * noise), mu, logvar


class _VAEDecodesMu(ref.VAE):
    def forward(self, x, noise=None):
        mu, logvar = self.encode(x)
        return self.decoder(mu), mu, logvar


def _vae_samples_without_noise(impl) -> None:
    torch.manual_seed(0)
    model = impl(2, 32)
    x = torch.rand(3, 1, 16, 16)
    first, second = model(x), model(x)
    assert isinstance(first, tuple) and len(first) == 3, "forward(x) should return (reconstruction, mu, logvar)"
    assert first[0].shape == (3, 1, 16, 16), f"forward(x) gave a reconstruction of shape {tuple(first[0].shape)}"
    assert not torch.allclose(first[0], second[0]), (
        "called twice without noise, forward(x) gave the same reconstruction: with noise=None, draw fresh noise "
        "with torch.randn_like(mu)"
    )


# ----------------------------------------------------------------------------- transposed convolution


def _conv_transpose2d_cases(gen):
    # Input [1, 2], kernel of ones 2x2, stride 1: each pixel paints a 2x2 block; they overlap in the middle column.
    yield Case(
        (_t(1.0, 2.0).reshape(1, 1, 1, 2), torch.ones(1, 1, 2, 2), None, 1, 0),
        "input [[1, 2]], 2x2 kernel of ones, stride 1",
        expected=_t(1.0, 3.0, 2.0, 1.0, 3.0, 2.0).reshape(1, 1, 2, 3),
    )
    # Stride 2 spreads the blocks apart (no overlap); padding 1 then cuts the outer ring.
    yield Case(
        (_t(1.0, 2.0, 3.0, 4.0).reshape(1, 1, 2, 2), torch.ones(1, 1, 2, 2), _t(10.0), 2, 1),
        "input [[1, 2], [3, 4]], 2x2 kernel of ones, stride 2, padding 1, bias 10",
        expected=_t(11.0, 12.0, 13.0, 14.0).reshape(1, 1, 2, 2),
    )
    shapes = [  # batch, in, out, height, width, kernel, stride, padding
        (2, 3, 5, 4, 4, 3, 1, 0),
        (1, 2, 4, 3, 5, 4, 2, 1),
        (3, 4, 2, 5, 3, 3, 2, 1),
        (2, 1, 3, 2, 2, 5, 3, 2),
        (2, 32, 16, 4, 4, 4, 2, 1),
    ]
    for b, cin, cout, h, w, k, s, p in shapes:
        x = torch.randn(b, cin, h, w, generator=gen)
        weight = torch.randn(cin, cout, k, k, generator=gen)
        bias = torch.randn(cout, generator=gen) if cin != 2 else None
        yield Case(
            (x, weight, bias, s, p),
            f"{b}x{cin}x{h}x{w} input, {cout} out channels, kernel {k}, stride {s}, padding {p}"
            + ("" if bias is not None else ", no bias"),
        )


def _conv_transpose2d_oracle(x, weight, bias, stride, padding):
    return F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)


def _convT_unflipped_conv(x, weight, bias, stride, padding):
    """Zero-insertion and padding right, but the kernel is not flipped before the ordinary convolution."""
    b, cin, h, w = x.shape
    k = weight.shape[-1]
    dilated = x.new_zeros(b, cin, (h - 1) * stride + 1, (w - 1) * stride + 1)
    dilated[:, :, ::stride, ::stride] = x
    return F.conv2d(dilated, weight.transpose(0, 1), bias, padding=k - 1 - padding)


def _convT_channels_mixed_up(x, weight, bias, stride, padding):
    """Treats weight as (out_channels, in_channels, ...), as an ordinary convolution's is laid out."""
    return _conv_transpose2d_oracle(x, weight.transpose(0, 1).reshape(weight.shape), bias, stride, padding)


def _convT_padding_one_side(x, weight, bias, stride, padding):
    full = _conv_transpose2d_oracle(x, weight, None, stride, 0)
    out = full[:, :, 2 * padding :, 2 * padding :]
    return out if bias is None else out + bias[:, None, None]


def _convT_stride_ignored(x, weight, bias, stride, padding):
    return _conv_transpose2d_oracle(x, weight, bias, 1, padding)


# ----------------------------------------------------------------------------- DCGAN


def _generator_cases(gen):
    yield Case((torch.randn(4, 16, generator=gen),), "batch of 4, latent_dim 16, channels 32", init=(16,))
    yield Case((torch.randn(3, 5, generator=gen),), "batch of 3, latent_dim 5, channels 8", init=(5, 8))
    yield Case((torch.randn(8, 2, generator=gen),), "batch of 8, latent_dim 2, channels 4", init=(2, 4))


class _GeneratorTanh(ref.Generator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers[-1] = nn.Tanh()


class _GeneratorLeaky(ref.Generator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers[3] = nn.LeakyReLU(0.2)
        self.layers[6] = nn.LeakyReLU(0.2)


class _GeneratorEvalBatchNorm(ref.Generator):
    def forward(self, z):
        self.eval()  # running statistics (0 and 1 at first) instead of the batch's
        return self.layers(z)


def _discriminator_cases(gen):
    yield Case((_images(gen, 4),), "4 random images, channels 32", init=())
    yield Case((_images(gen, 3),), "3 random images, channels 8", init=(8,))
    yield Case((torch.randn(5, 1, 16, 16, generator=gen),), "5 images of Gaussian noise, channels 4", init=(4,))


class _DiscriminatorSigmoid(ref.Discriminator):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class _DiscriminatorRelu(ref.Discriminator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers[1] = nn.ReLU()
        self.layers[4] = nn.ReLU()


def _logit_cases(gen, pairs: bool):
    extreme = _t(-200.0, -30.0, 30.0, 200.0)
    if pairs:
        yield Case(
            (torch.zeros(3), torch.zeros(2)),
            "all logits 0 (D = 1/2 everywhere): 2 ln 2",
            expected=_t(2 * math.log(2.0))[0],
        )
        yield Case(
            (_t(math.log(3.0)), _t(-math.log(3.0))),
            "D(real) = 3/4, D(fake) = 1/4: 2 ln(4/3)",
            expected=_t(2 * math.log(4 / 3))[0],
        )
        yield Case((extreme, extreme.flip(0)), "extreme logits (+-30, +-200)")
        for n in (5, 64):
            yield Case(
                (3 * torch.randn(n, generator=gen), 3 * torch.randn(n, generator=gen)), f"random logits, batch {n}"
            )
    else:
        yield Case((torch.zeros(3),), "all logits 0 (D = 1/2): ln 2", expected=_t(math.log(2.0))[0])
        yield Case(
            (_t(math.log(3.0), -math.log(3.0)),),
            "D(fake) = 3/4 and 1/4: -(ln(3/4) + ln(1/4)) / 2",
            expected=_t(-(math.log(0.75) + math.log(0.25)) / 2)[0],
        )
        yield Case((extreme,), "extreme logits (+-30, +-200)")
        for n in (5, 64):
            yield Case((3 * torch.randn(n, generator=gen),), f"random logits, batch {n}")


def _discriminator_loss_oracle(real_logits, fake_logits):
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def _generator_loss_oracle(fake_logits):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# ----------------------------------------------------------------------------- initialisation


def _init_model() -> nn.Module:
    """Layers big enough that their weight statistics are within 0.003 of the targets; the default init of
    each is far from them (the ConvTranspose2d has a small fan-in, so its default weights are large)."""
    return nn.Sequential(
        nn.Conv2d(16, 64, 4),
        nn.BatchNorm2d(512),
        nn.ConvTranspose2d(64, 2, 3),
        nn.ConvTranspose2d(512, 512, 2),
        nn.Linear(128, 256),
        nn.ReLU(),
        nn.Sequential(nn.Linear(256, 64), nn.BatchNorm2d(1024)),
    )


def _init_stats(impl, case) -> torch.Tensor:
    """Standard deviation of each weight, the batch-norm scales' mean, and the largest |bias|, after impl."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = case.args[0]()
        impl(model)
    weights, scales, biases = [], [], []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weights.append(module.weight.std())
            biases.append(module.bias.abs().max())
        elif isinstance(module, nn.BatchNorm2d):
            scales += [module.weight.mean(), module.weight.std()]
            biases.append(module.bias.abs().max())
    return torch.stack([*weights, *scales, torch.stack(biases).max()]).detach()


def _init_cases(gen):
    # Five weight tensors with std 0.02; two batch norms with scales of mean 1 and std 0.02; all biases 0.
    yield Case(
        (_init_model,),
        "a Sequential of Conv2d, ConvTranspose2d, Linear and BatchNorm2d layers",
        expected=_t(0.02, 0.02, 0.02, 0.02, 0.02, 1.0, 0.02, 1.0, 0.02, 0.0),
    )


def _init_wrong(std=0.02, batch_norm=True, transposed=True, biases=True):
    def initialise(model):
        kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) if transposed else (nn.Conv2d, nn.Linear)
        for module in model.modules():
            if type(module) in kinds:
                nn.init.normal_(module.weight, 0.0, std)
                if biases:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d) and batch_norm:
                nn.init.normal_(module.weight, 1.0, std)
                nn.init.zeros_(module.bias)

    return initialise


# ----------------------------------------------------------------------------- the checker

check = Checker(
    "0.5",
    [
        Exercise(
            ref.Autoencoder,
            _autoencoder_cases,
            hint="encoder: Conv2d(1, 16, 4, 2, 1), ReLU, Conv2d(16, 32, 4, 2, 1), ReLU, Flatten, Linear(512, hidden), ReLU, "
            "Linear(hidden, latent_dim); decoder mirrors it with ConvTranspose2d and ends in Sigmoid. Both are "
            "nn.Sequential attributes named encoder and decoder.",
            wrong={
                "Tanh instead of Sigmoid at the end": _AutoencoderTanh,
                "a ReLU on the latent code": _AutoencoderReluLatent,
                "unflattened channels-last, then permuted": _AutoencoderChannelsLast,
            },
            oracle=_OracleAutoencoder,
        ),
        Exercise(
            ref.reparameterise,
            _reparameterise_cases,
            hint="sigma = exp(logvar / 2), the standard deviation; return mu + sigma * noise.",
            wrong={
                "noise scaled by the variance exp(logvar)": lambda mu, logvar, noise: mu + logvar.exp() * noise,
                "noise scaled by logvar itself": lambda mu, logvar, noise: mu + logvar * noise,
                "noise multiplies mu": lambda mu, logvar, noise: mu * noise + logvar.exp().sqrt(),
            },
        ),
        Exercise(
            ref.gaussian_kl,
            _gaussian_kl_cases,
            hint="0.5 * (mu^2 + exp(logvar) - 1 - logvar), summed over the last (latent) axis.",
            wrong={
                "missing the factor 1/2": lambda mu, logvar: (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1),
                "averaged over the latent dimensions": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(-1)
                ),
                "+ logvar instead of - logvar": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + logvar.exp() - 1 + logvar).sum(-1)
                ),
                "standard deviation in place of variance": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + (0.5 * logvar).exp() - 1 - logvar).sum(-1)
                ),
            },
            oracle=_kl_oracle,
        ),
        Exercise(
            ref.vae_loss,
            _vae_loss_cases,
            hint="Squared error summed over each image's pixels, KL summed over latent dimensions, both then averaged over "
            "the batch; total = reconstruction + beta * KL. Return the three as 0-dim tensors.",
            wrong={
                "mean over pixels (F.mse_loss): the KL term swamps it": lambda *a: _vae_loss_parts(*a, pixel="mean"),
                "summed over the batch": lambda *a: _vae_loss_parts(*a, batch="sum"),
                "KL averaged over latent dimensions": lambda *a: _vae_loss_parts(*a, kl_dims="mean"),
                "beta on the reconstruction term": lambda *a: _vae_loss_parts(*a, beta_on="reconstruction"),
            },
        ),
        Exercise(
            ref.VAE,
            _vae_cases,
            hint="encode: self.encoder(x).chunk(2, dim=-1) gives (mu, logvar), mu first. forward: decode "
            "reparameterise(mu, logvar, noise); draw noise with torch.randn_like(mu) when it is None.",
            wrong={
                "mu and logvar halves swapped": _VAESwapped,
                "noise scaled by the variance": _VAEVarianceScale,
                "decodes mu, ignoring the noise": _VAEDecodesMu,
            },
            extra=_vae_samples_without_noise,
            oracle=_OracleVAE,
        ),
        Exercise(
            ref.conv_transpose2d,
            _conv_transpose2d_cases,
            hint="Input pixel (i, j) adds x[b, c_in, i, j] * weight[c_in, :, :, :] into the output window starting at "
            "(i * stride, j * stride) of a (H - 1) * stride + k canvas; then cut `padding` from every edge and add "
            "the bias.",
            wrong={
                "zero-insertion plus an ordinary convolution, kernel not flipped": _convT_unflipped_conv,
                "weight read as (out_channels, in_channels)": _convT_channels_mixed_up,
                "padding cut from the top and left only": _convT_padding_one_side,
                "stride ignored": _convT_stride_ignored,
            },
            oracle=_conv_transpose2d_oracle,
        ),
        Exercise(
            ref.Generator,
            _generator_cases,
            hint="layers = Sequential(Linear(latent_dim, 2c*16, bias=False), Unflatten(1, (2c, 4, 4)), BatchNorm2d(2c), "
            "ReLU, ConvTranspose2d(2c, c, 4, 2, 1, bias=False), BatchNorm2d(c), ReLU, ConvTranspose2d(c, 1, 4, 2, 1), "
            "Sigmoid).",
            wrong={
                "Tanh output (for data in [-1, 1], not ours in [0, 1])": _GeneratorTanh,
                "LeakyReLU in the generator": _GeneratorLeaky,
                "batch norm in eval mode during training": _GeneratorEvalBatchNorm,
            },
            oracle=_OracleGenerator,
        ),
        Exercise(
            ref.Discriminator,
            _discriminator_cases,
            hint="layers = Sequential(Conv2d(1, c, 4, 2, 1), LeakyReLU(0.2), Conv2d(c, 2c, 4, 2, 1, bias=False), "
            "BatchNorm2d(2c), LeakyReLU(0.2), Flatten, Linear(2c*16, 1)); return the logits with shape (batch,), "
            "no sigmoid.",
            wrong={
                "returns probabilities (a sigmoid at the end)": _DiscriminatorSigmoid,
                "ReLU instead of LeakyReLU": _DiscriminatorRelu,
            },
            oracle=_OracleDiscriminator,
        ),
        Exercise(
            ref.discriminator_loss,
            lambda gen: _logit_cases(gen, pairs=True),
            hint="-log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l): "
            "F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean().",
            wrong={
                "log(sigmoid) computed directly (inf for extreme logits)": lambda r, f: (
                    -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
                ),
                "labels swapped (real 0, fake 1)": lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(),
                "the two terms averaged, not added": lambda r, f: (F.softplus(-r).mean() + F.softplus(f).mean()) / 2,
            },
            oracle=_discriminator_loss_oracle,
        ),
        Exercise(
            ref.generator_loss,
            lambda gen: _logit_cases(gen, pairs=False),
            hint="The non-saturating loss is -mean log D(fake) = F.softplus(-fake_logits).mean().",
            wrong={
                "the saturating loss mean log(1 - D(fake))": lambda f: -F.softplus(f).mean(),
                "log(sigmoid) computed directly (inf for extreme logits)": lambda f: (
                    -torch.log(torch.sigmoid(f)).mean()
                ),
                "sign flipped": lambda f: -F.softplus(-f).mean(),
            },
            oracle=_generator_loss_oracle,
        ),
        Exercise(
            ref.initialise_weights,
            _init_cases,
            run=_init_stats,
            atol=0.004,
            rtol=0.0,
            hint="Loop over model.modules(); nn.init.normal_(weight, 0.0, 0.02) for Conv2d, ConvTranspose2d and Linear; "
            "nn.init.normal_(weight, 1.0, 0.02) for BatchNorm2d; nn.init.zeros_ on every bias.",
            wrong={
                "variance 0.02 instead of standard deviation 0.02": _init_wrong(std=0.02**0.5),
                "batch norm layers left alone": _init_wrong(batch_norm=False),
                "ConvTranspose2d left out": _init_wrong(transposed=False),
                "biases left at their defaults": _init_wrong(biases=False),
            },
        ),
    ],
)
