"""The Hoffmann et al. objective, generalised: Huber loss of log-space residuals of a sum of power laws.

A law `L = exp(e) + sum_k exp(c_k - alpha_k * X_k)` (X_k = log N, log D or log C) is compared with the
observed loss in log space, `r = log(L_pred) - log(L)`, and the fit minimises `sum_i w_i * Huber_delta(r_i)`.
The sum (not the mean) matters: with the mean, gradients are ~1/n smaller and loose tolerances stop short
(Besiroglu et al. 2024). Integer weights `w` express a bootstrap resample without copying the table.

Parameter vector layout: `[c_1..c_K, alpha_1..alpha_K]` followed by `e` when the law has an irreducible
term. Chinchilla is K=2 with `e`, the GPT-4 compute law K=1 with `e`, a Kaplan power law K=1 without.

The gradient is written by hand: with autodiff, XLA recomputed the exponentials once per reduction and the
4500-start grid evaluation was several times slower on CPU.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

HUBER_DELTA = 1e-3


def huber_lse_value_and_grad(x_SxP, data):
    """Objective and gradient for S parameter vectors at once (float64 JAX arrays).

    data: `X` (K, n) log inputs, `y` (n,) log losses, `w` (n,) or (S, n) weights, `delta` scalar.
    Exponentials are not max-shifted: a trial point that overflows gives a non-finite value, which the line
    search rejects; inside the search region every term is well within float64 range.
    """
    X_KxN, y_N, w, delta = data["X"], data["y"], data["w"], data["delta"]
    k = X_KxN.shape[0]
    c_SxK = x_SxP[:, :k]
    alpha_SxK = x_SxP[:, k : 2 * k]
    u_SxKxN = jnp.exp(c_SxK[:, :, None] - alpha_SxK[:, :, None] * X_KxN[None])
    s_SxN = jnp.sum(u_SxKxN, axis=1)
    has_e = x_SxP.shape[1] == 2 * k + 1
    if has_e:
        big_e_S = jnp.exp(x_SxP[:, 2 * k])
        s_SxN = s_SxN + big_e_S[:, None]
    r_SxN = jnp.log(s_SxN) - y_N
    abs_r = jnp.abs(r_SxN)
    huber = jnp.where(abs_r <= delta, 0.5 * r_SxN * r_SxN, delta * (abs_r - 0.5 * delta))
    f_S = jnp.sum(w * huber, axis=1)
    q_SxN = w * jnp.clip(r_SxN, -delta, delta) / s_SxN
    qu_SxKxN = q_SxN[:, None, :] * u_SxKxN
    grads = [jnp.sum(qu_SxKxN, axis=2), -jnp.sum(qu_SxKxN * X_KxN[None], axis=2)]
    if has_e:
        grads.append((big_e_S * jnp.sum(q_SxN, axis=1))[:, None])
    return f_S, jnp.concatenate(grads, axis=1)


def huber_lse_value_numpy(x_P: np.ndarray, X_KxN: np.ndarray, y_N: np.ndarray, w_N: np.ndarray) -> float:
    """The same objective for one parameter vector in plain float64 numpy, max-shifted: an independent
    reference for tests and for reporting."""
    k = X_KxN.shape[0]
    terms = [x_P[i] - x_P[k + i] * X_KxN[i] for i in range(k)]
    if x_P.shape[0] == 2 * k + 1:
        terms.append(np.full_like(y_N, x_P[2 * k]))
    t = np.stack(terms)
    m = t.max(axis=0)
    r = m + np.log(np.exp(t - m).sum(axis=0)) - y_N
    a = np.abs(r)
    h = np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    return float(np.sum(w_N * h))
