"""Published Chinchilla numbers through the lab's tested closed form (`scaling.fitting.laws`).

    python analysis/chinchilla_published.py [--out analysis/figures]

Inputs are the parameters as printed in the papers; everything else is computed:
- Hoffmann et al. 2022, eq. (10): E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28. The paper states
  a=0.46, b=0.54 for approach 3 (Table 2) from its unrounded fit.
- Besiroglu et al. 2024 ("Chinchilla Scaling: A replication attempt"), their refit of the same data:
  E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658.
Prints the compute-optimal exponents, G, and the allocation at Gopher's budget (5.76e23 FLOPs, where
Chinchilla itself used 70B parameters and 1.4T tokens), and draws N_opt(C) and D_opt(C) for both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scaling.fitting import laws

PUBLISHED = {
    "Hoffmann eq. (10)": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "Besiroglu et al. refit": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
}
STATED_APPROACH_3 = (0.46, 0.54)  # Hoffmann et al. Table 2
GOPHER_FLOPS = 5.76e23
CHINCHILLA = (70e9, 1.4e12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "figures"))
    args = parser.parse_args()
    print(f"{'law':<24} {'a':>7} {'b':>7} {'G':>7} {'N_opt(5.76e23)':>15} {'D_opt':>10} {'L_opt':>7}")
    for name, p in PUBLISHED.items():
        a, b = laws.chinchilla_exponents(p)
        n, d = laws.chinchilla_optimal(p, GOPHER_FLOPS)
        g = n / (GOPHER_FLOPS / 6) ** a
        loss = laws.chinchilla_loss(p, n, d)
        print(f"{name:<24} {a:>7.4f} {b:>7.4f} {g:>7.4f} {n:>15.3g} {d:>10.3g} {loss:>7.4f}")
    print(
        f"Hoffmann et al. state a={STATED_APPROACH_3[0]}, b={STATED_APPROACH_3[1]} for approach 3; "
        f"Chinchilla used N={CHINCHILLA[0]:.3g}, D={CHINCHILLA[1]:.3g} at {GOPHER_FLOPS:.3g} FLOPs."
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    c = np.geomspace(1e18, 1e26, 100)
    for (name, p), colour in zip(PUBLISHED.items(), ("C0", "C3"), strict=True):
        n, d = laws.chinchilla_optimal(p, c)
        ax.plot(c, n, color=colour, label=f"N_opt, {name}")
        ax.plot(c, d, color=colour, ls="--", label=f"D_opt, {name}")
    ax.scatter(
        [GOPHER_FLOPS] * 2, CHINCHILLA, color="k", marker="*", s=80, zorder=3, label="Chinchilla (70B, 1.4T)"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs, 6ND)")
    ax.set_ylabel("compute-optimal parameters N / tokens D")
    ax.set_title("Compute-optimal allocation from published approach-3 fits")
    ax.legend(fontsize=7)
    for ext in ("png", "svg"):
        fig.savefig(out / f"chinchilla_allocation.{ext}", dpi=150, bbox_inches="tight")
    print(f"wrote {out / 'chinchilla_allocation.png'} and .svg")


if __name__ == "__main__":
    main()
