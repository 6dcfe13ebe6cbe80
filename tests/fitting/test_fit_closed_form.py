"""Closed forms against published numbers and against brute-force minimisation (plain numpy/scipy)."""

import numpy as np
import pytest
from fit_helpers import HOFFMANN
from scipy.optimize import minimize_scalar

from scaling.fitting import laws


def test_hoffmann_eq10_gives_their_compute_optimal_exponents():
    a, b = laws.chinchilla_exponents(HOFFMANN)
    assert a == pytest.approx(0.28 / 0.62, rel=1e-12)
    assert b == pytest.approx(0.34 / 0.62, rel=1e-12)
    assert a == pytest.approx(0.452, abs=5e-4) and b == pytest.approx(0.548, abs=5e-4)
    # The paper states a = 0.46, b = 0.54 for approach 3 (Table 2, from unrounded parameters): eq. (10)'s
    # rounded parameters land within 0.01 of them.
    assert abs(a - 0.46) < 0.01 and abs(b - 0.54) < 0.01


@pytest.mark.parametrize("k", [6.0, 7.3])
@pytest.mark.parametrize("C", [1e18, 5.76e23, 1e27])
def test_closed_form_matches_brute_force(C, k):
    n_opt, d_opt = laws.chinchilla_optimal(HOFFMANN, C, k)
    res = minimize_scalar(
        lambda x: laws.chinchilla_loss(HOFFMANN, np.exp(x), C / (k * np.exp(x))),
        bounds=(np.log(1e3), np.log(1e16)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert np.exp(res.x) == pytest.approx(n_opt, rel=1e-6)
    assert n_opt * d_opt * k == pytest.approx(C, rel=1e-12)
    assert laws.chinchilla_loss(HOFFMANN, n_opt, d_opt) <= res.fun + 1e-12


def test_closed_form_scales_with_exponents():
    n1, d1 = laws.chinchilla_optimal(HOFFMANN, 1e20)
    n2, d2 = laws.chinchilla_optimal(HOFFMANN, 1e22)
    a, b = laws.chinchilla_exponents(HOFFMANN)
    assert np.log(n2 / n1) / np.log(100) == pytest.approx(a, rel=1e-10)
    assert np.log(d2 / d1) / np.log(100) == pytest.approx(b, rel=1e-10)


def test_kaplan_joint_law_tends_to_each_single_law():
    p = {"alpha_N": 0.076, "N_c": 8.8e13, "alpha_D": 0.095, "D_c": 5.4e13}
    assert laws.kaplan_loss(p, 1e9, 1e30) == pytest.approx(laws.kaplan_loss_n(p, 1e9), rel=1e-9)
    assert laws.kaplan_loss(p, 1e40, 1e10) == pytest.approx(laws.kaplan_loss_d(p, 1e10), rel=1e-9)
