"""The ``fold`` build step: automatic folding within the board's budget."""

from __future__ import annotations

import json

from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import StepContext


@register_step("fold", config=("board", "backend", "clock_ns", "fold"), produces=("folding",))
def fold_step(model, ctx: StepContext):
    """PE/SIMD, ram_style, resType per node: the fastest design within the budget (or a target, or a file)."""
    from qnnflow.transforms.fold import fold
    from qnnflow.transforms.fold.finn_json import read_folding
    from qnnflow.transforms.fold.report import format_table, plot_png
    from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH

    cfg = ctx.cfg["fold"]
    folding = read_folding(cfg["file"]) if cfg.get("file") else None
    model, report = fold(
        model, ctx.board, ctx.cfg.clock_ns, lut=cfg["lut"], bram=cfg["bram"], dsp=cfg["dsp"],
        target_fps=cfg.get("target_fps"), target_cycles=cfg.get("target_cycles"), folding=folding,
        folding_source=f"folding file {cfg.get('file')}", max_weight_width=cfg["max_weight_width"] or DEFAULT_MAX_WEIGHT_WIDTH,
    )

    def dump(obj) -> bytes:
        return (json.dumps(obj, indent=2) + "\n").encode()

    ctx.write_artifact("folding_config.json", dump(report.folding), delivers="folding")
    ctx.write_artifact("report/folding.json", dump(report.to_json()))
    ctx.write_artifact("report/folding.png", plot_png(report, f"{ctx.cfg['name']} on {ctx.board['name']}"))
    ctx.log(format_table(report))
    for note in report.notes:
        ctx.log(f"note: {note}")
    ctx.notes.append(f"{report.mode}: {report.fps:,.0f} FPS estimated, bottleneck "
                     f"{report.performance['max_cycles_node_name']}; "
                     + ", ".join(f"{report.totals[r]:,} {r}" for r in ("LUT", "BRAM18", "DSP")))
    ctx.notes.extend(report.notes)
    return model
