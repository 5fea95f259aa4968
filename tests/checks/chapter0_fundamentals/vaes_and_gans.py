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


class _AutoencoderSigmoidInForward(ref.Autoencoder):
    """The same parameters and forward pass, but the decoder alone stops before the Sigmoid."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder = self.decoder[:-1]

    def forward(self, x):
        return torch.sigmoid(self.decoder(self.encoder(x)))


def _same_part(got, expected, call: str, advice: str) -> None:
    """Assert that one part of a model, called on its own, matches the reference's part."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise AssertionError(f"{call} gave {shape}, expected shape {tuple(expected.shape)}. {advice}")
    if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
        difference = (got - expected).abs().max().item()
        raise AssertionError(
            f"{call} on its own differs from the reference's (largest difference {difference:.3g}), "
            f"though the whole forward pass agrees. {advice}"
        )


def _parts_on_their_own(impl, reference, latent_dim: int) -> None:
    """The notebook calls the encoder and the decoder separately: each must match the reference's."""
    torch.manual_seed(0)
    model, expected_model = impl(latent_dim, 32), reference(latent_dim, 32)
    model.load_state_dict(expected_model.state_dict())
    x, z = torch.rand(4, 1, 16, 16), torch.randn(4, latent_dim)
    with torch.no_grad():
        _same_part(
            model.encoder(x),
            expected_model.encoder(x),
            "encoder(images)",
            "Keep every encoder layer of the table inside self.encoder, and nothing after it in forward.",
        )
        _same_part(
            model.decoder(z),
            expected_model.decoder(z),
            "decoder(codes)",
            "Keep every decoder layer of the table, the final Sigmoid included, inside self.decoder: the "
            "notebook decodes codes with the decoder alone.",
        )


def _autoencoder_extra(impl) -> None:
    _parts_on_their_own(impl, ref.Autoencoder, 3)


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
    # sigma = e^50 (finite in float32, though the variance e^100 is not) and 2: z = (1 + 0.5 e^50, -1 + 3).
    yield Case(
        (_t(1.0, -1.0)[None], _t(100.0, 2 * math.log(2.0))[None], _t(0.5, 1.5)[None]),
        "mu (1, -1), logvar (100, 2 ln 2): standard deviations e^50 (the variance overflows) and 2, noise (0.5, 1.5)",
        expected=_t(1 + 0.5 * math.exp(50), 2.0)[None],
    )
    for n, d in [(4, 2), (8, 16)]:
        yield Case(
            (torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)),
            f"random ({n}, {d})",
        )


def _gaussian_kl_cases(gen):
    yield Case((torch.zeros(2, 3), torch.zeros(2, 3)), "mu 0, logvar 0: the prior itself", expected=torch.zeros(2))
    yield Case((_t(1.0, 0.0)[None], torch.zeros(1, 2)), "mu (1, 0), logvar 0: a shifted mean", expected=_t(0.5))
    yield Case((torch.zeros(1, 1), _t(math.log(4.0))[None]), "mu 0, variance 4", expected=_t(0.5 * (3 - math.log(4.0))))
    # The variance e^-200 underflows to 0 in float32, but the KL is finite: (0.25 + 0 - 1 + 200) / 2 + 0.
    yield Case(
        (_t(0.5, 0.0)[None], _t(-200.0, 0.0)[None]),
        "mu (0.5, 0), logvar (-200, 0): a variance that underflows",
        expected=_t(99.625),
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
    # Squared error 0.25 on each of 4 pixels; KL (0 + 0 - 1 + 200) / 2 = 99.5 although the variance underflows.
    yield Case(
        (torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2), torch.zeros(1, 2), _t(-200.0, 0.0)[None], 0.5),
        "one 2x2 image off by 0.5 everywhere, mu 0, logvar (-200, 0), beta 0.5",
        expected=(_t(50.75)[0], _t(1.0)[0], _t(99.5)[0]),
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


def _vae_loss_parts(
    reconstruction,
    images,
    mu,
    logvar,
    beta,
    pixel="sum",
    batch="mean",
    kl_dims="sum",
    beta_on="kl",
    log_variance=None,
    weighted_kl=False,
):
    squared = (reconstruction - images).pow(2).flatten(1)
    rec = squared.sum(1) if pixel == "sum" else squared.mean(1)
    log_variance = logvar if log_variance is None else log_variance(logvar)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - log_variance)
    kl = kl.sum(-1) if kl_dims == "sum" else kl.mean(-1)
    reduce = torch.mean if batch == "mean" else torch.sum
    rec, kl = reduce(rec), reduce(kl)
    total = rec + beta * kl if beta_on == "kl" else beta * rec + kl
    return (total, rec, beta * kl) if weighted_kl else (total, rec, kl)


def _log_of_exp(logvar):
    """log sigma^2 recomputed from sigma^2 = exp(logvar): -inf once the variance underflows to 0."""
    return torch.log(torch.exp(logvar))


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


class _VAESigmoidInForward(ref.VAE):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder = self.decoder[:-1]

    def forward(self, x, noise=None):
        reconstruction, mu, logvar = super().forward(x, noise)
        return torch.sigmoid(reconstruction), mu, logvar


class _VAEUniformNoise(ref.VAE):
    def forward(self, x, noise=None):
        mu, _ = self.encode(x)
        return super().forward(x, torch.rand_like(mu) if noise is None else noise)


class _VAENoLatentDim(ref.VAE):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.latent_dim


