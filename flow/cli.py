"""The ``qnnflow`` command: build, steps, models.

Exit codes: 0 success, 1 the build failed (a step or a verification), 2 bad input
(command line, build YAML, model or board).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from qnnflow.base.errors import QnnflowError

EXIT_BUILD_FAILED = 1
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qnnflow", description="Quantized networks to FPGA dataflow, verified.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="run a build described by a YAML file")
    build.add_argument("build_file", help="e.g. builds/cnv_w1a1.yaml")
    build.add_argument("--board", help="override the board (pynq-z1, ultra96, ultra96-v2)")
    build.add_argument("--out", help="output directory (default out/<build>-<board>)")
    build.add_argument("--from", dest="from_step", metavar="STEP", help="start at STEP, reusing earlier outputs")
    build.add_argument("--to", dest="to_step", metavar="STEP", help="stop after STEP")
    build.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field; dots for nested fields, value parsed as YAML (repeatable)",
    )
    from qnnflow.models.train_config import add_arguments

    add_arguments(sub.add_parser("train", help="train a zoo model (the bnn_pynq recipe; torchrun for DDP)"))
    ev = sub.add_parser("eval", help="accuracy on the model's test set at each stage (torch, streamlined, hw, cppsim)")
    ev.add_argument("build_file")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a build field, e.g. weights=runs/lfc_w1a1/best.pt (repeatable)")
    ev.add_argument("--stage", action="append", choices=("torch", "streamlined", "hw", "cppsim"),
                    help="stage to evaluate (repeatable; default: torch and hw)")
    ev.add_argument("--limit", type=int, metavar="N", help="the first N test images")
    ev.add_argument("--out", help="output directory (default out/<build>-<board>, shared with qnnflow build)")
    sub.add_parser("steps", help="list the registered build steps")
    sub.add_parser("models", help="list the model zoo")
    return parser


def _cmd_build(args) -> int:
    from qnnflow.flow.config import load_config
    from qnnflow.flow.runner import Runner

    overrides = list(args.overrides) + ([f"board={args.board}"] if args.board else [])
    try:
        cfg = load_config(args.build_file, overrides)
        out = Path(args.out) if args.out else Path("out") / f"{cfg['name']}-{cfg.board['id']}"
        runner = Runner(cfg, out)
        runner.step_range(args.from_step, args.to_step)
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"qnnflow: building {cfg['name']} ({cfg['model']}) for {cfg.board['name']} into {out}")
    try:
        log = runner.run(args.from_step, args.to_step)
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    delivered = ", ".join(f"{k}: {out / v}" for k, v in log["outputs"].items())
    print(f"qnnflow: done in {log['seconds']:.2f} s; {delivered}")
    return 0


def _cmd_train(args) -> int:
    from qnnflow.models import train_config
    from qnnflow.models.zoo import ZOO, get_entry

    try:
        name = args.model
        if name.endswith((".yaml", ".yml")):  # a build file: train the zoo model it names
            from qnnflow.flow.config import load_config

            name = load_config(name)["model"]
        entry = get_entry(name)
        name = train_config.model_with_bits(name, entry.family, args.weight_bits, args.act_bits, ZOO)
        from qnnflow.models.train import run

        run(name, args)
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _cmd_eval(args) -> int:
    from qnnflow.flow.config import load_config
    from qnnflow.flow.evaluate import Disagreement, evaluate

    try:
        cfg = load_config(args.build_file, args.overrides)
        out = Path(args.out) if args.out else Path("out") / f"{cfg['name']}-{cfg.board['id']}"
        result = evaluate(cfg, out, args.stage or ("torch", "hw"), args.limit)
    except Disagreement as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"accuracy ({result['stage']}): {100 * result['accuracy']:.2f}%")
    return 0


def _cmd_steps(args) -> int:
    from qnnflow.flow.registry import registered_steps

    for step in registered_steps().values():
        print(f"{step.name:<14} {step.doc}")
    return 0


def _cmd_models(args) -> int:
    from qnnflow.models.zoo import zoo_table

    rows = zoo_table()
    print(f"{'name':<10} {'dataset':<8} {'W':>2} {'A':>2} {'params':>10}  input")
    for r in rows:
        shape = "x".join(str(d) for d in r["input_shape"])
        print(f"{r['name']:<10} {r['dataset']:<8} {r['weight_bits']:>2} {r['act_bits']:>2} {r['params']:>10,}  {shape}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # Brevitas warns about optional kernels at import time; noise for a command-line user.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    warnings.filterwarnings("ignore", message="brevitas.fx is deprecated")
    args = _parser().parse_args(argv)
    return {"build": _cmd_build, "train": _cmd_train, "eval": _cmd_eval, "steps": _cmd_steps, "models": _cmd_models}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
