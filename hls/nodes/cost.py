"""Pure resource formulas shared by the nodes' cost models (LUT, BRAM18, DSP).

Estimates, not synthesis results: they rank foldings and flag designs that cannot fit.
Sources:
  * FINN-R (Blott et al., ACM TRETS 2018, "FINN-R: An End-to-End Deep-Learning Framework
    for Fast Exploration of Quantized Neural Networks"), via FINN's MVAU
    ``lut_estimation``: 300 LUTs of control plus 1.1x the datapath, and
    ``(2*ceil((A+W)/6) - 1) * (A+W)`` LUTs for an A-bit by W-bit LUT multiplier.
  * Block RAM shapes: Xilinx UG473 (7-series) and UG573 (UltraScale), RAMB18 in simple
    dual-port mode: 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, 512x36.
  * Distributed RAM and shift registers: UG474 / UG574 (a LUT6 is a 64x1 RAM or a 32-bit SRL).
  * DSP multiplier ports: DSP48E1 25x18 (UG479), DSP48E2 27x18 (UG579).
  * Popcount compressor trees: about one LUT per input bit (Preusser, "Generic and universal
    parallel matrix summation with a flexible compression goal for Xilinx FPGAs", FPL 2017).

Calibration (LUT): NODE_LUTS and POPCOUNT_LUTS_PER_BIT (``FITTED``) are fitted by least
squares (relative error) to the post-synthesis totals Xilinx BNN-PYNQ publishes for its Pynq-Z1
overlays (bnn/src/network/<net>/README.md, Vivado 2018.2), with each overlay's per-layer
PE/SIMD applied to our graph of the same network (hls/nodes/calibration.py, whose
``fit_lut_coefficients`` reproduces the fit), weights and line buffers in block RAM as Vivado
HLS mapped them, and a 3,000-LUT shell assumed (HLS m_axi movers, AXI-Lite control, PS
interconnect; the fold budget's headroom).  Every node is charged its output stream's FIFO
(``HWNode.stream_resources``: depth 2 in SRLs) on top of these.  Multi-bit lanes use the
FINN-R multiplier and adder-tree formulas unscaled: a third coefficient scaling them fitted
the four overlays better but predicted each one from the other three far worse (leave-one-out
errors up to 125%, against 33% now; ``bench/fold.py`` prints both tables):

    overlay   published LUT   ours (nodes + shell)   out of sample   published BRAM18   ours
    cnvW1A1       26,072        25,381   (-3%)          -6%               248          201  (-19%)
    cnvW1A2       40,321        50,217  (+25%)         +33%               263          221  (-16%)
    cnvW2A2       37,302        30,111  (-19%)         -28%               280          289   (+3%)
    lfcW1A1       28,360        28,620   (+1%)         +13%               220          202   (-8%)

Fitted on these four: 150 LUT per compute node (HLS dataflow control and stream handshakes:
a node costs this even at fold 1) and 1.36 LUT per popcounted bit on top of the XNOR gate.
The multi-bit overlays straddle the model: cnvW1A2 is overestimated, and cnvW2A2, whose
top.cpp forces two memories into LUTRAM (read multiplexers we do not model), underestimated.
The memories are counted as our kernels declare them (``HWNode.memories``: weights in whole
C++ limbs per PE, thresholds padded to every output level, the MVAU's input vector buffer),
not as BNN-PYNQ's kernels did, which is one reason BRAM18 stays below its figures.
BRAM is not fitted (the formula counts RAMB18 tiles exactly); BNN-PYNQ also keeps thresholds
and FIFOs in block RAM.  ``tests/transforms/test_fold.py`` prints and bounds this table and
checks the fit.

These coefficients are the HLS back end's (``backend: hls``).  An RTL build (``backend: rtl`` or
``both``) rescales the same formulas' LUT terms per node kind to Yosys's counts of our Verilog
(hls/nodes/yosys_fit.py, fitted to hls/nodes/data/yosys_samples.json); the BNN-PYNQ table above
stays its independent check (``bench/rtl_fit.py fit`` prints both models against it).
"""

