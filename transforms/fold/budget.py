"""The resource budget of a folding: fractions of the board, and the objective that weighs resources."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.cost import RESOURCES

# The one place the default budget is written: fold.lut / fold.bram / fold.dsp of a build YAML.
DEFAULT_BUDGET = {"lut": 0.85, "bram": 0.90, "dsp": 0.90}
BUDGET_FIELDS = {"LUT": "lut", "BRAM18": "bram", "DSP": "dsp"}  # resource -> fold.<field>


@dataclass
class Budget:
    """Fractions of the board's resources a design may use, and the absolute limits they give."""

    fractions: dict
    available: dict

    @classmethod
    def of(cls, board: dict, lut: float = DEFAULT_BUDGET["lut"], bram: float = DEFAULT_BUDGET["bram"],
           dsp: float = DEFAULT_BUDGET["dsp"]) -> "Budget":
        fractions = {"LUT": lut, "BRAM18": bram, "DSP": dsp}
        for res, frac in fractions.items():
            if not 0 < frac <= 1:
                raise QnnflowError(f"fold.{BUDGET_FIELDS[res]}={frac}: must be a fraction of the board, in (0, 1]")
        return cls(fractions, {r: int(board["resources"][r]) for r in RESOURCES})

    @property
    def limits(self) -> dict:
        return {r: int(math.floor(self.fractions[r] * self.available[r] + 1e-9)) for r in RESOURCES}

    def vector(self) -> np.ndarray:
        return np.array([self.limits[r] for r in RESOURCES], dtype=np.int64)

    def describe(self, res: str) -> str:
        return f"{self.limits[res]:,} = {self.fractions[res]:.0%} of {self.available[res]:,}"

    def device_weights(self) -> np.ndarray:
        """The objective: fractions of the device, so a BRAM18 or DSP weighs as much as its share of the chip."""
        return np.array([1.0 / max(self.available[r], 1) for r in RESOURCES])
