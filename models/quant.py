"""Brevitas quantizers by bit width, in the BNN-PYNQ style.

Weights and activations use a constant per-tensor scale over the range [-1, 1],
signed, narrow range, zero zero-point, round to nearest. A 1-bit quantizer is the
sign function (QONNX ``BipolarQuant``); b >= 2 bits give the integers
-(2^(b-1)-1) .. 2^(b-1)-1 times a power-of-two scale: 1 for 2 bits ({-1, 0, +1}),
2^-(b-1) from 3 bits on (4 bits is {-7..7}/8) (QONNX ``Quant``). Constant scales keep the exported graph
free of learned scale parameters, so the flow can turn every activation into
integer thresholds.

A ReLU activation (``quant_relu``) is unsigned, not narrow, with the same power-of-two
step: b bits give 0 .. 2^b - 1 times 2^-(b-1) (4 bits is {0..15}/8).

The input quantizer is different: signed b-bit, not narrow, with the
power-of-two scale 2^-(b-1); 8 bits cover [-1, 1 - 2^-7] in steps of 2^-7.
"""

from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.inject import ExtendedInjector, value
from brevitas.inject.enum import (
    BitWidthImplType,
    FloatToIntImplType,
    QuantType,
    RestrictValueType,
    ScalingImplType,
    ScalingPerOutputType,
)
from brevitas.nn import QuantIdentity, QuantReLU
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver

from qnnflow.base.errors import QnnflowError

__all__ = ["weight_quant", "act_quant", "input_quant", "relu_quant", "quant_act", "quant_input", "quant_relu"]


class _ConstScaleQuant(ExtendedInjector):
    """Shared settings: constant per-tensor scale, signed, narrow, zero zero-point.

    The power-of-two scale keeps the float reference exact: products and sums of
    k * 2^-n are exact in float32, so the integer flow can match it bit for bit.
    """

    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_per_output_type = ScalingPerOutputType.TENSOR
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    narrow_range = True
    signed = True

    @value
    def quant_type(bit_width):
        # 1 bit is sign (bipolar) quantization, anything wider a scaled integer.
        return QuantType.BINARY if bit_width == 1 else QuantType.INT


def _range_limit(bit_width):
    """The largest magnitude: 1 for 1 and 2 bits, else 1 - 2^-(b-1), so scale = limit / (2^(b-1)-1) = 2^-(b-1)."""
    return 1.0 if bit_width <= 2 else 1.0 - 2.0 ** -(bit_width - 1)


class _WeightQuant(_ConstScaleQuant, WeightQuantSolver):
    @value
    def scaling_const(bit_width):
        return _range_limit(bit_width)


class _ActQuant(_ConstScaleQuant, ActQuantSolver):
    # The constant scale is derived from max(|min_val|, |max_val|).
    @value
    def min_val(bit_width):
        return -_range_limit(bit_width)

    @value
    def max_val(bit_width):
        return _range_limit(bit_width)


class _ReluQuant(_ConstScaleQuant, ActQuantSolver):
    """Unsigned, not narrow: levels 0 .. 2^b - 1 with the step 2^-(b-1) of the signed quantizers."""

    narrow_range = False
    signed = False
    min_val = 0.0

    @value
    def max_val(bit_width):
        return (2**bit_width - 1) * 2.0 ** -(bit_width - 1)


class _InputQuant(ActQuantSolver):
    """Signed, not narrow, scale 1 / 2^(b-1) (a power of two): [-1, 1 - 2^-(b-1)]."""

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO
    scaling_per_output_type = ScalingPerOutputType.TENSOR
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    narrow_range = False
    signed = True
    min_val = -1.0
    max_val = 1.0


def _check_bits(bit_width, what, minimum=1):
    if not isinstance(bit_width, int) or isinstance(bit_width, bool) or not minimum <= bit_width <= 16:
        raise QnnflowError(
            f"{what} bit width {bit_width!r} is not supported: use an integer from {minimum} to 16")
    return bit_width


def weight_quant(bit_width):
    """The weight quantizer injector for `bit_width` bits (1 = binary)."""
    return _WeightQuant.let(bit_width=_check_bits(bit_width, "weight"))


def act_quant(bit_width):
    """The activation quantizer injector for `bit_width` bits (1 = sign, else HardTanh-like)."""
    return _ActQuant.let(bit_width=_check_bits(bit_width, "activation"))


def relu_quant(bit_width):
    """The unsigned ReLU activation quantizer injector for `bit_width` (>= 2) bits."""
    return _ReluQuant.let(bit_width=_check_bits(bit_width, "ReLU activation", minimum=2))


def input_quant(bit_width=8):
    """The input quantizer injector: signed `bit_width` bits, scale 2^-(bit_width-1)."""
    return _InputQuant.let(bit_width=_check_bits(bit_width, "input", minimum=2))


def quant_act(bit_width):
    """An activation layer: QuantIdentity with the `bit_width` activation quantizer."""
    return QuantIdentity(act_quant=act_quant(bit_width), return_quant_tensor=False)


def quant_relu(bit_width):
    """A ReLU activation layer: QuantReLU with the unsigned `bit_width` quantizer."""
    return QuantReLU(act_quant=relu_quant(bit_width), return_quant_tensor=False)


def quant_input(bit_width=8):
    """The input quantization layer."""
    return QuantIdentity(act_quant=input_quant(bit_width), return_quant_tensor=False)
