"""The sliding window's PruneMask: windows carry the kept channels only, in Python and in the C++ kernel."""

import numpy as np
import pytest

from qnnflow.base.errors import QnnflowError
from tests.hls.backend.helpers import cppsim_all, node_model
from tests.hls.nodes.harness import node_op, random_values, run_direct
from tests.hls.nodes.test_windows import ref_im2col

MASK = [1, 1, 0, 0, 1, 1]


def window(simd, mask=MASK, stride=2):
    return dict(ConvKernelDim=[3, 3], IFMChannels=len(mask), IFMDim=[7, 7], OFMDim=[(7 - 3) // stride + 1] * 2,
                Stride=[stride, stride], SIMD=simd, inputDataType="INT3", outputDataType="INT3", PruneMask=mask)


@pytest.mark.parametrize("simd", [1, 2])
def test_masked_windows_are_the_windows_of_the_kept_channels(simd):
    x = random_values(np.random.default_rng(simd), "INT3", (2, 7, 7, 6))
    op = node_op("ConvolutionInputGenerator", **window(simd))
    kept = np.flatnonzero(MASK)
    np.testing.assert_array_equal(run_direct(op, {"x": x}), ref_im2col(x[..., kept], 3, 3, 2, 2))
    unmasked = node_op("ConvolutionInputGenerator", **{k: v for k, v in window(simd).items() if k != "PruneMask"})
    assert op.cycles() < unmasked.cycles()  # fewer words written per window


def test_simd_splitting_kept_and_pruned_channels_is_refused():
    op = node_op("ConvolutionInputGenerator", **window(3))
    with pytest.raises(QnnflowError, match=r"SIMD=3 puts kept and pruned channels of PruneMask in one word"):
        op.check()
    with pytest.raises(QnnflowError, match="PruneMask prunes every channel"):
        node_op("ConvolutionInputGenerator", **window(1, mask=[0] * 6)).check()


def test_kernel_skips_the_pruned_words(cppsim_cache):
    models = [node_model("ConvolutionInputGenerator", window(simd, stride=stride)) for simd in (1, 2)
              for stride in (1, 2)]
    for result in cppsim_all(models, cppsim_cache):
        assert result.bit_exact, result.message()
