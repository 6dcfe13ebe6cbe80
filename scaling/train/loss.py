"""Token-level cross-entropy, returned as a sum and a token count so that gradient accumulation can weight
micro-batches by tokens and the accumulated loss equals the large-batch loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy_sum(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, mask_BxT: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Sum of -log p(target) over unmasked positions, and the number of those positions (float32)."""
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    nll_BxT = log_z_BxT - target_logit_BxT
    if mask_BxT is None:
        return nll_BxT.sum(), jnp.asarray(nll_BxT.size, jnp.float32)
    mask_BxT = mask_BxT.astype(jnp.float32)
    return (nll_BxT * mask_BxT).sum(), mask_BxT.sum()
