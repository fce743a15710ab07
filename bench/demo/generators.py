"""Generator-like pipelines that re-synthesise a real patch into a demo "fake".

None of these is a trained generator. Each one shrinks the real patch (the "latent"), then rebuilds it at
full size with the up-sampling operation that characterises a family of image generators, using
convolution weights drawn from a seeded torch.Generator. The weights are a sensible kernel (the identity
or an interpolation kernel) plus a seeded random perturbation, and every random non-linear branch is a
small residual, so that a fake looks like its source patch with the family's artefacts rather than like
noise.

GAN family (demo-gan; `tconv` also makes demo-train and demo-val, as ProGAN does in the paper):
- tconv: 2x down, stride-2 transposed convolution (4x4 kernel); uneven kernel taps leave a checkerboard.
- nearest-conv: 2x down, nearest-neighbour up-sampling, then a weakly smoothing 3x3 convolution.
- pixel-shuffle: 2x down, a 3x3 convolution to 4 sub-pixel phases (each with its own gain and bias),
  then pixel shuffle (sub-pixel convolution).
- bilinear-noise: 2x down, bilinear up-sampling, per-pixel noise injection, then a 3x3 convolution
  (style-based generators).

Diffusion family (demo-diffusion):
- bicubic-smooth: 2x down, bicubic up-sampling, then a learned-looking smoothing convolution
  (a pixel-space super-resolution stage).
- autoencoder: a small convolutional autoencoder (4x down to a 4-channel latent, bilinear decoder) whose
  reconstruction keeps half of the source's fine detail.
- noise-denoise: Gaussian noise, then a local Wiener denoiser and a smoothing convolution (one reverse
  step of a pixel diffusion model).
- latent-decoder: an 8x down 4-channel latent decoded by three nearest-up + convolution stages (as the
  Stable Diffusion VAE decoder does), plus most of the source's fine detail.

All arithmetic is float32 on the CPU. Images go through in chunks of CHUNK (the last one padded), so a
fake does not depend on how many others are made with it; the build runs torch single-threaded, which
makes the bytes repeatable on one machine.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 8  # small batches stay in the CPU cache: several times faster than 32 here
FAMILIES = ("gan", "diffusion")


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def _per_channel(kernel: torch.Tensor, in_ch: int = 3, out_ch: int = 3) -> torch.Tensor:
    """A conv weight (out, in, k, k) that applies `kernel` to each channel separately."""
    weight = torch.zeros(out_ch, in_ch, *kernel.shape)
    for c in range(min(in_ch, out_ch)):
        weight[c, c] = kernel
    return weight


def _perturb(weight: torch.Tensor, gen: torch.Generator, strength: float, out_dim: int = 0) -> torch.Tensor:
    """Add seeded noise to an ideal kernel: a "trained" kernel is never exactly ideal.

    The noise is relative to the largest tap and five times weaker between channels that the ideal kernel
    does not connect (a generator does not tint its output). Each output channel is then rescaled to the
    ideal kernel's total gain, so brightness is kept while the taps' uneven distribution (the artefact)
    stays. `out_dim` is 1 for conv_transpose2d weights, which are laid out (in, out, k, k).
    """
    connected = (weight.abs().sum(dim=(2, 3), keepdim=True) > 0).float()
    noise = _randn(gen, *weight.shape) * (0.2 + 0.8 * connected)
    perturbed = weight + strength * weight.abs().max() * noise
    other = (1 - out_dim, 2, 3)
    return perturbed * (weight.sum(dim=other, keepdim=True) / perturbed.sum(dim=other, keepdim=True))


def _outer(k: list[float]) -> torch.Tensor:
    v = torch.tensor(k, dtype=torch.float32)
    return torch.outer(v, v)


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """'Same' convolution with replicate padding, so no generator leaves a dark frame round the image."""
    pad = weight.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), weight, bias)


def _down(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool2d(x, factor)


def _up(x: torch.Tensor, factor: int, mode: str) -> torch.Tensor:
    if mode == "nearest":
        return F.interpolate(x, scale_factor=factor, mode="nearest")
    return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)


class Refiner:
    """A two-layer random conv branch added as a small residual: content-dependent texture at edges and in
    detail, the way a generator's last layers never reproduce an image exactly."""

    def __init__(self, gen: torch.Generator, strength: float, channels: int = 3, width: int = 8) -> None:
        self.w1 = _randn(gen, width, channels, 3, 3) * (2.0 / (channels * 9)) ** 0.5
        self.b1 = 0.1 * _randn(gen, width)
        w2 = _randn(gen, channels, width, 3, 3) * (2.0 / (width * 9)) ** 0.5
        # Zero-sum output kernels: a flat area gives no response, so the branch adds texture at edges and
        # in detail, not a colour cast over the whole image.
        self.w2 = w2 - w2.mean(dim=(1, 2, 3), keepdim=True)
        self.strength = strength

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Pad the (few-channel) input by 2 once and run both convs unpadded: the same as padding each
        # layer except on the outermost pixel ring, and cheaper than padding the wider hidden layer.
        hidden = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.w1, self.b1).relu_()
        return x + self.strength * torch.tanh(F.conv2d(hidden, self.w2))