def _vae_extra(impl) -> None:
    """What the cases (which pass their own noise) cannot show: the stored latent_dim, the decoder on its own,
    and the noise forward draws when given none: fresh on every call, and standard normal."""
    torch.manual_seed(0)
    model = impl(2, 32)
    assert getattr(model, "latent_dim", None) == 2, "VAE(2, 32).latent_dim is not 2: store it as self.latent_dim"
    _parts_on_their_own(impl, ref.VAE, 2)
    x = torch.rand(3, 1, 16, 16)
    first, second = model(x), model(x)
    assert isinstance(first, tuple) and len(first) == 3, "forward(x) should return (reconstruction, mu, logvar)"
    assert first[0].shape == (3, 1, 16, 16), f"forward(x) gave a reconstruction of shape {tuple(first[0].shape)}"
    assert not torch.allclose(first[0], second[0]), (
        "called twice without noise, forward(x) gave the same reconstruction: with noise=None, draw fresh noise "
        "on every call"
    )
    codes = []
    model.decoder.register_forward_pre_hook(lambda module, args: codes.append(args[0]))
    with torch.no_grad():
        _, mu, logvar = model(torch.rand(2000, 1, 16, 16))
    assert codes, "forward(x) did not call self.decoder: decode the sampled code with it"
    noise = (codes[-1] - mu) / (0.5 * logvar).exp()  # the noise that forward drew, recovered from its code
    mean, std = noise.mean().item(), noise.std().item()
    assert abs(mean) < 0.1 and abs(std - 1) < 0.1, (
        f"with noise=None, the noise your forward drew has mean {mean:.3f} and standard deviation {std:.3f} "
        "(4,000 draws); it should be standard normal: mean 0, standard deviation 1"
    )


# ----------------------------------------------------------------------------- log-likelihood by importance sampling


class _Zeros(nn.Module):
    def __init__(self, shape: tuple):
        super().__init__()
        self.shape = shape

    def forward(self, z):
        return z.new_zeros(len(z), *self.shape)


class _FixedGaussianVAE(nn.Module):
    """Every image gets the same Gaussian N(mu, exp(logvar)) and decodes to a blank image: log p(x) by hand."""

    def __init__(self, mu: float, logvar: float, shape: tuple):
        super().__init__()
        self.mu, self.logvar, self.decoder = _t(mu), _t(logvar), _Zeros(shape)

    def encode(self, x):
        return self.mu.expand(len(x), 1), self.logvar.expand(len(x), 1)


def _log_likelihood_run(impl, case):
    """Build the case's model (the same weights every time) and apply impl to it."""
    build, images, noise, beta = case.args
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build().to(images.device)
    with torch.no_grad():
        return impl(model, images, noise, beta)


def _small_vae() -> nn.Module:
    return ref.VAE(2, 16)


def _log_likelihood_cases(gen):
    # Codes z = 2 * noise (sigma 2), blank decoder, one pixel at 0, pixel variance 1: each log-ratio is
    # -log(2 pi) / 2 + log 2 - 1.5 noise^2, so noise (0, 1) gives -log(2 pi) / 2 + log(1 + e^-1.5).
    yield Case(
        (
            lambda: _FixedGaussianVAE(0.0, math.log(4.0), (1, 1, 1)),
            torch.zeros(1, 1, 1, 1),
            _t(0.0, 1.0).reshape(2, 1, 1),
            2.0,
        ),
        "mu 0, sigma 2, a blank decoder, one pixel at 0, beta 2, noise 0 and 1",
        expected=_t(-0.5 * math.log(2 * math.pi) + math.log(1 + math.exp(-1.5))),
    )
    # The prior itself as q (ratios p(z) / q(z) = 1), a 2x2 image of 30s against a blank decoder, pixel variance
    # 0.01: log p(x | z) = -4 * 900 / 0.02 - 2 log(2 pi 0.01) for every code. Its exp underflows.
    yield Case(
        (
            lambda: _FixedGaussianVAE(0.0, 0.0, (1, 2, 2)),
            torch.full((1, 1, 2, 2), 30.0),
            torch.randn(3, 1, 1, generator=gen),
            0.02,
        ),
        "mu 0, logvar 0, a blank decoder, a 2x2 image of 30s, beta 0.02: every ratio underflows",
        expected=_t(-180000.0 - 2 * math.log(2 * math.pi * 0.01)),
    )
    for samples, n, beta in ((1, 2, 1.0), (5, 3, 0.2), (64, 2, 0.2)):
        yield Case(
            (_small_vae, _images(gen, n), torch.randn(samples, n, 2, generator=gen), beta),
            f"a small VAE (latent_dim 2, hidden 16), {n} images, {samples} samples each, beta {beta}",
        )


def _log_likelihood_oracle(model, images, noise, beta):
    """torch.distributions for each density."""
    mu, logvar = model.encode(images)
    posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    z = posterior.loc + posterior.scale * noise
    decoded = model.decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:2], *images.shape[1:])
    log_p_x = torch.distributions.Normal(decoded, math.sqrt(beta / 2)).log_prob(images).flatten(2).sum(-1)
    log_p_z = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_w = log_p_x + log_p_z - posterior.log_prob(z).sum(-1)
    return torch.logsumexp(log_w, dim=0) - math.log(noise.shape[0])