from __future__ import annotations

import math

from qnnflow.base.errors import QnnflowError

FINN_R_CONTROL_LUTS = 300  # FINN-R c0: per-layer control logic of a compute node
STREAMING_CONTROL_LUTS = 100  # own estimate: loop counters and handshakes of a simple streaming node
MOVER_LUTS = 50  # own estimate: the same for a padding node
DATAPATH_SCALE = 1.1  # FINN-R c1: routing/packing overhead on datapath LUTs
FITTED = {  # see above; hls/nodes/calibration.fit_lut_coefficients reproduces them
    "NODE_LUTS": 150,  # what any compute node costs beyond its own control, datapath and output stream
    "POPCOUNT_LUTS_PER_BIT": 1.36,  # Preusser's compressor trees reach about 1
}
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))  # (depth, width)
LUTRAM_DEPTH = 64  # one LUT6 as RAM64X1
SRL_DEPTH = 32  # one LUT6 as SRLC32E
AUTO_LUTRAM_MAX_DEPTH = 128  # "auto" memories this shallow go to LUTRAM (FINN's internal_embedded rule)
DSP_PORTS = {"7series": (25, 18), "ultrascale+": (27, 18)}
RESOURCES = ("LUT", "BRAM18", "DSP")  # what every cost model returns, in this order where a vector is needed
LUT_MUX_INPUTS = 4  # a LUT6 is a 4:1 multiplexer


def coefficients(board: dict) -> dict:
    """The fitted LUT coefficients: FITTED, or a board mapping's own ``lut_coefficients`` (calibration)."""
    return board.get("lut_coefficients") or FITTED


def control_luts(board: dict, own: int = FINN_R_CONTROL_LUTS) -> float:
    """A node's control LUTs: its own (FINN-R's c0 for a compute node) plus the fitted per-node share."""
    return own + coefficients(board)["NODE_LUTS"]


def part_family(board: dict) -> str:
    """'7series' (xc7*) or 'ultrascale+' (xczu*) from a board description's part."""
    part = str(board.get("part", "")).lower()
    if part.startswith("xczu"):
        return "ultrascale+"
    if part.startswith("xc7"):
        return "7series"
    raise QnnflowError(f"board part '{part}': unknown FPGA family; expected xc7* (7-series) or xczu* (Zynq UltraScale+)")


def bram18_count(depth: int, width: int) -> int:
    """RAMB18s for a depth x width memory: the cheapest tiling by one aspect ratio."""
    if depth <= 0 or width <= 0:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM18_SHAPES)


def lutram_luts(depth: int, width: int) -> int:
    """LUTs for a depth x width distributed RAM (64x1 per LUT)."""
    return math.ceil(depth / LUTRAM_DEPTH) * width if depth > 0 and width > 0 else 0


def srl_luts(depth: int, width: int) -> int:
    """LUTs for a depth x width shift-register FIFO (32 deep per LUT)."""
    return math.ceil(depth / SRL_DEPTH) * width if depth > 0 and width > 0 else 0


def stream_fifo_luts(depth: int, width: int) -> int:
    """LUTs of a shallow stream FIFO: the words in SRLs plus read/write address counters
    (2 * ceil(log2(depth + 1)); FINN's StreamingFIFO lut_estimation uses 2 * log2(depth))."""
    return srl_luts(depth, width) + 2 * counter_luts(depth)


def bound_style(depth: int, ram_style: str) -> str:
    """What a memory of ``depth`` words under ``ram_style`` is bound as: 'auto' follows FINN, LUTRAM
    ('distributed') up to 128 deep and block RAM beyond; the other styles as they say.  The RTL binds
    each memory so (base.Memory.bound), so that synthesis builds what the estimate costs."""
    if ram_style == "auto":
        return "distributed" if depth <= AUTO_LUTRAM_MAX_DEPTH else "block"
    return ram_style


