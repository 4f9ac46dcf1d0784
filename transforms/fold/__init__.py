"""Folding: PE/SIMD, ram_style and resType of every dataflow node for a board.

``choose`` (the ``fold`` entry point and its three modes), ``space`` (every node's legal,
costed foldings), ``search`` (the exact search on those arrays), ``budget`` (the board's
share a design may use, and the one place its defaults live), ``finn_json`` (FINN's folding
JSON, read and written), ``report`` (the FoldReport, its table and plot).
"""

from qnnflow.transforms.fold.choose import fold
from qnnflow.transforms.fold.report import FoldReport

__all__ = ["fold", "FoldReport"]