def _log_likelihood_wrong(combine="logmeanexp", variance_factor=0.5, constants=True, q_logvar=True, decode_mu=False):
    def estimate(model, images, noise, beta):
        mu, logvar = model.encode(images)
        z = mu + torch.exp(0.5 * logvar) * noise
        decoded = model.decoder((mu.expand_as(z) if decode_mu else z).flatten(0, 1)).unflatten(0, z.shape[:2])
        variance, pixels = beta * variance_factor, images[0].numel()
        log_w = (
            -(images - decoded).pow(2).flatten(2).sum(-1) / (2 * variance)
            - z.pow(2).sum(-1) / 2
            + (noise.pow(2) + (logvar if q_logvar else 0)).sum(-1) / 2
        )
        if constants:
            log_w = log_w - pixels / 2 * math.log(2 * math.pi * variance)
        if combine == "log of mean":
            return torch.log(torch.exp(log_w).mean(0))
        if combine == "mean of log":
            return log_w.mean(0)
        if combine == "logsumexp":
            return torch.logsumexp(log_w, dim=0)
        return torch.logsumexp(log_w, dim=0) - math.log(len(noise))

    return estimate


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
    x, weight = torch.randn(2, 3, 3, 4, generator=gen), torch.randn(3, 2, 3, 2, generator=gen)
    yield Case(
        (x, weight, torch.randn(2, generator=gen), 2, 1),
        "2x3x3x4 input, 2 out channels, a 3-high, 2-wide kernel, stride 2, padding 1",
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


def _convT_square_kernel(x, weight, bias, stride, padding):
    """Reads the kernel's size from its width alone, so a taller kernel loses its bottom rows."""
    k = weight.shape[-1]
    return _conv_transpose2d_oracle(x, weight[:, :, :k, :k], bias, stride, padding)


def _convT_negative_slice(x, weight, bias, stride, padding):
    full = _conv_transpose2d_oracle(x, weight, None, stride, 0)
    out = full[:, :, padding:-padding, padding:-padding]  # empty when padding is 0
    return out if bias is None else out + bias[:, None, None]


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


class _GeneratorNoLatentDim(ref.Generator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.latent_dim


def _generator_extra(impl) -> None:
    got = getattr(impl(5, 8), "latent_dim", None)
    assert got == 5, (
        f"Generator(5, 8).latent_dim is {got!r}, not 5: store latent_dim as self.latent_dim "
        "(the training loop reads it to draw the noise)."
    )


def _discriminator_cases(gen):
    yield Case((_images(gen, 4),), "4 random images, channels 32", init=())
    yield Case((_images(gen, 3),), "3 random images, channels 8", init=(8,))
    yield Case((torch.randn(5, 1, 16, 16, generator=gen),), "5 images of Gaussian noise, channels 4", init=(4,))
    yield Case((_images(gen, 1),), "a batch of 1 image, channels 8: one logit, shape (1,)", init=(8,))


class _DiscriminatorSigmoid(ref.Discriminator):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class _DiscriminatorRelu(ref.Discriminator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers[1] = nn.ReLU()
        self.layers[4] = nn.ReLU()


class _DiscriminatorDefaultSlope(ref.Discriminator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers[1] = nn.LeakyReLU()
        self.layers[4] = nn.LeakyReLU()


class _DiscriminatorSqueezeAll(ref.Discriminator):
    def forward(self, x):
        return self.layers(x).squeeze()


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
        # First, as on it the sign and label mistakes all give different answers (at logit 0 several coincide).
        yield Case((torch.full((4,), math.log(3.0)),), "D(fake) = 3/4 for every fake", expected=_t(math.log(4 / 3))[0])
        yield Case((torch.zeros(3),), "all logits 0 (D = 1/2): ln 2", expected=_t(math.log(2.0))[0])
        yield Case(
            (_t(math.log(3.0), -math.log(3.0)),),
            "D(fake) = 3/4 and 1/4",
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


def _init_model_without_biases() -> nn.Module:
    """Layers built with bias=False, as the generator's and discriminator's layers before a batch norm are."""
    return nn.Sequential(
        nn.Linear(128, 512, bias=False), nn.ConvTranspose2d(512, 8, 4, bias=False), nn.BatchNorm2d(512)
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
            if module.bias is not None:
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
    # Two weights with std 0.02, a batch norm's scales (mean 1, std 0.02), and its shift 0: no other biases exist.
    yield Case(
        (_init_model_without_biases,),
        "a Linear and a ConvTranspose2d built with bias=False, and a BatchNorm2d",
        expected=_t(0.02, 0.02, 1.0, 0.02, 0.0),
    )


def _init_wrong(std=0.02, batch_norm=True, transposed=True, biases=True, missing_bias_checked=True, nested=True):
    def initialise(model):
        kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) if transposed else (nn.Conv2d, nn.Linear)
        for module in model.modules() if nested else model.children():
            if type(module) in kinds:
                nn.init.normal_(module.weight, 0.0, std)
                if biases and (module.bias is not None or not missing_bias_checked):
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d) and batch_norm:
                nn.init.normal_(module.weight, 1.0, std)
                nn.init.zeros_(module.bias)

    return initialise


# ----------------------------------------------------------------------------- training the VAE


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _flat_grads(model: nn.Module) -> torch.Tensor:
    """Every parameter's gradient, flattened, a missing one (None) read as zeros."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1) for p in model.parameters()]
    )


def _train_vae_run(impl, case):
    """Train a small VAE (the same initial weights every time) with impl; return its history and what the trained
    model makes of the images. (Not its raw weights: Adam moves a weight whose gradient is nearly 0 by up to the
    learning rate, so rounding differences of no consequence can show there.)"""
    with torch.random.fork_rng(), torch.enable_grad():  # enable_grad: the diagnosis replays mistakes under no_grad
        torch.manual_seed(0)
        model = ref.VAE(2, 16)
        history = impl(model, *case.args, **case.kwargs)
    with torch.no_grad():
        mu, _ = model.encode(case.args[0])
        decoded = model.decoder(mu)
    return {
        "history": history,
        "the trained model's codes of the images": mu,
        "the trained model's reconstructions from those codes": decoded,
    }


def _train_vae_cases(gen):
    images = _images(gen, 10)
    yield Case(
        (images, 2, 0.5),
        "10 images, batch size 4 (a last batch of 2), 2 epochs, beta 0.5, warmup_steps 4",
        kwargs={"warmup_steps": 4, "lr": 1e-2, "batch_size": 4, "seed": 1},
    )
    yield Case(
        (images, 1, 1.0),
        "10 images, batch size 5, 1 epoch, beta 1, warmup_steps 0 (no warm-up)",
        kwargs={"warmup_steps": 0, "lr": 1e-2, "batch_size": 5, "seed": 2},
    )
    yield Case(
        (_images(gen, 8), 2, 2.0),
        "8 images, batch size 4, 2 epochs, beta 2, warmup_steps 100 (longer than training)",
        kwargs={"warmup_steps": 100, "lr": 5e-3, "batch_size": 4, "seed": 3},
    )
    yield Case(
        (images, 3, 0.2),
        "10 images, batch size 6, 3 epochs, beta 0.2, default warmup_steps",
        kwargs={"lr": 1e-2, "batch_size": 6, "seed": 4},
    )


def _train_vae_oracle(model, images, epochs, beta, warmup_steps=0, lr=2e-3, batch_size=64, seed=0):
    """Written apart from the reference: indices instead of split, autograd.grad, torch.distributions' KL."""
    torch.manual_seed(seed)
    parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    history = {"beta": [], "reconstruction": [], "KL": []}
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), batch_size):
            batch = images[order[start : start + batch_size]]
            weight = beta * min(step, warmup_steps) / warmup_steps if warmup_steps else beta
            reconstruction, mu, logvar = model(batch)
            squared_error = F.mse_loss(reconstruction, batch, reduction="sum") / len(batch)
            kl = _kl_oracle(mu, logvar).mean()
            for parameter, grad in zip(parameters, torch.autograd.grad(squared_error + weight * kl, parameters)):
                parameter.grad = grad
            optimizer.step()
            history["beta"].append(weight)
            history["reconstruction"].append(squared_error.item())
            history["KL"].append(kl.item())
            step += 1
    return history


def _train_vae_wrong(
    count_from_one=False,
    per_epoch=False,
    zero_grad=True,
    shuffle_each_epoch=True,
    log_weighted=False,
    guard_zero=True,
    drop_last=False,
):
    def train(model, images, epochs, beta, warmup_steps=0, lr=2e-3, batch_size=64, seed=0):
        torch.manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        history = {"beta": [], "reconstruction": [], "KL": []}
        step, order = 0, None
        for epoch in range(epochs):
            if shuffle_each_epoch or order is None:
                order = torch.randperm(len(images))
            batches = images[order].split(batch_size)
            if drop_last and len(batches[-1]) < batch_size:
                batches = batches[:-1]
            for batch in batches:
                progress = epoch if per_epoch else step + count_from_one
                weight = beta if (guard_zero and warmup_steps == 0) else beta * min(1.0, progress / warmup_steps)
                reconstruction, mu, logvar = model(batch)
                loss, reconstruction_term, kl_term = ref.vae_loss(reconstruction, batch, mu, logvar, weight)
                if zero_grad:
                    optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                history["beta"].append(weight)
                history["reconstruction"].append(reconstruction_term.item())
                history["KL"].append((weight * kl_term if log_weighted else kl_term).item())
                step += 1
        return history

    return train


# ----------------------------------------------------------------------------- a round of the GAN game

_STALE = 0.5  # every gradient left over from an earlier round, as a real loop leaves them


def _gan_step_run(impl, case):
    """Play the rounds of case.args with impl on a small generator and discriminator (the same initial weights
    every time), whose gradients hold stale values, as a real loop leaves them. Records, at each optimizer's step,
    the gradients it is about to apply, and whether D's update sent gradients into G."""
    reals, zs = case.args
    with torch.random.fork_rng(), torch.enable_grad():  # enable_grad: the diagnosis replays mistakes under no_grad
        torch.manual_seed(0)
        generator, discriminator = ref.Generator(zs[0].shape[1], 8), ref.Discriminator(8)
        optimizer_g = torch.optim.Adam(generator.parameters(), lr=1e-2, betas=(0.5, 0.999))
        optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=1e-2, betas=(0.5, 0.999))
        seen = {
            "the discriminator's gradients when its optimizer steps": "optimizer_d.step() was never called",
            "the generator's gradients when its optimizer steps": "optimizer_g.step() was never called",
        }

        def before_d_step(optimizer, args, kwargs):
            g_grads = _flat_grads(generator)
            touched = not (torch.allclose(g_grads, torch.full_like(g_grads, _STALE)) or not g_grads.any())
            seen["the discriminator's update sent gradients into the generator"] = touched
            seen["the discriminator's gradients when its optimizer steps"] = _flat_grads(discriminator)

        def before_g_step(optimizer, args, kwargs):
            seen["the generator's gradients when its optimizer steps"] = _flat_grads(generator)

        optimizer_d.register_step_pre_hook(before_d_step)
        optimizer_g.register_step_pre_hook(before_g_step)
        returned = []
        for real, z in zip(reals, zs):
            for parameter in [*generator.parameters(), *discriminator.parameters()]:
                parameter.grad = torch.full_like(parameter, _STALE)
            returned.append(impl(generator, discriminator, optimizer_g, optimizer_d, real, z))
    return {
        "returned": returned,
        **seen,
        "the discriminator's parameters after the round": _flat(discriminator.parameters()),
        "the generator's parameters after the round": _flat(generator.parameters()),
    }


def _gan_step_cases(gen):
    yield Case(
        ((_images(gen, 6),), (torch.randn(4, 3, generator=gen),)), "one round: 6 real images, 4 codes of 3 numbers"
    )
    yield Case(
        ((_images(gen, 5), _images(gen, 5)), (torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen))),
        "two rounds with the same optimizers: 5 real images and 5 codes of 4 numbers each",
    )
    yield Case(
        ((torch.zeros(3, 1, 16, 16),), (torch.randn(7, 2, generator=gen),)),
        "one round: 3 blank real images, 7 codes of 2 numbers",
    )