class LatentMix:
    """A random orthonormal map from RGB to a 4-channel latent and its exact inverse on the RGB part."""

    def __init__(self, gen: torch.Generator, channels: int = 4) -> None:
        q, _ = torch.linalg.qr(_randn(gen, channels, 3))
        self.encode_w = q.reshape(channels, 3, 1, 1).contiguous()
        self.decode_w = q.T.reshape(3, channels, 1, 1).contiguous()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.encode_w)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, self.decode_w)


# ---- GAN family -------------------------------------------------------------------------------------


class TransposedConv:
    def __init__(self, gen: torch.Generator) -> None:
        # [1, 3, 3, 1] / 4 in each direction is bilinear up-sampling; perturbed taps no longer sum to the
        # same value for even and odd output pixels, hence the checkerboard.
        base = _outer([0.25, 0.75, 0.75, 0.25])
        self.weight = _perturb(_per_channel(base), gen, 0.12, out_dim=1)
        self.refine = Refiner(gen, 0.04)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        low = F.pad(_down(x, 2), (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(low, self.weight, stride=2, padding=1)[:, :, 2:-2, 2:-2]
        return self.refine(up)


class NearestConv:
    def __init__(self, gen: torch.Generator) -> None:
        # A weak smoother: nearest-neighbour blocks stay partly visible, as in upsample+conv generators.
        self.weight = _perturb(_per_channel(_outer([0.15, 0.7, 0.15])), gen, 0.12)
        self.refine = Refiner(gen, 0.04)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return self.refine(_conv(_up(_down(x, 2), 2, "nearest"), self.weight))


class PixelShuffle:
    def __init__(self, gen: torch.Generator) -> None:
        # Sub-pixel phase 0 sits a quarter pixel before its low-res source, phase 1 a quarter after.
        phase = {0: [0.25, 0.75, 0.0], 1: [0.0, 0.75, 0.25]}
        weight = torch.zeros(12, 3, 3, 3)
        for c in range(3):
            for dy in (0, 1):
                for dx in (0, 1):
                    k = torch.outer(torch.tensor(phase[dy]), torch.tensor(phase[dx]))
                    weight[c * 4 + dy * 2 + dx, c] = k
        weight = _perturb(weight, gen, 0.08)
        # Each phase is its own output channel of the conv, so each learns its own gain and bias.
        gain = 1.0 + 0.04 * _randn(gen, 12)
        self.weight = weight * gain.view(12, 1, 1, 1)
        self.bias = 0.025 * _randn(gen, 12)
        self.refine = Refiner(gen, 0.04)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return self.refine(F.pixel_shuffle(_conv(_down(x, 2), self.weight, self.bias), 2))


class BilinearNoise:
    def __init__(self, gen: torch.Generator) -> None:
        self.noise_strength = 0.02 + 0.03 * _randn(gen, 1, 3, 1, 1).abs()
        self.weight = _perturb(_per_channel(_outer([0.1, 0.8, 0.1])), gen, 0.1)
        self.refine = Refiner(gen, 0.05)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        up = _up(_down(x, 2), 2, "bilinear")
        injected = up + self.noise_strength * _randn(noise, x.shape[0], 1, *up.shape[2:])
        return self.refine(_conv(injected, self.weight))


# ---- diffusion family -------------------------------------------------------------------------------


def _gaussian(sigma: float, size: int = 3) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-(r**2) / (2 * sigma**2))
    k = torch.outer(k, k)
    return k / k.sum()


class BicubicSmooth:
    def __init__(self, gen: torch.Generator) -> None:
        self.weight = _perturb(_per_channel(_gaussian(0.6)), gen, 0.05)
        self.refine = Refiner(gen, 0.03)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return self.refine(_conv(_up(_down(x, 2), 2, "bicubic"), self.weight))


class AutoEncoder:
    DETAIL = 0.5  # share of the source's fine detail the reconstruction keeps

    def __init__(self, gen: torch.Generator) -> None:
        self.mix = LatentMix(gen)
        self.encoder = Refiner(gen, 0.05, channels=4)
        self.decoder = Refiner(gen, 0.05, channels=4)
        self.smooth = _perturb(_per_channel(_gaussian(0.5)), gen, 0.05)
        self.refine = Refiner(gen, 0.03)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        low = _down(x, 4)
        z = self.encoder(self.mix.encode(low))
        h = self.decoder(_up(z, 2, "bilinear"))
        rebuilt = _conv(self.mix.decode(_up(h, 2, "bilinear")), self.smooth)
        detail = x - _up(low, 4, "bilinear")
        return self.refine(rebuilt + self.DETAIL * detail)


def _box5(x: torch.Tensor) -> torch.Tensor:
    """5x5 local mean, replicate-padded, as sums of shifted slices (avg_pool2d is several times slower)."""
    p = F.pad(x, (2, 2, 2, 2), mode="replicate")
    rows = p[:, :, 0:-4] + p[:, :, 1:-3] + p[:, :, 2:-2] + p[:, :, 3:-1] + p[:, :, 4:]
    return (rows[..., 0:-4] + rows[..., 1:-3] + rows[..., 2:-2] + rows[..., 3:-1] + rows[..., 4:]) / 25.0


class NoiseDenoise:
    SIGMA = 0.08  # on the [-1, 1] scale: about 10 grey levels

    def __init__(self, gen: torch.Generator) -> None:
        self.smooth = _perturb(_per_channel(_gaussian(0.5)), gen, 0.05)
        self.refine = Refiner(gen, 0.02)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        noisy = x + self.SIGMA * _randn(noise, *x.shape)
        # Local Wiener filter: keep what stands above the known noise level, average the rest away.
        mean = _box5(noisy)
        var = (_box5(noisy**2) - mean**2).clamp_min(1e-8)
        gain = ((var - self.SIGMA**2) / var).clamp(0.0, 1.0)
        return self.refine(_conv(mean + gain * (noisy - mean), self.smooth))


class LatentDecoder:
    DETAIL = 0.75

    def __init__(self, gen: torch.Generator) -> None:
        self.mix = LatentMix(gen)
        self.stages = [
            (_perturb(_per_channel(_outer([0.2, 0.6, 0.2]), 4, 4), gen, 0.08), Refiner(gen, 0.04, channels=4))
            for _ in range(3)
        ]
        self.refine = Refiner(gen, 0.03)

    def __call__(self, x: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        low = _down(x, 8)
        h = self.mix.encode(low)
        for weight, refine in self.stages:
            h = refine(_conv(_up(h, 2, "nearest"), weight))
        detail = x - _up(low, 8, "bilinear")
        return self.refine(self.mix.decode(h) + self.DETAIL * detail)


# ---- registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    family: str
    description: str
    make: Callable[[torch.Generator], Callable[[torch.Tensor, torch.Generator], torch.Tensor]]


GENERATORS: dict[str, GeneratorSpec] = {
    spec.name: spec
    for spec in (
        GeneratorSpec("tconv", "gan", "stride-2 transposed convolution (checkerboard)", TransposedConv),
        GeneratorSpec("nearest-conv", "gan", "nearest-neighbour up-sampling + 3x3 convolution", NearestConv),
        GeneratorSpec("pixel-shuffle", "gan", "sub-pixel convolution (pixel shuffle)", PixelShuffle),
        GeneratorSpec(
            "bilinear-noise", "gan", "bilinear up-sampling + noise injection + convolution", BilinearNoise
        ),
        GeneratorSpec(
            "bicubic-smooth", "diffusion", "bicubic up-sampling + learned-looking smoothing", BicubicSmooth
        ),
        GeneratorSpec(
            "autoencoder", "diffusion", "small convolutional autoencoder reconstruction", AutoEncoder
        ),
        GeneratorSpec("noise-denoise", "diffusion", "Gaussian noise, then a Wiener denoiser", NoiseDenoise),
        GeneratorSpec(
            "latent-decoder", "diffusion", "8x latent decoded by nearest-up + conv stages", LatentDecoder
        ),
    )
}


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


class Synthesiser:
    """A generator with its weights drawn once; `weights_seed` names the weights (the same name gives the
    same weights in every suite), `noise_seed` the per-image noise stream of one output folder."""

    def __init__(self, name: str, weights_seed: str) -> None:
        self.spec = GENERATORS[name]
        self.model = self.spec.make(torch.Generator().manual_seed(_seed("weights", name, weights_seed)))

    @torch.no_grad()
    def chunk(self, patches: np.ndarray, noise_seed: str, index: int) -> np.ndarray:
        """Chunk number `index` (at most CHUNK patches) of one output folder: (n, h, w, 3) uint8 -> same."""
        n = len(patches)
        if not 0 < n <= CHUNK:
            raise ValueError(f"a chunk holds 1 to {CHUNK} patches, got {n}")
        # One memory layout for every chunk, full or padded: the layout picks the conv kernels, and so the
        # rounding, and a fake must not depend on which chunk it falls in.
        nchw = torch.from_numpy(np.ascontiguousarray(patches)).permute(0, 3, 1, 2).contiguous()
        batch = nchw.float() / 127.5 - 1.0
        if n < CHUNK:  # pad, so that every chunk has one shape (and one conv algorithm)
            batch = torch.cat([batch, batch[-1:].expand(CHUNK - n, -1, -1, -1)])
        # Channels-last convolutions are about twice as fast on the CPU; every chunk takes this same path.
        batch = batch.contiguous(memory_format=torch.channels_last)
        noise = torch.Generator().manual_seed(_seed("noise", noise_seed, str(index)))
        fake = self.model(batch, noise)[:n]
        pixels = ((fake + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).contiguous().numpy()

    def __call__(self, patches: np.ndarray, noise_seed: str) -> np.ndarray:
        """All of one output folder's fakes, chunk by chunk."""
        parts = [
            self.chunk(patches[start : start + CHUNK], noise_seed, start // CHUNK)
            for start in range(0, len(patches), CHUNK)
        ]
        return np.concatenate(parts) if parts else patches.copy()
