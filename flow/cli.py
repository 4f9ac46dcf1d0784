"""The ``qnnflow`` command: build, sweep, steps, models, boards, export-bnn-pynq.

Exit codes: 0 success, 1 the build failed (a step or a verification), 2 bad input
(command line, build YAML, model or board), 130 interrupted (Ctrl-C; 128 + SIGINT, as a
shell reports it, so a script can tell a user's interrupt from bad input).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from qnnflow.base.errors import BadInputError, QnnflowError

EXIT_BUILD_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    from qnnflow.base import __version__

    parser = argparse.ArgumentParser(prog="qnnflow", description="Quantized networks to FPGA dataflow, verified.")
    parser.add_argument("--version", action="version", version=f"qnnflow {__version__}")
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
    sweep = sub.add_parser("sweep", help="one build per point of a grid of --set overrides, one merged table")
    sweep.add_argument("sweep_file", help="a sweep YAML: build:, grid:, optional set:, to:, workers:")
    sweep.add_argument("--out", help="output directory (default out/sweep-<file stem>)")
    sweep.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run the points on Ray: 'auto' (a running cluster), 'local' (start one here) or an address")
    sub.add_parser("steps", help="list the registered build steps, in pipeline order")
    sub.add_parser("models", help="list the model zoo")
    sub.add_parser("boards", help="list the boards: part, resources, clock")
    bnn = sub.add_parser("export-bnn-pynq", help="write a model as BNN-PYNQ parameter files (L-P-weights.bin, ...)")
    bnn.add_argument("model", help="a streamlined or hw-stage .onnx of an LFC or CNV topology (e.g. OUT/NN_to_hw.onnx)")
    bnn.add_argument("--network", required=True, help="the overlay: lfcW1A1, lfcW1A2, cnvW1A1, cnvW1A2 or cnvW2A2")
    bnn.add_argument("--out", required=True, help="directory to write (replaced only once every file is written)")
    bnn.add_argument("--folding", default="overlay",
                     help="'overlay' (BNN-PYNQ's overlay folding, default), 'graph' (the MVAUs' PE/SIMD) or a FINN "
                          "folding JSON")
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
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    except KeyboardInterrupt:
        why = runner.log.get("error", "interrupted")
        print(f"qnnflow: {why} ({out / 'build_log.json'}: interrupted)", file=sys.stderr)
        return EXIT_INTERRUPTED
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


def _cmd_sweep(args) -> int:
    from qnnflow.flow.sweep import format_table, run_sweep

    try:
        table = run_sweep(Path(args.sweep_file), Path(args.out) if args.out else None, args.ray)
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_table(table))
    failed = sum(row["status"] != "ok" for row in table["points"])
    print(f"qnnflow sweep: {len(table['points']) - failed} of {len(table['points'])} points built"
          + (f", {failed} failed" if failed else ""))
    return EXIT_BUILD_FAILED if failed else 0


def _cmd_steps(args) -> int:
    from qnnflow.flow.config import DEFAULT_STEPS
    from qnnflow.flow.registry import registered_steps

    steps = registered_steps()
    order = [n for n in DEFAULT_STEPS if n in steps] + [n for n in steps if n not in DEFAULT_STEPS]
    for name in order:
        print(f"{name:<14} {steps[name].doc}")
    return 0


def _cmd_boards(args) -> int:
    from qnnflow.flow.boards import board_table

    print(f"{'board':<11} {'part':<20} {'LUT':>7} {'FF':>8} {'BRAM18':>6} {'DSP':>4}  {'clock':<16} clock range")
    for b in board_table():
        r, (low, high) = b["resources"], b["clock_range_ns"]
        clock = f"{b['clock_ns']:g} ns ({1e3 / b['clock_ns']:g} MHz)"
        print(f"{b['id']:<11} {b['part']:<20} {r['LUT']:>7,} {r['FF']:>8,} {r['BRAM18']:>6,} {r['DSP']:>4,}  "
              f"{clock:<16} {low:g}-{high:g} ns")
    return 0


def _cmd_models(args) -> int:
    from qnnflow.models.zoo import zoo_table

    rows = zoo_table()
    name_w, data_w = max(len(r["name"]) for r in rows), max(len(r["dataset"]) for r in rows)
    print(f"{'name':<{name_w}} {'dataset':<{data_w}} {'W':>2} {'A':>2} {'in':>2} {'params':>10}  input")
    for r in rows:
        shape = "x".join(str(d) for d in r["input_shape"])
        print(f"{r['name']:<{name_w}} {r['dataset']:<{data_w}} {r['weight_bits']:>2} {r['act_bits']:>2} {r['in_bits']:>2} "
              f"{r['params']:>10,}  {shape}")
    return 0


def _cmd_export_bnn_pynq(args) -> int:
    from qonnx.core.modelwrapper import ModelWrapper

    from qnnflow.models.bnn_pynq import export_bnn_pynq, files_network

    try:
        if not Path(args.model).is_file():
            raise QnnflowError(f"model file '{args.model}' not found; give a streamlined or hw-stage .onnx")
        try:
            model = ModelWrapper(args.model)
        except Exception as err:
            raise QnnflowError(f"cannot load {args.model} as ONNX: {' '.join(str(err).split())[:200]}") from None
        if not any(n.op_type == "MVAU" for n in model.graph.node):
            from qnnflow.transforms.to_hw import to_hw

            model, _ = to_hw(model)
        written = export_bnn_pynq(model, args.network, args.out, args.folding)
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"qnnflow: wrote {len(written)} files of {args.network} ({args.folding} folding) into {args.out}")
    if files_network(Path(args.out), args.network).scores:
        print("qnnflow: the last layer is written as its 10 class scores (popcounts, no thresholds file), as the "
              "model picks the largest: BNN-PYNQ's own LFC bitstream thresholds that layer; load these files into "
              "an LFC overlay whose last layer outputs its accumulators, as BNN-PYNQ's CNV does")
    return 0


def quiet_warnings() -> None:
    """Brevitas warns about optional kernels at import time; noise for a command-line user."""
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    warnings.filterwarnings("ignore", message="brevitas.fx is deprecated")


def main(argv: list[str] | None = None) -> int:
    quiet_warnings()
    try:
        args = _parser().parse_args(argv)
        commands = {"build": _cmd_build, "train": _cmd_train, "eval": _cmd_eval, "sweep": _cmd_sweep, "steps": _cmd_steps,
                    "models": _cmd_models, "boards": _cmd_boards, "export-bnn-pynq": _cmd_export_bnn_pynq}
        return commands[args.command](args)
    except KeyboardInterrupt:  # before a build started, or while listing
        print("qnnflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
