"""Tidy-up: shapes, datatypes, constant folding and unique, readable names.

Composed from qonnx's own transforms; weight quantizers (Quant/BipolarQuant on
initializers) are left in place here, streamlining folds them into integer weights.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    GiveUniqueParameterTensors,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
    SortGraph,
)
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

TIDY_PASSES = (
    InferShapes,
    FoldConstants,
    RemoveStaticGraphInputs,
    GiveUniqueParameterTensors,
    SortGraph,
    GiveUniqueNodeNames,
    GiveReadableTensorNames,
    InferShapes,
    InferDataTypes,
    RemoveUnusedTensors,
)


def tidy(model: ModelWrapper) -> ModelWrapper:
    for transform in TIDY_PASSES:
        model = model.transform(transform())
    return model
