"""fvae's benchmark models written in PyTorch (eager), as a reference a user can run and compare.

    .venv-peers/bin/python benchmarks/peers/torch_vae.py --model conv_chollet [--epochs 3] [--json]

Models (the shapes of fvae's configs of the same names): `mlp500` (784-500-ReLU -> 20 latents -> 500-ReLU
-> 784), `conv_chollet` (Chollet's conv VAE: 3x3 stride-2 convs 32, 64, dense 16, 2 latents;
dense 7*7*64, 3x3 stride-2 transposed convs 64, 32, 3x3 conv to 1 logit) and `conv_2d` (the
same with each transposed conv replaced by a 3x3 conv to 4x the channels and a pixel shuffle).
All: Bernoulli likelihood on grey pixels (BCE with logits summed over pixels), analytic KL to
N(0, I), loss averaged over the batch, Adam 1e-3, batch 128: what fvae trains with these configs.

Data: uniform random uint8 images (fixed seed), as experiments.benchmark uses, reshuffled each
epoch. It trains one warm-up epoch, then --epochs timed ones, and prints images/s over the timed
epochs (all their images over all their seconds). --json prints one JSON line instead.
"""

from __future__ import annotations

import platform
import time

import torch
from common import arguments, report, synthetic_images
from torch import nn
from torch.nn import functional as F


class MLP500(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 2 * 20))
        self.decoder = nn.Sequential(nn.Linear(20, 500), nn.ReLU(), nn.Linear(500, 784))

    def encode(self, x):
        return self.encoder(x.flatten(1)).chunk(2, dim=1)

    def decode(self, z):
        return self.decoder(z)


class ConvVAE(nn.Module):
    """Chollet's conv VAE; upsample "transpose" (his) or "pixel_shuffle" (fvae's conv_2d)."""

    def __init__(self, upsample: str):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 16), nn.ReLU(), nn.Linear(16, 2 * 2))
        if upsample == "transpose":  # SAME padding of a stride-2 transposed conv: 7 -> 14 -> 28.
            blocks = [nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                      nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU()]
        else:
            blocks = [nn.Conv2d(64, 4 * 64, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(),
                      nn.Conv2d(64, 4 * 32, 3, padding=1), nn.PixelShuffle(2), nn.ReLU()]
        self.project = nn.Linear(2, 7 * 7 * 64)
        self.decoder = nn.Sequential(*blocks, nn.Conv2d(32, 1, 3, padding=1))

    def encode(self, x):
        return self.encoder(x.view(-1, 1, 28, 28)).chunk(2, dim=1)

    def decode(self, z):
        h = F.relu(self.project(z)).view(-1, 64, 7, 7)
        return self.decoder(h).flatten(1)


MODELS = {"mlp500": MLP500, "conv_chollet": lambda: ConvVAE("transpose"),
          "conv_2d": lambda: ConvVAE("pixel_shuffle")}


def negative_elbo(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Batch mean of BCE(x | decode(z)) summed over pixels + KL(q(z|x) || N(0, I))."""
    mean, logvar = model.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    logits = model.decode(z)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(1)
    return (reconstruction + kl).mean()


def train(name: str, epochs: int, train_images: int, batch_size: int) -> dict:
    torch.manual_seed(0)
    images = torch.from_numpy(synthetic_images(train_images))
    model = MODELS[name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = train_images // batch_size
    seconds = []
    for _ in range(epochs + 1):  # The first epoch warms up (allocator, oneDNN primitives).
        order = torch.randperm(train_images)
        begin = time.perf_counter()
        for i in range(steps):
            x = images[order[i * batch_size:(i + 1) * batch_size]].float() / 255
            optimizer.zero_grad(set_to_none=True)
            loss = negative_elbo(model, x)
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - begin)
    timed = seconds[1:]
    return {"peer": "pytorch_eager", "model": name, "batch_size": batch_size, "epochs_timed": epochs,
            "images_per_second": steps * batch_size * len(timed) / sum(timed),
            "seconds_per_epoch": timed, "final_loss": loss.item(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.machine()}


def main() -> None:
    args = arguments(__doc__.split("\n")[0], MODELS, "conv_chollet")
    result = train(args.model, args.epochs, args.train_images, args.batch_size)
    report(result, args.json, f"{args.model}: {result['images_per_second']:,.0f} images/s "
           f"(PyTorch {result['torch']} eager, {result['threads']} threads)")


if __name__ == "__main__":
    main()