def memory(depth: int, width: int, ram_style: str) -> dict:
    """{'LUT', 'BRAM18'} for one depth x width memory under a ram_style (auto/block/distributed), bound
    as ``bound_style`` says.  'ultra' is the caller's business (our boards have no UltraRAM)."""
    if bound_style(depth, ram_style) == "distributed":
        return {"LUT": lutram_luts(depth, width), "BRAM18": 0}
    return {"LUT": 0, "BRAM18": bram18_count(depth, width)}


def lut_multiplier(a_bits: int, b_bits: int) -> int:
    """LUTs of one a x b bit multiplier in fabric; a 1-bit operand is a gate/negation per bit."""
    if min(a_bits, b_bits) == 1:
        return max(a_bits, b_bits)
    return (2 * math.ceil((a_bits + b_bits) / 6) - 1) * (a_bits + b_bits)


def dsp_multiplier(a_bits: int, a_signed: bool, b_bits: int, b_signed: bool, family: str) -> int:
    """DSP slices for one a x b multiplier: the signed ports tile the (sign-extended) operands."""
    a = a_bits + (not a_signed)  # an unsigned operand needs a zero sign bit on the signed port
    b = b_bits + (not b_signed)
    pa, pb = DSP_PORTS[family]
    return min(math.ceil(a / pa) * math.ceil(b / pb), math.ceil(b / pa) * math.ceil(a / pb))


def adder_tree_luts(n_inputs: int, in_bits: int) -> int:
    """LUTs to sum n operands of in_bits: n-1 carry-chain adders, one LUT per result bit."""
    if n_inputs <= 1:
        return 0
    return (n_inputs - 1) * (in_bits + math.ceil(math.log2(n_inputs)))


def popcount_luts(n_bits: int, board: dict) -> int:
    """LUTs of a compressor tree counting n_bits ones (calibrated, see the module docstring)."""
    return math.ceil(coefficients(board)["POPCOUNT_LUTS_PER_BIT"] * n_bits)


def comparator_luts(bits: int) -> int:
    """LUTs of one bits-wide threshold comparator (FINN charges a LUT per accumulator bit)."""
    return bits


def counter_luts(count: int) -> int:
    """LUTs of an address/loop counter running to ``count``."""
    return max(1, math.ceil(math.log2(count + 1)))


def uram_check(ram_style: str, board: dict, node: str) -> None:
    """ram_style='ultra' needs UltraRAM, which none of our boards' parts has."""
    if ram_style == "ultra" and not board.get("resources", {}).get("URAM"):
        raise QnnflowError(
            f"node '{node}': ram_style='ultra' but part {board.get('part')} has no UltraRAM; use 'block' or 'distributed'"
        )


def mux_luts(inputs: int) -> int:
    """LUT6s of one ``inputs``:1 multiplexer: a tree of 4:1 muxes (each level after the first takes 3 more)."""
    return math.ceil((inputs - 1) / (LUT_MUX_INPUTS - 1)) if inputs > 1 else 0


def repack_cycles(in_words: int, out_words: int) -> int:
    """Iterations of streams.hpp's ``repack`` per image: it reads, writes or both each iteration, and
    starts with a read, so max(in words, out words) + 1."""
    return max(in_words, out_words) + 1


def repack_luts(in_bits: int, out_bits: int, words: int) -> int:
    """LUTs of streams.hpp's ``repack`` (width converters, port adapters): an in+out-bit buffer into
    which each input word is shifted by the bits held, one of out/gcd(in, out) amounts (a mux of
    that many inputs per buffer bit, plus a LUT merging it with the held bits), and counters for
    the words read and written and the bits held."""
    shifts = out_bits // math.gcd(in_bits, out_bits)
    buffer = in_bits + out_bits
    return buffer * (1 + mux_luts(shifts)) + 2 * counter_luts(words) + counter_luts(buffer)


def memories_cost(memories) -> dict:
    """{'LUT', 'BRAM18'} of a node's memories (base.Memory: count x depth x width, bound as style)."""
    total = {"LUT": 0, "BRAM18": 0}
    for mem in memories:
        one = memory(mem.depth, mem.width, mem.style)
        total = {r: total[r] + mem.count * one[r] for r in total}
    return total
