"""The ``prune`` build step: SIMD-aligned structured pruning of the streamlined model (transforms/prune.py).

At sparsity 0 (the default) it returns the model unchanged.  Otherwise it removes the weakest
blocks of input channels, checks the result against the pruned model (the streamlined model
with those weights zeroed) on the golden inputs, and delivers that model's outputs as the
golden I/O of every later step.  It folds the unpruned and the pruned model for the build's
board and budget and reports both, per layer (report/prune_layers.json).
"""

from __future__ import annotations

import io
import json

from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import StepContext

PRUNED_GOLDEN_FILE = "golden_pruned.npz"


def fold_options(cfg) -> dict:
    """The fold section as keyword arguments of transforms.fold.fold."""
    from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH

    f = cfg["fold"]
    return dict(lut=f["lut"], bram=f["bram"], dsp=f["dsp"], target_fps=f.get("target_fps"),
                target_cycles=f.get("target_cycles"), max_weight_width=f["max_weight_width"] or DEFAULT_MAX_WEIGHT_WIDTH)


def _reads(cfg) -> tuple[str, ...]:
    """At sparsity 0 the step reads nothing else: a board edit must not rerun it (and all after it)."""
    return ("prune",) if cfg["prune"]["sparsity"] == 0 else ("prune", "board", "clock_ns", "fold")


@register_step("prune", config=_reads, produces=("golden",))
def prune_step(model, ctx: StepContext):
    """SIMD-aligned structured pruning: the weakest blocks of input channels removed (no-op at sparsity 0)."""
    from qnnflow.base.execute import compare_outputs, execute_batch
    from qnnflow.base.errors import QnnflowError
    from qnnflow.models.export import Golden
    from qnnflow.transforms import prune, prune_report

    cfg = ctx.cfg["prune"]
    if cfg["sparsity"] == 0:
        ctx.notes.append("prune.sparsity is 0: nothing pruned")
        return model
    options = fold_options(ctx.cfg)
    before = prune_report.fold_streamlined(model, ctx.board, ctx.cfg.clock_ns, options)
    simd = prune_report.auto_simd(model, before) if cfg["simd"] == "auto" else cfg["simd"]
    layers = prune.plan(model, cfg["sparsity"], simd, cfg["norm_order"])
    pruned = prune.prune_layers(model, layers)

    golden = ctx.golden()
    expected = execute_batch(prune.zeroed_reference(model, layers), golden.input)
    result = compare_outputs(pruned, execute_batch(pruned, golden.input), expected)
    if not result.ok:
        raise QnnflowError(f"the pruned graph differs from the zero-weight model (max |diff| {result.max_abs_diff:.3g})")
    buf = io.BytesIO()
    Golden(golden.input, expected, f"{golden.source}, pruned model (sparsity {cfg['sparsity']:g})",
           golden.labels).save(buf)
    ctx.write_artifact(PRUNED_GOLDEN_FILE, buf.getvalue(), delivers="golden")
    ctx.checked = f"pruned graph equals the zero-weight model on {len(golden.input)} golden inputs"

    after = prune_report.fold_streamlined(pruned, ctx.board, ctx.cfg.clock_ns, options)
    table = prune_report.compare(before, after)
    report = {"sparsity": cfg["sparsity"], "simd": simd, "norm_order": cfg["norm_order"],
              "pruning": [layer.to_json() for layer in layers], **table}
    ctx.write_artifact("report/prune_layers.json", (json.dumps(report, indent=2) + "\n").encode())
    ctx.log(prune_report.format_comparison(table))
    for layer in layers:
        if layer.reason:
            ctx.notes.append(f"{layer.name}: {layer.reason}")
    words = sum(layer.pruned_words for layer in layers)
    ctx.notes.append(f"sparsity {cfg['sparsity']:g}: {words} SIMD words removed from the MVAU input vectors; "
                     f"estimated {table['before']['estimated_fps']:,.0f} -> {table['after']['estimated_fps']:,.0f} FPS")
    return pruned
