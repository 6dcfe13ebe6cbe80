"""The laws as plain float64 numpy formulas, with parameters under the papers' names.

Every function broadcasts, so a dict of bootstrap samples (arrays) gives a distribution of predictions.

- Chinchilla (Hoffmann et al. 2022, eq. 2): `L(N, D) = E + A/N^alpha + B/D^beta`. Under `C = k N D`
  (k = 6 for 6ND) the loss-minimising allocation is `N_opt = G (C/k)^a`, `D_opt = G^-1 (C/k)^b` with
  `G = (alpha A / (beta B))^(1/(alpha+beta))`, `a = beta/(alpha+beta)`, `b = alpha/(alpha+beta)` (eq. 4).
- Compute law (GPT-4 technical report): `L(C) = E + A C^-alpha`.
- Kaplan et al. 2020: `L(N) = (N_c/N)^alpha_N`, `L(D) = (D_c/D)^alpha_D`; for a given N and D the two combine
  as in their eq. (1.5), `L(N, D) = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D`, which tends to each
  one-variable law when the other resource is unlimited.
- IsoFLOP / envelope allocation: `N_opt = k_N C^a`, `D_opt = k_D C^b`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Params = Mapping[str, float | np.ndarray]


def chinchilla_loss(p: Params, N, D):
    return p["E"] + p["A"] / np.power(N, p["alpha"]) + p["B"] / np.power(D, p["beta"])


def chinchilla_exponents(p: Params) -> tuple:
    """(a, b): N_opt ∝ C^a and D_opt ∝ C^b."""
    total = p["alpha"] + p["beta"]
    return p["beta"] / total, p["alpha"] / total


def chinchilla_optimal(p: Params, C, flops_per_param_token: float = 6.0) -> tuple:
    """Closed-form (N_opt, D_opt) minimising L(N, D) subject to C = k N D."""
    a, b = chinchilla_exponents(p)
    g = np.power(p["alpha"] * p["A"] / (p["beta"] * p["B"]), 1.0 / (p["alpha"] + p["beta"]))
    budget = np.asarray(C, dtype=np.float64) / flops_per_param_token
    return g * np.power(budget, a), np.power(budget, b) / g


def compute_loss(p: Params, C):
    return p["E"] + p["A"] * np.power(C, -p["alpha"])


def kaplan_loss_n(p: Params, N):
    return np.power(p["N_c"] / N, p["alpha_N"])


def kaplan_loss_d(p: Params, D):
    return np.power(p["D_c"] / D, p["alpha_D"])


def kaplan_loss(p: Params, N, D):
    return np.power(
        np.power(p["N_c"] / N, p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D,
        p["alpha_D"],
    )


def allocation(p: Params, C) -> tuple:
    """(N_opt, D_opt) from fitted power laws `N_opt = k_N C^a`, `D_opt = k_D C^b` (IsoFLOP, envelope)."""
    return p["k_N"] * np.power(C, p["a"]), p["k_D"] * np.power(C, p["b"])
