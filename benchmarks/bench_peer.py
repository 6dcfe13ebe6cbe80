"""Our train step against a PyTorch twin of the same GPT, side by side on one CPU (issue 16).

Why: a step's fraction of the matmul ceiling says little unless a peer on the same machine, at the same
thread count and matmul speed, shows what else is possible. The twin below is written here: scaling's decoder
(pre-LayerNorm blocks, one fused qkv projection with bias, GELU-tanh MLP of width F, learned positions, tied
embeddings, float32) with the same parameters and the same matmuls, as ModelConfig counts them: dense causal
attention, every query against all T keys (`--sdpa` uses torch's fused scaled_dot_product_attention as
nanoGPT does; it may skip masked blocks, i.e. do fewer FLOPs than credited). It starts from our init_state's
GPT-2 initialisation, copied over, so both train the same weights on the same random batches and the first
steps' losses must agree; it trains with torch.optim.AdamW (fused where torch has it on CPU, else foreach)
with OptimConfig's betas, eps, decay on matrices only and global-norm clip. Ours is the trainer's own step
(make_layout, init_state, make_train_step, make_optimizer), no host sync inside a timed block.

Timing: after two warm-up steps each, every round times a block of our steps and a block of torch's (the
order flips each round), each block followed by its framework's float32 2048x2048 matmul probe; the table
gives medians per framework. Threads: both frameworks use the cores of the process's affinity mask, so run
under taskset; torch.set_num_threads and OMP_NUM_THREADS are set to that count, XLA sizes its pool from the
mask (pass XLA_FLAGS=--xla_cpu_multi_thread_eigen=false on one core to say so explicitly).

Memory: like `scaling train`, the process first calls `keep_freed_memory` (scaling.train.host_memory), so
glibc reuses freed blocks instead of page-faulting fresh ones each step; the setting is process-wide, so the
twin gets it too (`--system-malloc` leaves glibc's defaults, for both).

    taskset -c 1 python benchmarks/bench_peer.py [--rounds 5] [--steps 3] [--sdpa] [--system-malloc] [--write]

torch is the `peer` extra (pip install -e ".[peer]"); the library and the tests never import it.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from report import machine_line, write_section
from torch import nn

from scaling.model.config import ModelConfig
from scaling.model.sharding import MeshConfig, make_mesh, microbatch_sharding
from scaling.train.host_memory import keep_freed_memory
from scaling.train.mfu import best_seconds, measure_matmul_flops
from scaling.train.optimizer import OptimConfig, make_optimizer
from scaling.train.state import init_state, make_layout
from scaling.train.step import make_train_step

SECTION = "## Train step against a PyTorch twin (issue 16)"
SHAPES = ((32, 16), (64, 16), (128, 64), (256, 64))  # (D, head width); V=8192, T=256, L=4
BATCH = 16
OPTIM = OptimConfig()
THREADS = len(os.sched_getaffinity(0))
NAMES = ("ours", "torch")


class TwinBlock(nn.Module):
    """x + attn(ln1(x)), then x + mlp(ln2(x)): scaling's Block without dropout."""

    def __init__(self, cfg: ModelConfig, sdpa: bool):
        super().__init__()
        self.cfg, self.sdpa = cfg, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(cfg.D), nn.LayerNorm(cfg.D)
        self.qkv, self.out = nn.Linear(cfg.D, 3 * cfg.D), nn.Linear(cfg.D, cfg.D)
        self.fc, self.proj = nn.Linear(cfg.D, cfg.F), nn.Linear(cfg.F, cfg.D)
        self.register_buffer("causal_TxT", torch.ones(cfg.T, cfg.T, dtype=torch.bool).tril())

    def attend(self, q_BxHxTxK: torch.Tensor, k_BxHxTxK: torch.Tensor, v_BxHxTxK: torch.Tensor):
        if self.sdpa:
            return F.scaled_dot_product_attention(q_BxHxTxK, k_BxHxTxK, v_BxHxTxK, is_causal=True)
        scores_BxHxTxT = (q_BxHxTxK / math.sqrt(self.cfg.head_dim)) @ k_BxHxTxK.transpose(-1, -2)
        scores_BxHxTxT = scores_BxHxTxT.masked_fill(~self.causal_TxT, torch.finfo(torch.float32).min)
        return scores_BxHxTxT.softmax(-1) @ v_BxHxTxK

    def forward(self, x_BxTxD: torch.Tensor) -> torch.Tensor:
        B, T, D = x_BxTxD.shape
        qkv_BxTx3xHxK = self.qkv(self.ln1(x_BxTxD)).view(B, T, 3, self.cfg.H, self.cfg.head_dim)
        out_BxHxTxK = self.attend(*qkv_BxTx3xHxK.permute(2, 0, 3, 1, 4).unbind(0))
        x_BxTxD = x_BxTxD + self.out(out_BxHxTxK.transpose(1, 2).reshape(B, T, D))
        return x_BxTxD + self.proj(F.gelu(self.fc(self.ln2(x_BxTxD)), approximate="tanh"))


