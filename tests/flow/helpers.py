"""User code referenced from test builds as ``tests.flow.helpers:<function>``."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from qnnflow.transforms.tidy import tidy


def retidy(model, ctx):
    """A user step that changes nothing observable: re-run tidy."""
    return tidy(model)


def corrupt_first_matmul(model, ctx):
    """A user step that breaks the network: negate the weights of the first MatMul/Conv."""
    node = next(n for n in model.graph.node if n.op_type in ("MatMul", "Conv"))
    weight_name = node.input[1]
    producer = model.find_producer(weight_name)
    if producer is not None:  # weights behind a quantizer: corrupt the quantizer's input
        weight_name = producer.input[0]
    model.set_initializer(weight_name, -model.get_initializer(weight_name))
    return model


def die_when_asked(model, ctx):
    """Writes half an artifact, then kills its own process when QNNFLOW_TEST_KILL is set."""
    if os.environ.get("QNNFLOW_TEST_KILL"):
        (ctx.out_dir / "partial.bin").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    return model


def wait_for_interrupt(model, ctx):
    """When QNNFLOW_TEST_WAIT names a file: write a partial artifact, create that file, then wait for Ctrl-C."""
    flag = os.environ.get("QNNFLOW_TEST_WAIT")
    if flag:
        ctx.write_artifact("wait/partial.txt", b"written before the interrupt")
        Path(flag).write_text("waiting")
        time.sleep(120)
    return model


class TinyNet(nn.Module):
    """A small Brevitas network outside the zoo: 4-bit conv, ReLU, pool, 3-bit FC."""

    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv = QuantConv2d(2, 4, kernel_size=3, padding=1, stride=2, weight_bit_width=4, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = QuantReLU(bit_width=3)
        self.pool = nn.MaxPool2d(2)
        self.fc = QuantLinear(16, 5, bias=True, weight_bit_width=3)

    def forward(self, x):
        x = self.pool(self.act(self.bn(self.conv(self.inp(x)))))
        return self.fc(x.flatten(1))


def tiny_net():
    torch.manual_seed(3)
    net = TinyNet()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net.eval(), (1, 2, 8, 8), (-1.0, 1.0)


def tiny_net_inputs(count=4):
    return np.random.default_rng(0).uniform(-1, 1, size=(count, 2, 8, 8)).astype(np.float32)
