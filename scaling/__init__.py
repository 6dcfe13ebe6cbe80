"""scaling: train GPT ladders in JAX/Flax NNX, fit scaling laws, extrapolate with honest uncertainty."""

__version__ = "0.1.0"
