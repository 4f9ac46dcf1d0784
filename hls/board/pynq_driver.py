"""qnnflow's PYNQ driver: run the accelerator of a qnnflow build on the board.

    from qnnflow_driver import QnnflowDriver
    accel = QnnflowDriver()                    # loads qnnflow.bit (+ .hwh) beside accel.json
    labels = accel.classify(images)            # (N, k) class indices
    scores = accel.execute(images)             # the network's outputs, as the verified graph's
    print(accel.throughput_test(1000))         # images/s, and where the time goes

A batch goes through the host head (input quantisation, numpy), is packed into the
accelerator's AXI-Stream words, crosses the DMA, is unpacked, and goes through the host
tail (scale, bias, top-k).  The head, the tail and the packing are qnnflow's own code
(``qnnflow.base.hostops`` and ``qnnflow.base.streams``; the deployment package carries copies
under lib/), the code the build verified against PyTorch.  Only ``DmaLink`` needs ``pynq``,
imported when it is created; ``TestbenchLink`` runs the build's C++ simulation instead.

Requires numpy; on the board PYNQ >= 2.7 (DMA transfers with start/nbytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if (HERE / "lib" / "qnnflow").is_dir():  # in a deployment package: the copies of qnnflow's modules
    sys.path.insert(0, str(HERE / "lib"))

from qnnflow.base.hostops import HostNode, run_graph, top_k_indices  # noqa: E402
from qnnflow.base.streams import PortFormat  # noqa: E402


def _port(d: dict) -> PortFormat:
    return PortFormat(tuple(d["shape"]), d["datatype"], int(d["axi_bits"]))


class HostProgram:
    """The host side of the accelerator: head, packing, unpacking, tail (numpy only)."""

    def __init__(self, config: dict, params: dict):
        self.config = config
        self.params = {k: np.asarray(v) for k, v in params.items()}
        self.port_in, self.port_out = _port(config["port_in"]), _port(config["port_out"])
        self.head_nodes = [HostNode.from_dict(n) for n in config["head"]]
        self.tail_nodes = [HostNode.from_dict(n) for n in config["tail"]]

    @classmethod
    def load(cls, directory: Path = HERE) -> "HostProgram":
        directory = Path(directory)
        config = json.loads((directory / "accel.json").read_text())
        with np.load(directory / "host_params.npz") as data:
            params = {k: data[k] for k in data.files}
        return cls(config, params)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.config["input"]["shape"][1:])

    def head(self, batch: np.ndarray) -> np.ndarray:
        """Network inputs (N, ...) -> the integer tensor entering the accelerator."""
        batch = np.asarray(batch)
        x = batch.reshape(len(batch), *self.input_shape).astype(np.float32)
        shape = self.config["region_input"]["shape"][1:]
        if not self.head_nodes:
            return x.reshape(len(x), *shape)
        out = run_graph(self.head_nodes, self.params, self.config["input"]["name"],
                        self.config["region_input"]["name"], x)
        return out.reshape(len(x), *shape)

    def pack(self, x: np.ndarray) -> np.ndarray:
        """Region inputs -> (N, image_bytes) uint8 stream words, as the C++ testbench reads them."""
        return self.port_in.pack(x).reshape(len(x), -1)

    def unpack(self, raw: np.ndarray) -> np.ndarray:
        """Output stream bytes -> the region's output tensor (N, ...) as float32 integers."""
        y = self.port_out.unpack(np.asarray(raw, dtype=np.uint8))
        return y.reshape(len(y), *self.config["region_output"]["shape"][1:]).astype(np.float32)

    def tail(self, y: np.ndarray) -> np.ndarray:
        """The region's outputs -> the network's outputs."""
        if not self.tail_nodes:
            return y
        return run_graph(self.tail_nodes, self.params, self.config["region_output"]["name"],
                         self.config["output"]["name"], y)


