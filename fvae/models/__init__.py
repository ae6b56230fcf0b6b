"""Flax modules of fvae's VAEs, and `build_model`, which makes the VAE a config describes.

    from fvae.models import Encoder, Decoder, VAE
    model = VAE(Encoder((512,), 32), Decoder((512,), (784,)))   # Bernoulli, N(0, I)

vae.py: VAEOutput (what every VAE returns) and VAE; mlp.py, conv.py: encoders and
decoders; hierarchical.py: the two-layer VAE. The architectures that assemble them from
a config are registered in fvae.models.architectures.
"""

from fvae.models.architectures import ARCHITECTURES
from fvae.models.conv import ConvDecoder, ConvEncoder, pixel_shuffle
from fvae.models.hierarchical import HierarchicalVAE
from fvae.models.likelihoods import build_likelihood
from fvae.models.mlp import NUM_PIXELS, Decoder, Encoder
from fvae.models.priors import build_prior
from fvae.models.registry import Architecture, lookup
from fvae.models.vae import VAE, VAEOutput

__all__ = ["NUM_PIXELS", "ConvDecoder", "ConvEncoder", "Decoder", "Encoder", "HierarchicalVAE", "VAE", "VAEOutput",
           "architecture", "build_model", "pixel_shuffle"]


def architecture(config) -> Architecture:
    """The architecture (fvae.models.architectures) that `config.model` names, with its own fields."""
    return lookup(ARCHITECTURES, config.model.architecture, "model.architecture").from_config(config.model)


def build_model(config) -> VAE:
    """The VAE a full config describes (sections model, likelihood, prior), each part by name."""
    return architecture(config).build(config.model, build_likelihood(config.likelihood), build_prior(config.prior))
