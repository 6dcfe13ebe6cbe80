"""`scaling generate RUN_DIR --prompt TEXT ...` and `scaling finetune RUN_DIR TASK.yaml [--out DIR]`."""

from __future__ import annotations

import argparse
import json
import sys

from scaling.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser(
        "generate",
        help="sample text from a trained run",
        description="Continue a prompt with a run's latest checkpoint (key/value-cached decoding).",
    )
    gen.add_argument("run_dir", help="run directory (with config.yaml and checkpoints/)")
    gen.add_argument("--prompt", required=True, help="text to continue")
    gen.add_argument("--max-new-tokens", type=int, default=100, help="tokens to add (cut to the context)")
    gen.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    gen.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0 = all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1] (1 = all)")
    gen.add_argument("--num-samples", type=int, default=1, help="samples, generated as one batch")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed: same seed, same samples")
    gen.set_defaults(func=run_generate)

    fine = subparsers.add_parser(
        "finetune",
        help="fine-tune a run on a classification task (GPT-1 style)",
        description="Add a linear head on the last token's hidden state and fine-tune with the task loss "
        "plus lambda x the language-modelling loss; reports held-out accuracy.",
    )
    fine.add_argument("run_dir", help="pre-trained run directory")
    fine.add_argument("task", help="TASK.yaml (see experiments/author_task.yaml)")
    fine.add_argument("overrides", nargs="*", help="dotted.key=value overrides of the task, e.g. lm_weight=0")
    fine.add_argument("--out", help="output directory (default: RUN_DIR/finetune/<task name>-<init>)")
    fine.add_argument("--no-progress", action="store_true", help="no progress bar")
    fine.set_defaults(func=run_finetune)


def run_generate(args: argparse.Namespace) -> int:
    from scaling.use.generate import generate, load_run
    from scaling.use.sampling import SamplingConfig

    try:
        sampling = SamplingConfig(args.temperature, args.top_k, args.top_p)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not args.prompt:
        raise UserError("the prompt is empty; give at least one character with --prompt")
    run = load_run(args.run_dir)
    texts = generate(
        run,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        sampling=sampling,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(args.prompt + text)
    sys.stdout.flush()
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from scaling.use.finetune import finetune, load_task_config

    task = load_task_config(args.task, args.overrides)
    summary = finetune(args.run_dir, task, args.out, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("task", "test_accuracy", "out_dir")}))
    return 0