class DmaLink:
    """The accelerator on the board: the overlay's AXI DMA moves stream words to it and back."""

    def __init__(self, bitfile: Path, program: HostProgram, download: bool = True):
        from pynq import Overlay, allocate  # only here: everything else runs without pynq

        self.overlay = Overlay(str(bitfile), download=download)
        self.dma = getattr(self.overlay, program.config["dma"])
        self._allocate = allocate
        self.in_bytes, self.out_bytes = program.port_in.image_bytes, program.port_out.image_bytes
        self.max_images = max(1, program.config["max_transfer_bytes"] // max(self.in_bytes, self.out_bytes))
        self._buffers = None

    def _buffers_for(self, n: int):
        if self._buffers is None or self._buffers[0].shape[0] < n * self.in_bytes:
            self._buffers = (self._allocate(shape=(n * self.in_bytes,), dtype=np.uint8),
                             self._allocate(shape=(n * self.out_bytes,), dtype=np.uint8))
        return self._buffers

    def run(self, words: np.ndarray) -> np.ndarray:
        """(N, in image bytes) uint8 -> (N, out image bytes) uint8, in chunks the DMA's length register allows."""
        outs = []
        for start in range(0, len(words), self.max_images):
            chunk = words[start : start + self.max_images]
            n = len(chunk)
            ibuf, obuf = self._buffers_for(n)
            ibuf[: n * self.in_bytes] = chunk.reshape(-1)
            ibuf.flush()
            self.dma.sendchannel.transfer(ibuf, nbytes=n * self.in_bytes)
            # The accelerator raises TLAST after every image, which ends an S2MM transfer:
            # one receive per image.
            for i in range(n):
                self.dma.recvchannel.transfer(obuf, start=i * self.out_bytes, nbytes=self.out_bytes)
                self.dma.recvchannel.wait()
            self.dma.sendchannel.wait()
            obuf.invalidate()
            outs.append(np.array(obuf[: n * self.out_bytes]).reshape(n, self.out_bytes))
        return np.concatenate(outs)


class TestbenchLink:
    """The build's C++ simulation as the accelerator: ``cppsim``'s testbench binary moves the same words."""

    def __init__(self, binary: Path):
        self.binary = Path(binary)
        if not self.binary.is_file():
            raise FileNotFoundError(f"{self.binary}: no testbench binary (run the build's cppsim step)")

    def run(self, words: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="qnnflow-driver-") as tmp:
            in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            in_path.write_bytes(np.ascontiguousarray(words, dtype=np.uint8).tobytes())
            proc = subprocess.run([str(self.binary), str(in_path), str(out_path)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{self.binary} failed: {proc.stderr.strip() or proc.returncode}")
            raw = np.frombuffer(out_path.read_bytes(), np.uint8)
        return raw.reshape(len(words), -1)


class QnnflowDriver:
    """``classify``, ``execute`` and ``throughput_test`` over a link to the accelerator."""

    def __init__(self, directory: Path = HERE, link=None, bitfile: Path | None = None, download: bool = True):
        self.program = HostProgram.load(directory)
        if link is None:
            link = DmaLink(bitfile or Path(directory) / self.program.config["bitfile"], self.program, download)
        self.link = link
        self.timings: dict[str, float] = {}

    def execute(self, batch: np.ndarray) -> np.ndarray:
        """The network's outputs for inputs (N, ...), as the verified graph computes them."""
        t = [time.perf_counter()]
        x = self.program.head(batch)
        t.append(time.perf_counter())
        words = self.program.pack(x)
        t.append(time.perf_counter())
        raw = self.link.run(words)
        t.append(time.perf_counter())
        y = self.program.unpack(raw)
        t.append(time.perf_counter())
        out = self.program.tail(y)
        t.append(time.perf_counter())
        self.timings = dict(zip(("head", "pack", "accelerator", "unpack", "tail"), np.diff(t).tolist()))
        return out

    def classify(self, images: np.ndarray, k: int | None = None) -> np.ndarray:
        """Top-k class indices (N, k), best first; a network ending in labels returns its own."""
        out = self.execute(images)
        if self.program.config["output"]["labels"]:
            return out.astype(np.int64)
        return top_k_indices(out, k or self.program.config["top_k"])

    def throughput_test(self, batch_size: int = 1000) -> dict:
        """Images/s over one batch of zeros, with the time on the accelerator and the host's overhead."""
        batch = np.zeros((batch_size, *self.program.input_shape), np.float32)
        t0 = time.perf_counter()
        self.execute(batch)
        total = time.perf_counter() - t0
        host = sum(v for k, v in self.timings.items() if k != "accelerator")
        return {"images": batch_size, "seconds": total, "images_per_s": batch_size / total,
                "accelerator_seconds": self.timings["accelerator"],
                "accelerator_images_per_s": batch_size / max(self.timings["accelerator"], 1e-12),
                "host_seconds": host, "host_overhead": host / total,
                **{f"{k}_seconds": v for k, v in self.timings.items() if k != "accelerator"}}


if __name__ == "__main__":
    driver = QnnflowDriver(link=TestbenchLink(os.environ["QNNFLOW_TESTBENCH"]) if "QNNFLOW_TESTBENCH" in os.environ
                           else None)
    for key, value in driver.throughput_test().items():
        print(f"{key:<26} {value:,.4f}" if isinstance(value, float) else f"{key:<26} {value}")
