"""The ``prune`` build step: SIMD-aligned structured pruning of the streamlined model (transforms/prune.py).

At sparsity 0 (the default) it returns the model unchanged.  Otherwise it removes the weakest
blocks of input channels: by magnitude at once, or with ``fine_tune_epochs`` > 0 by the
iterative schedule (flow/prune_schedule.py), which fine-tunes the zoo model through the
trainer after each step and re-exports it.  It checks the result against the pruned model (the
streamlined model with those weights zeroed) on the golden inputs and delivers that model's
outputs as the golden I/O of every later step.  It folds the unpruned and the pruned model for
the build's board and budget and reports both per layer (report/prune_layers.json), and the
trade-off over the sparsities it visited (report/prune.json, .png).
"""

from __future__ import annotations

import io
import json

from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import StepContext

PRUNED_GOLDEN_FILE = "golden_pruned.npz"
FINE_TUNED_FILE = "prune/fine_tuned.pt"


def fold_options(cfg) -> dict:
    """The fold section as keyword arguments of transforms.fold.fold."""
    from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH

    f = cfg["fold"]
    return dict(lut=f["lut"], bram=f["bram"], dsp=f["dsp"], target_fps=f.get("target_fps"),
                target_cycles=f.get("target_cycles"), max_weight_width=f["max_weight_width"] or DEFAULT_MAX_WEIGHT_WIDTH)


def _reads(cfg) -> tuple[str, ...]:
    """At sparsity 0 the step reads nothing else: a board edit must not rerun it (and all after it)."""
    return ("prune",) if cfg["prune"]["sparsity"] == 0 else ("prune", "board", "clock_ns", "fold")


def _fine_tuned_model(ctx: StepContext, state_dict):
    """The zoo model with the schedule's weights, exported, tidied and streamlined as the build does."""
    import torch

    from qnnflow.models.export import export_brevitas
    from qnnflow.models.zoo import build_model, get_entry
    from qnnflow.transforms.streamline import streamline
    from qnnflow.transforms.tidy import tidy

    name = ctx.cfg["model"]
    module = build_model(name)
    module.load_state_dict(state_dict)
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    ctx.write_artifact(FINE_TUNED_FILE, buf.getvalue())
    return streamline(tidy(export_brevitas(module, get_entry(name).input_shape)))


@register_step("prune", config=_reads, produces=("golden",))
def prune_step(model, ctx: StepContext):
    """SIMD-aligned structured pruning: the weakest blocks of input channels removed (no-op at sparsity 0)."""
    from qnnflow.base.errors import QnnflowError
    from qnnflow.base.execute import compare_outputs, execute_batch
    from qnnflow.models.export import Golden
    from qnnflow.models.source import parse_model_source
    from qnnflow.transforms import prune, prune_report

    cfg = ctx.cfg["prune"]
    if cfg["sparsity"] == 0:
        ctx.notes.append("prune.sparsity is 0: nothing pruned")
        return model
    options = fold_options(ctx.cfg)

    def folded(streamlined):
        return prune_report.fold_streamlined(streamlined, ctx.board, ctx.cfg.clock_ns, options)

    before = folded(model)
    simd = prune_report.auto_simd(model, before) if cfg["simd"] == "auto" else cfg["simd"]
    if cfg["fine_tune_epochs"]:
        target = cfg["max_sparsity"] if cfg["max_sparsity"] is not None else cfg["sparsity"]
        from qnnflow.flow.prune_schedule import run_schedule

        if parse_model_source(ctx.cfg["model"]).kind != "zoo":
            raise prune.PruneInputError("prune.fine_tune_epochs: fine-tuning trains zoo models only; set it to 0 "
                                        "to prune this model by magnitude")
        schedule = run_schedule(ctx.cfg["model"], ctx.cfg["weights"], prune.plan(model, 0.0, simd, cfg["norm_order"]),
                                target, cfg["step"], cfg["fine_tune_epochs"], cfg["norm_order"],
                                cfg["max_accuracy_drop"], cfg["train_limit"], cfg["test_limit"], log=ctx.log)
        if schedule.stopped:
            ctx.notes.append(schedule.stopped)
        source = _fine_tuned_model(ctx, schedule.state_dict)
        layers = prune.plan(source, schedule.sparsity, simd, cfg["norm_order"], keeps=schedule.keeps)
        points = schedule.points
    else:
        source = model
        layers = prune.plan(model, cfg["sparsity"], simd, cfg["norm_order"])
        points = [{"sparsity": 0.0, "accuracy": None, "kept": True},
                  {"sparsity": cfg["sparsity"], "accuracy": None, "kept": True, "keeps": {l.index: l.keep for l in layers}}]
    pruned = prune.prune_layers(source, layers)

    golden = ctx.golden()
    expected = execute_batch(prune.zeroed_reference(source, layers), golden.input)
    result = compare_outputs(pruned, execute_batch(pruned, golden.input), expected)
    if not result.ok:
        raise QnnflowError(f"the pruned graph differs from the zero-weight model (max |diff| {result.max_abs_diff:.3g})")
    buf = io.BytesIO()
    Golden(golden.input, expected, f"{golden.source}, pruned model (sparsity {layers_sparsity(points):g})",
           golden.labels).save(buf)
    ctx.write_artifact(PRUNED_GOLDEN_FILE, buf.getvalue(), delivers="golden")
    ctx.checked = f"pruned graph equals the zero-weight model on {len(golden.input)} golden inputs"

    after = folded(pruned)
    table = prune_report.compare(before, after)
    report = {"sparsity": layers_sparsity(points), "simd": simd, "norm_order": cfg["norm_order"],
              "pruning": [layer.to_json() for layer in layers], **table}
    ctx.write_artifact("report/prune_layers.json", (json.dumps(report, indent=2) + "\n").encode())
    ctx.log(prune_report.format_comparison(table))

    rows = []
    for point in points:  # the hardware at each sparsity visited depends on its kept blocks only
        if point["sparsity"] == 0:
            estimates = prune_report.point_estimates(before)
        else:
            visited = prune.plan(model, point["sparsity"], simd, cfg["norm_order"], keeps=point["keeps"])
            estimates = prune_report.point_estimates(folded(prune.prune_layers(model, visited)))
        rows.append({"sparsity": point["sparsity"], "accuracy": point["accuracy"], "kept": point["kept"], **estimates})
    tradeoff = prune_report.tradeoff_table(rows)
    ctx.write_artifact("report/prune.json", (json.dumps(tradeoff, indent=2) + "\n").encode())
    ctx.write_artifact("report/prune.png", prune_report.tradeoff_png(tradeoff, f"{ctx.cfg['name']} on {ctx.board['name']}"))
    ctx.log(prune_report.format_tradeoff(tradeoff))

    for layer in layers:
        if layer.reason:
            ctx.notes.append(f"{layer.name}: {layer.reason}")
    words = sum(layer.pruned_words for layer in layers)
    ctx.notes.append(f"sparsity {layers_sparsity(points):g}: {words} SIMD words removed from the MVAU input vectors; "
                     f"estimated {table['before']['estimated_fps']:,.0f} -> {table['after']['estimated_fps']:,.0f} FPS")
    return pruned


def layers_sparsity(points: list[dict]) -> float:
    """The sparsity of the last kept point: the one the build goes on with."""
    return max(p["sparsity"] for p in points if p["kept"])