def _bce(logits, label: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def _gan_step_oracle(generator, discriminator, optimizer_g, optimizer_d, real, z):
    """Written apart from the reference: autograd.grad into .grad, torch's BCE, no zero_grad."""
    fake = generator(z)
    real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
    loss_d = _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
    d_parameters = list(discriminator.parameters())
    for parameter, grad in zip(d_parameters, torch.autograd.grad(loss_d, d_parameters)):
        parameter.grad = grad
    optimizer_d.step()
    loss_g = _bce(discriminator(fake), 1.0)
    g_parameters = list(generator.parameters())
    for parameter, grad in zip(g_parameters, torch.autograd.grad(loss_g, g_parameters)):
        parameter.grad = grad
    optimizer_g.step()
    accuracy = ((real_logits > 0).sum() / len(real_logits) + (fake_logits < 0).sum() / len(fake_logits)) / 2
    return {"discriminator loss": loss_d.item(), "generator loss": loss_g.item(), "D accuracy": accuracy.item()}


def _gan_step_wrong(
    detach=True,
    new_fakes_for_g=False,
    zero_d=True,
    backward_both_first=False,
    one_batch=False,
    detach_for_g=False,
    accuracy_after=False,
    pooled_accuracy=False,
):
    def step(generator, discriminator, optimizer_g, optimizer_d, real, z):
        fake = generator(z)
        if one_batch:
            logits = discriminator(torch.cat([real, fake.detach()]))
            real_logits, fake_logits = logits[: len(real)], logits[len(real) :]
        else:
            real_logits, fake_logits = discriminator(real), discriminator(fake.detach() if detach else fake)
        loss_d = ref.discriminator_loss(real_logits, fake_logits)
        if backward_both_first:
            optimizer_d.zero_grad()
            optimizer_g.zero_grad()
            loss_d.backward()
            loss_g = ref.generator_loss(discriminator(fake))
            loss_g.backward()
            optimizer_d.step()
            optimizer_g.step()
        else:
            if zero_d:
                optimizer_d.zero_grad()
            loss_d.backward()
            optimizer_d.step()
            if new_fakes_for_g:
                fake = generator(z)
            loss_g = ref.generator_loss(discriminator(fake.detach() if detach_for_g else fake))
            optimizer_g.zero_grad()
            loss_g.backward()
            optimizer_g.step()
        if accuracy_after:
            with torch.no_grad():
                real_logits, fake_logits = discriminator(real), discriminator(fake)
        if pooled_accuracy:
            accuracy = torch.cat([real_logits > 0, fake_logits < 0]).float().mean()
        else:
            accuracy = ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2
        return {"discriminator loss": loss_d.item(), "generator loss": loss_g.item(), "D accuracy": accuracy.item()}

    return step


# ----------------------------------------------------------------------------- spherical interpolation


def _slerp_cases(gen):
    root_half = math.sqrt(0.5)
    # A right angle: half way along the arc both sine weights are sin(pi/4) / sin(pi/2).
    yield Case(
        (_t(1.0, 0.0), _t(0.0, 2.0), _t(0.0, 0.5, 1.0)),
        "(1, 0) to (0, 2), weights 0, 1/2, 1",
        expected=_t(1.0, 0.0, root_half, 2 * root_half, 0.0, 2.0).reshape(3, 2),
    )
    # A third of a right angle from (2, 0, 0) towards (0, 0, 2): 30 degrees on a circle of radius 2.
    yield Case(
        (_t(2.0, 0.0, 0.0), _t(0.0, 0.0, 2.0), _t(1 / 3)),
        "(2, 0, 0) to (0, 0, 2), weight 1/3",
        expected=_t(math.sqrt(3.0), 0.0, 1.0)[None],
    )
    # 150 degrees apart on the unit circle: the midpoint is at 75 degrees.
    angle = math.radians(150)
    yield Case(
        (_t(1.0, 0.0), _t(math.cos(angle), math.sin(angle)), _t(0.5)),
        "unit codes 150 degrees apart, weight 1/2",
        expected=_t(math.cos(angle / 2), math.sin(angle / 2))[None],
    )
    yield Case(
        (_t(0.6, 0.8), _t(0.6, 0.8), _t(0.0, 0.25, 1.0)),
        "the same code twice: an angle of exactly 0",
        expected=_t(0.6, 0.8).repeat(3, 1),
    )
    # For these codes the cosine of each with itself rounds above 1 in float32 (computed either usual way).
    for code in (_cosine_above_one_code(), _t(0.1, 0.2, 0.3)):
        yield Case(
            (code, code.clone(), _t(0.5)),
            f"a code of {len(code)} numbers and a copy of it, whose cosine rounds above 1",
            expected=code[None].clone(),
        )
    code = torch.randn(16, generator=gen)
    yield Case(
        (code, code + 1e-3 * torch.randn(16, generator=gen), torch.linspace(0, 1, 5)),
        "two 16-number codes 0.001 apart, 5 weights",
    )
    for d in (2, 16):
        yield Case(
            (torch.randn(d, generator=gen), torch.randn(d, generator=gen), torch.linspace(0, 1, 7)),
            f"random codes of {d} numbers, 7 weights",
        )


def _slerp_formula(z0, z1, weights, angle):
    t = weights[:, None]
    return (torch.sin((1 - t) * angle) * z0 + torch.sin(t * angle) * z1) / torch.sin(angle)


def _slerp_wrong(normalise_cosine=True, clamp=True, fallback=True, swapped=False, unit=False):
    def slerp(z0, z1, weights):
        if unit:
            z0, z1 = F.normalize(z0, dim=0), F.normalize(z1, dim=0)
        cosine = F.normalize(z0, dim=0) @ F.normalize(z1, dim=0) if normalise_cosine else z0 @ z1
        angle = torch.arccos(cosine.clamp(-1, 1) if clamp else cosine)
        if fallback and angle < 1e-4:
            return (1 - weights[:, None]) * z0 + weights[:, None] * z1
        return _slerp_formula(z1, z0, weights, angle) if swapped else _slerp_formula(z0, z1, weights, angle)

    return slerp


def _slerp_oracle(z0, z1, weights):
    """In float64, in coordinates of the plane of z0 and z1: a unit vector u along z0 and v orthogonal to it
    (Gram-Schmidt), so that z1 = |z1| (cos(angle) u + sin(angle) v)."""
    a, b, t = z0.double(), z1.double(), weights.double()[:, None]
    u = a / a.norm()
    along = b @ u
    across = b - along * u
    if across.norm() < 1e-6 * b.norm():
        return ((1 - t) * a + t * b).float()
    v = across / across.norm()
    angle = torch.atan2(across.norm(), along)
    first, second = torch.sin((1 - t) * angle) / torch.sin(angle), torch.sin(t * angle) / torch.sin(angle)
    return ((first * a.norm() + second * along) * u + second * across.norm() * v).float()


def _cosine_above_one_code() -> torch.Tensor:
    """A code of 16 numbers whose cosine with itself, computed from the normalised vectors, is 1 + 1.2e-7."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(16, generator=gen) for _ in range(5)][-1]


# ----------------------------------------------------------------------------- the checker

check = Checker(
    "0.5",
    [
        Exercise(
            ref.Autoencoder,
            _autoencoder_cases,
            hint="compare your layers with the table, column by column and in order (the order fixes the parameter "
            "names); the code has no activation; and each half must work on its own, the decoder ending in the "
            "layer that keeps pixels in (0, 1).",
            wrong={
                "Tanh instead of Sigmoid at the end of the decoder": _AutoencoderTanh,
                "a ReLU on the latent code": _AutoencoderReluLatent,
                "the decoder's 512 numbers unflattened channels-last, then permuted": _AutoencoderChannelsLast,
                "the final Sigmoid applied in forward, outside the decoder": _AutoencoderSigmoidInForward,
            },
            extra=_autoencoder_extra,
            oracle=_OracleAutoencoder,
        ),
        Exercise(
            ref.reparameterise,
            _reparameterise_cases,
            hint="look at how far your sample moves from mu: it should scale with the standard deviation (not the "
            "variance, not the log-variance), use the noise it is given, and stay finite while the standard "
            "deviation does, even when the variance overflows.",
            wrong={
                "noise scaled by the variance instead of the standard deviation": lambda mu, logvar, noise: (
                    mu + logvar.exp() * noise
                ),
                "noise scaled by the log-variance itself": lambda mu, logvar, noise: mu + logvar * noise,
                "mu multiplied by the noise, sigma added": lambda mu, logvar, noise: mu * noise + logvar.exp().sqrt(),
                "fresh noise drawn instead of the noise given": lambda mu, logvar, noise: (
                    mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                ),
                "the square root of the variance, which overflows for large log-variances": lambda mu, logvar, noise: (
                    mu + logvar.exp().sqrt() * noise
                ),
            },
        ),
        Exercise(
            ref.gaussian_kl,
            _gaussian_kl_cases,
            hint="the hand-worked cases, starting with the standard normal itself (KL zero); one number per "
            "example, so which axis is reduced, and by a sum or a mean? A log-variance of -200 must still "
            "give a finite answer.",
            wrong={
                "missing the factor 1/2": lambda mu, logvar: (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1),
                "averaged over the latent dimensions instead of summed": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(-1)
                ),
                "plus the log-variance instead of minus": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + logvar.exp() - 1 + logvar).sum(-1)
                ),
                "the standard deviation where the variance belongs": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + (0.5 * logvar).exp() - 1 - logvar).sum(-1)
                ),
                "summed over the batch axis instead of the latent one": lambda mu, logvar: (
                    0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(0)
                ),
                "the log-variance recomputed from the variance, infinite once the variance underflows": (
                    lambda mu, logvar: 0.5 * (mu.pow(2) + logvar.exp() - 1 - _log_of_exp(logvar)).sum(-1)
                ),
            },
            oracle=_kl_oracle,
        ),
        Exercise(
            ref.vae_loss,
            _vae_loss_cases,
            hint="which sums run over an image's pixels or a code's latent dimensions, which average over the batch, "
            "and which term beta weights; the KL term is returned unweighted, and all three are 0-dimensional "
            "tensors.",
            wrong={
                "squared error averaged over pixels instead of summed (F.mse_loss)": lambda *a: _vae_loss_parts(
                    *a, pixel="mean"
                ),
                "summed over the batch instead of averaged": lambda *a: _vae_loss_parts(*a, batch="sum"),
                "KL averaged over the latent dimensions instead of summed": lambda *a: _vae_loss_parts(
                    *a, kl_dims="mean"
                ),
                "beta on the reconstruction term instead of the KL term": lambda *a: _vae_loss_parts(
                    *a, beta_on="reconstruction"
                ),
                "the KL term returned already multiplied by beta": lambda *a: _vae_loss_parts(*a, weighted_kl=True),
                "the log-variance recomputed from the variance, infinite once the variance underflows": lambda *a: (
                    _vae_loss_parts(*a, log_variance=_log_of_exp)
                ),
            },
        ),
        Exercise(
            ref.train_vae,
            _train_vae_cases,
            run=_train_vae_run,
            oracle=_train_vae_oracle,
            hint="look at the KL weight of each step first (0 at the very first step, full from step warmup_steps "
            "on, and no warm-up at all when warmup_steps is 0; steps, not epochs, are counted); then at what "
            "each step starts from: gradients left over from the previous step, and a fresh shuffle every "
            "epoch; and log the KL term before it is weighted.",
            wrong={
                "the warm-up counted from 1, so the first step already weights the KL term": _train_vae_wrong(
                    count_from_one=True
                ),
                "the warm-up counted in epochs instead of steps": _train_vae_wrong(per_epoch=True),
                "gradients never zeroed, so each step adds up all the earlier ones": _train_vae_wrong(zero_grad=False),
                "the images shuffled once, not at every epoch": _train_vae_wrong(shuffle_each_epoch=False),
                "the KL term logged after it is weighted": _train_vae_wrong(log_weighted=True),
                "warmup_steps 0 divided by, instead of meaning no warm-up": _train_vae_wrong(guard_zero=False),
                "the last, smaller batch of each epoch dropped": _train_vae_wrong(drop_last=True),
            },
        ),
        Exercise(
            ref.VAE,
            _vae_cases,
            hint="which half of the encoder's output is mu; how the noise is scaled before decoding; the decoder must "
            "work on its own; and with noise=None, fresh standard normal noise on every call.",
            wrong={
                "mu and logvar halves swapped": _VAESwapped,
                "noise scaled by the variance instead of the standard deviation": _VAEVarianceScale,
                "decodes mu, ignoring the noise": _VAEDecodesMu,
                "the final Sigmoid applied in forward, outside the decoder": _VAESigmoidInForward,
                "uniform noise in [0, 1) instead of standard normal when no noise is given": _VAEUniformNoise,
                "latent_dim not stored": _VAENoLatentDim,
            },
            extra=_vae_extra,
            oracle=_OracleVAE,
        ),
        Exercise(
            ref.log_likelihood_estimate,
            _log_likelihood_cases,
            run=_log_likelihood_run,
            oracle=_log_likelihood_oracle,
            hint="work the first hand case on paper (two codes, one pixel); then look at where you take the mean over "
            "the samples: of the ratios, not of their logs, and without leaving the log domain (the second hand "
            "case's ratios are all about e^-180000); the pixel noise's variance is beta / 2, and every density "
            "keeps its normalising constant.",
            wrong={
                "the log of the mean of the ratios, which underflows to -inf": _log_likelihood_wrong("log of mean"),
                "the mean of the log-ratios (the ELBO) instead of the log of the mean ratio": _log_likelihood_wrong(
                    "mean of log"
                ),
                "no -log(samples): the log of the sum of the ratios, not of their mean": _log_likelihood_wrong(
                    "logsumexp"
                ),
                "pixel noise of variance beta instead of beta / 2": _log_likelihood_wrong(variance_factor=1.0),
                "the pixel density's normalising constant left out": _log_likelihood_wrong(constants=False),
                "log q(z | x) without its log-variance term": _log_likelihood_wrong(q_logvar=False),
                "mu decoded instead of the sampled codes": _log_likelihood_wrong(decode_mu=True),
            },
        ),
        Exercise(
            ref.conv_transpose2d,
            _conv_transpose2d_cases,
            hint="work the two hand cases on paper (stride 1 with overlapping windows; stride 2 with padding 1 and a "
            "bias); then check which axis of the weight holds the input channels, that padding is cut from both "
            "ends of each side, and that a kernel's height and width may differ.",
            wrong={
                "an ordinary convolution of the zero-stuffed input, kernel not flipped": _convT_unflipped_conv,
                "weight read as (out_channels, in_channels), like Conv2d's": _convT_channels_mixed_up,
                "padding cut from the top and left only": _convT_padding_one_side,
                "stride ignored": _convT_stride_ignored,
                "the kernel taken to be square (its width used for its height)": _convT_square_kernel,
                "padding cut with a negative slice end, which leaves nothing when padding is 0": _convT_negative_slice,
            },
            oracle=_conv_transpose2d_oracle,
        ),
        Exercise(
            ref.Generator,
            _generator_cases,
            hint="compare your layers with the table in order; outputs lie in (0, 1); in training mode batch norm "
            "uses each batch's own statistics; and the training loop reads generator.latent_dim.",
            wrong={
                "Tanh at the end (for data in [-1, 1]; ours is in [0, 1])": _GeneratorTanh,
                "LeakyReLU instead of ReLU in the generator": _GeneratorLeaky,
                "batch norm in eval mode during training": _GeneratorEvalBatchNorm,
                "latent_dim not stored": _GeneratorNoLatentDim,
            },
            extra=_generator_extra,
            oracle=_OracleGenerator,
        ),
        Exercise(
            ref.Discriminator,
            _discriminator_cases,
            hint="compare your layers with the table in order, LeakyReLU's slope included; the output is one logit "
            "per image (any real number, not a probability), shape (batch,) even for a batch of one.",
            wrong={
                "a sigmoid at the end: probabilities instead of logits": _DiscriminatorSigmoid,
                "ReLU instead of LeakyReLU": _DiscriminatorRelu,
                "LeakyReLU with its default slope 0.01 instead of 0.2": _DiscriminatorDefaultSlope,
                "every axis of size 1 squeezed, so a batch of one loses its batch axis": _DiscriminatorSqueezeAll,
            },
            oracle=_OracleDiscriminator,
        ),
        Exercise(
            ref.discriminator_loss,
            lambda gen: _logit_cases(gen, pairs=True),
            hint="real images are labelled 1 and fakes 0; each batch is averaged on its own and the two averages "
            "added; and the loss must stay finite for logits like -200 and 200.",
            wrong={
                "the log of the sigmoid computed directly, infinite for extreme logits": lambda r, f: (
                    -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
                ),
                "probabilities through F.binary_cross_entropy, whose log is clamped at -100": lambda r, f: (
                    F.binary_cross_entropy(torch.sigmoid(r), torch.ones_like(r))
                    + F.binary_cross_entropy(torch.sigmoid(f), torch.zeros_like(f))
                ),
                "labels swapped (real 0, fake 1)": lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(),
                "the two terms averaged, not added": lambda r, f: (F.softplus(-r).mean() + F.softplus(f).mean()) / 2,
                "real and fake terms added element by element, which needs equal batch sizes": lambda r, f: (
                    F.softplus(-r) + F.softplus(f)
                ).mean(),
            },
            oracle=_discriminator_loss_oracle,
        ),
        Exercise(
            ref.generator_loss,
            lambda gen: _logit_cases(gen, pairs=False),
            hint="the non-saturating loss labels every fake as real, is lowest when D is fooled, and must stay finite "
            "for logits like -200 and 200.",
            wrong={
                "the saturating loss, log(1 - D(fake))": lambda f: -F.softplus(f).mean(),
                "the log of the sigmoid computed directly, infinite for extreme logits": lambda f: (
                    -torch.log(torch.sigmoid(f)).mean()
                ),
                "sign flipped": lambda f: -F.softplus(-f).mean(),
                "fakes labelled 0 (the discriminator's target) instead of 1": lambda f: F.softplus(f).mean(),
            },
            oracle=_generator_loss_oracle,
        ),
        Exercise(
            ref.gan_step,
            _gan_step_cases,
            run=_gan_step_run,
            oracle=_gan_step_oracle,
            hint="follow the gradients: when D's optimizer steps, D's gradients must come from D's loss alone "
            "(none left over from the last round, none from G's loss) and G's must not have received any; "
            "when G's optimizer steps, G's gradients must come from G's loss through the updated D. Real and "
            "fake images go through D as separate batches, and the accuracy is D's before its update, the "
            "mean of its accuracy on each batch.",
            wrong={
                "forgets to detach the fakes in the discriminator step, then makes new fakes": _gan_step_wrong(
                    detach=False, new_fakes_for_g=True
                ),
                "forgets to detach the fakes in the discriminator step": _gan_step_wrong(detach=False),
                "never zeroes the discriminator's gradients, so earlier ones are added": _gan_step_wrong(zero_d=False),
                "both backward passes before either update, so D also follows the generator's loss": _gan_step_wrong(
                    backward_both_first=True
                ),
                "real and fake images through D as one batch, so batch norm mixes their statistics": _gan_step_wrong(
                    one_batch=True
                ),
                "the fakes detached in the generator's step too, so no gradient reaches the generator": _gan_step_wrong(
                    detach_for_g=True
                ),
                "the accuracy measured after the discriminator's update": _gan_step_wrong(accuracy_after=True),
                "the accuracy pooled over all images instead of averaged over the two batches": _gan_step_wrong(
                    pooled_accuracy=True
                ),
            },
        ),
        Exercise(
            ref.slerp,
            _slerp_cases,
            oracle=_slerp_oracle,
            hint="the two end points first (weight 0 gives z0); then the norm half way between two codes of equal "
            "norm, which should not shrink; then two codes pointing the same way: what does the angle between "
            "them come out as in float32, and what do your sines divide by then?",
            wrong={
                "a straight line (lerp) instead of the arc": lambda z0, z1, w: (1 - w[:, None]) * z0 + w[:, None] * z1,
                "the angle from the plain dot product, not divided by the norms": _slerp_wrong(normalise_cosine=False),
                "no clamp: a cosine that rounds above 1 makes arccos NaN": _slerp_wrong(clamp=False),
                "no special case for codes pointing the same way: sin(0) in the denominator gives NaN": _slerp_wrong(
                    fallback=False
                ),
                "the two sine weights swapped, so weight 0 gives z1": _slerp_wrong(swapped=True),
                "the unit directions interpolated, losing the codes' lengths": _slerp_wrong(unit=True),
            },
        ),
        Exercise(
            ref.initialise_weights,
            _init_cases,
            run=_init_stats,
            atol=0.004,
            rtol=0.0,
            hint="compare the spread of each weight with 0.02 (a standard deviation, not a variance), batch-norm "
            "scales centred on 1, and biases at zero; every nested layer counts, and some layers have no bias.",
            wrong={
                "variance 0.02 instead of standard deviation 0.02": _init_wrong(std=0.02**0.5),
                "batch-norm layers left at their defaults": _init_wrong(batch_norm=False),
                "ConvTranspose2d layers left out": _init_wrong(transposed=False),
                "biases left at their defaults": _init_wrong(biases=False),
                "only the top-level layers (children), not nested ones": _init_wrong(nested=False),
                "a missing bias (bias=False) zeroed as if it were a tensor": _init_wrong(missing_bias_checked=False),
            },
        ),
    ],
)