class TwinGPT(nn.Module):
    """Token + learned position embedding, L blocks, final LayerNorm, logits through the token table."""

    def __init__(self, cfg: ModelConfig, sdpa: bool):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(cfg.V, cfg.D), nn.Embedding(cfg.T, cfg.D)
        self.blocks = nn.ModuleList(TwinBlock(cfg, sdpa) for _ in range(cfg.L))
        self.ln_f = nn.LayerNorm(cfg.D)

    def forward(self, tokens_BxT1: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of the batch, as our step's loss (sum over count)."""
        inputs_BxT, targets_BxT = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
        x_BxTxD = self.wte(inputs_BxT) + self.wpe.weight[: inputs_BxT.shape[1]]
        for block in self.blocks:
            x_BxTxD = block(x_BxTxD)
        logits_BxTxV = self.ln_f(x_BxTxD) @ self.wte.weight.T
        return F.cross_entropy(logits_BxTxV.flatten(0, 1), targets_BxT.flatten())


def copy_params(twin: TwinGPT, params, cfg: ModelConfig) -> None:
    """Our initial parameters into the twin (kernels transposed: torch's Linear stores [out, in])."""
    p = jax.tree.map(lambda a: torch.from_numpy(np.array(a)), nnx.to_pure_dict(params))
    pairs = [(twin.wte.weight, p["wte"]["embedding_VxD"]), (twin.wpe.weight, p["wpe"]["embedding_TxD"])]
    pairs += [(twin.ln_f.weight, p["ln_f"]["scale_D"]), (twin.ln_f.bias, p["ln_f"]["bias_D"])]
    for block, ours in zip(twin.blocks, p["blocks"].values(), strict=True):
        attn, mlp = ours["attn"], ours["mlp"]
        pairs += [
            (block.ln1.weight, ours["ln1"]["scale_D"]),
            (block.ln1.bias, ours["ln1"]["bias_D"]),
            (block.ln2.weight, ours["ln2"]["scale_D"]),
            (block.ln2.bias, ours["ln2"]["bias_D"]),
            (block.qkv.weight, attn["qkv_kernel_Dx3xHxK"].reshape(cfg.D, -1).T),
            (block.qkv.bias, attn["qkv_bias_3xHxK"].reshape(-1)),
            (block.out.weight, attn["out_kernel_HxKxD"].reshape(cfg.D, cfg.D).T),
            (block.out.bias, attn["out_bias_D"]),
            (block.fc.weight, mlp["fc_kernel_DxF"].T),
            (block.fc.bias, mlp["fc_bias_F"]),
            (block.proj.weight, mlp["proj_kernel_FxD"].T),
            (block.proj.bias, mlp["proj_bias_D"]),
        ]
    with torch.no_grad():
        for tensor, value in pairs:
            tensor.copy_(value)


def twin_optimizer(twin: TwinGPT) -> tuple[torch.optim.AdamW, str]:
    """AdamW with OptimConfig's hyper-parameters, decay on matrices and tables only; fused if torch can."""
    groups = [
        {"params": [p for p in twin.parameters() if p.dim() >= 2], "weight_decay": OPTIM.weight_decay},
        {"params": [p for p in twin.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    hyper = {"lr": OPTIM.lr, "betas": (OPTIM.beta1, OPTIM.beta2), "eps": OPTIM.eps}
    try:
        return torch.optim.AdamW(groups, fused=True, **hyper), "fused"
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, foreach=True, **hyper), "foreach"


Runner = Callable[[int], float]  # runs n steps, blocks, returns the last step's loss


def our_runner(cfg: ModelConfig, batches: np.ndarray) -> tuple[Runner, object]:
    """The trainer's step on the trainer's state; returns the runner and the initial parameters."""
    mesh = make_mesh(MeshConfig())
    tx = make_optimizer(OPTIM)
    with jax.set_mesh(mesh):
        layout = make_layout(cfg, tx, mesh)
        params, opt_state = init_state(cfg, tx, layout, seed=0)
        step = make_train_step(layout, tx, mesh)
        on_device = [jax.device_put(b[None], microbatch_sharding(mesh)) for b in batches]
    initial = jax.tree.map(np.array, params)  # before the first step donates them
    done = 0

    def run(n: int) -> float:
        nonlocal params, opt_state, done
        with jax.set_mesh(mesh):
            for _ in range(n):
                batch = on_device[done % len(on_device)]
                params, opt_state, metrics = step(params, opt_state, batch, done, OPTIM.lr)
                done += 1
            return float(metrics["loss"])

    return run, initial


def torch_runner(cfg: ModelConfig, batches: np.ndarray, initial, sdpa: bool) -> tuple[Runner, str]:
    twin = TwinGPT(cfg, sdpa)
    copy_params(twin, initial, cfg)
    optimizer, kind = twin_optimizer(twin)
    on_device = [torch.from_numpy(b.astype(np.int64)) for b in batches]
    done = 0

    def run(n: int) -> float:
        nonlocal done
        for _ in range(n):
            loss = twin(on_device[done % len(on_device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(twin.parameters(), OPTIM.grad_clip)
            optimizer.step()
            done += 1
        return loss.item()

    return run, kind


def torch_matmul_flops(n: int = 2048, repeats: int = 3) -> float:
    """torch's float32 [n, n] @ [n, n], best of `repeats`: the twin's matmul ceiling."""
    a_NxN, b_NxN = torch.randn(n, n), torch.randn(n, n)
    a_NxN @ b_NxN
    return 2 * n**3 / best_seconds(lambda: a_NxN @ b_NxN, repeats)


@dataclass(frozen=True)
class Row:
    cfg: ModelConfig
    seconds: dict[str, list[float]]  # per step, one entry per timed block
    ceilings: dict[str, list[float]]  # matmul FLOP/s after each block
    losses: dict[str, list[float]]  # the warm-up steps' losses, to compare

    def tokens_per_s(self, name: str) -> float:
        return BATCH * self.cfg.T / statistics.median(self.seconds[name])

    def ceiling(self, name: str) -> float:
        return statistics.median(self.ceilings[name])

    def of_ceiling(self, name: str) -> float:
        return self.tokens_per_s(name) * self.cfg.flops_per_token / self.ceiling(name)


def bench_shape(cfg: ModelConfig, rounds: int, steps: int, sdpa: bool) -> tuple[Row, str]:
    """Warm up both (compile; torch's first steps allocate), then alternate timed blocks and probes."""
    batches = np.random.default_rng(0).integers(0, cfg.V, (4, BATCH, cfg.T + 1), dtype=np.int32)
    ours, initial = our_runner(cfg, batches)
    theirs, kind = torch_runner(cfg, batches, initial, sdpa)
    runners = {"ours": ours, "torch": theirs}
    probes = {"ours": lambda: measure_matmul_flops(2048, repeats=3), "torch": torch_matmul_flops}
    losses = {name: [runners[name](1) for _ in range(2)] for name in NAMES}
    seconds: dict[str, list[float]] = {name: [] for name in NAMES}
    ceilings: dict[str, list[float]] = {name: [] for name in NAMES}
    for i in range(rounds):
        for name in NAMES if i % 2 == 0 else NAMES[::-1]:
            start = time.perf_counter()
            runners[name](steps)
            seconds[name].append((time.perf_counter() - start) / steps)
            ceilings[name].append(probes[name]())
    return Row(cfg, seconds, ceilings, losses), kind


def table(rows: list[Row], args: argparse.Namespace, adamw: str, machine: str) -> str:
    attention = "torch's fused SDPA (is_causal)" if args.sdpa else "dense softmax(QK^T)V, as ours"
    lines = [
        f"`taskset -c <cores> python benchmarks/bench_peer.py{' --sdpa' if args.sdpa else ''}`: {machine}.",
        "",
        f"jax {jax.__version__} against torch {torch.__version__}, {THREADS} thread(s) each (affinity mask; "
        f"torch.set_num_threads({torch.get_num_threads()}), OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '') or '(unset)'}). V=8192, T=256, batch {BATCH}, L=4, "
        f"float32, AdamW (torch: {adamw}), clip {OPTIM.grad_clip}; twin attention: {attention}. "
        f"{args.rounds} rounds of {args.steps} steps per framework, interleaved, after 2 warm-up steps; "
        "tok/s from the median block, each framework's float32 2048^2 matmul probe after each block "
        "(median); of ceiling = model FLOP/s (ModelConfig.flops_per_token, both) over that probe. "
        "Warm-up losses = the first two steps of each, from the same weights and batches.",
        "",
        "| D | H | ours tok/s | torch tok/s | ours / torch | ours / ceiling | torch / ceiling "
        "| matmul GFLOP/s ours / torch | warm-up losses ours / torch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        loss = " / ".join(", ".join(f"{v:.4f}" for v in r.losses[name]) for name in NAMES)
        lines.append(
            f"| {r.cfg.D} | {r.cfg.H} | {r.tokens_per_s('ours'):,.0f} | {r.tokens_per_s('torch'):,.0f} | "
            f"{r.tokens_per_s('ours') / r.tokens_per_s('torch'):.2f}x | {r.of_ceiling('ours'):.0%} | "
            f"{r.of_ceiling('torch'):.0%} | {r.ceiling('ours') / 1e9:.1f} / {r.ceiling('torch') / 1e9:.1f} | "
            f"{loss} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--widths", type=int, nargs="*", help="only these D (default: all)")
    parser.add_argument("--sdpa", action="store_true", help="twin attention through torch's fused SDPA")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument(
        "--system-malloc", action="store_true", help="leave glibc's malloc as it is (see host_memory)"
    )
    args = parser.parse_args()
    malloc = "glibc defaults" if args.system_malloc or not keep_freed_memory() else "kept (host_memory)"
    torch.set_num_threads(THREADS)
    machine = machine_line()
    rows, adamw = [], ""
    for D, head in SHAPES:
        if args.widths and D not in args.widths:
            continue
        cfg = ModelConfig(V=8192, T=256, D=D, L=4, H=D // head)
        row, adamw = bench_shape(cfg, args.rounds, args.steps, args.sdpa)
        print(
            f"D={D}: ours {row.tokens_per_s('ours'):,.0f} tok/s, torch {row.tokens_per_s('torch'):,.0f} "
            f"tok/s, losses {row.losses}",
            flush=True,
        )
        rows.append(row)
    text = table(rows, args, adamw, f"{machine}; malloc {malloc}, for both frameworks (one process)")
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
