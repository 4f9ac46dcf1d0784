"""Training hyper-parameters: per-family YAML in models/train_configs/, command-line overrides.

`train_config(model, path=None, overrides={})` reads models/train_configs/<model>.yaml if
it exists, else <family>.yaml (tfc, lfc, cnv), or the file `path`, applies the overrides
and checks every field; a bad field is one QnnflowError naming the file and the field.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from qnnflow.base.errors import QnnflowError

CONFIG_DIR = Path(__file__).resolve().parent / "train_configs"
SCHEDULES = ("cosine", "step")
LOSSES = ("sqr_hinge", "cross_entropy")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 100  # the global batch: split across processes under DDP
    lr: float = 0.02
    schedule: str = "cosine"
    step_epochs: int = 40  # step schedule: lr *= step_gamma every step_epochs
    step_gamma: float = 0.5
    loss: str = "sqr_hinge"
    weight_decay: float = 0.0
    augment: bool = False  # random crop (padding 4) and horizontal flip (CIFAR-10)
    seed: int = 0
    keep_epochs: int = 5  # per-epoch checkpoints kept (the oldest are deleted); 0 keeps all
    source: str = ""

    def as_dict(self):
        return asdict(self)

    def lr_at(self, epoch):
        """The learning rate of epoch `epoch` (0-based)."""
        import math

        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        return self.lr * self.step_gamma ** (epoch // self.step_epochs)


def _check(name, value, where):
    kinds = {f: type(getattr(TrainConfig(), f)) for f in TrainConfig.__dataclass_fields__}
    kind = kinds[name]
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise QnnflowError(f"{where}: expected {kind.__name__}, got {value!r}")
    positive = ("epochs", "batch_size", "lr", "step_epochs", "step_gamma")
    if name in positive and value <= 0:
        raise QnnflowError(f"{where}: must be > 0, got {value!r}")
    if name in ("weight_decay", "keep_epochs") and value < 0:
        raise QnnflowError(f"{where}: must be >= 0, got {value!r}")
    if name == "schedule" and value not in SCHEDULES:
        raise QnnflowError(f"{where}: unknown '{value}' (choose from {', '.join(SCHEDULES)})")
    if name == "loss" and value not in LOSSES:
        raise QnnflowError(f"{where}: unknown '{value}' (choose from {', '.join(LOSSES)})")
    return value


def default_config_path(model, family):
    own = CONFIG_DIR / f"{model}.yaml"
    return own if own.is_file() else CONFIG_DIR / f"{family}.yaml"


def train_config(model, family, path=None, overrides=None):
    path = Path(path) if path else default_config_path(model, family)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise QnnflowError(f"{path}: training config not found; see models/train_configs/ for examples") from None
    except yaml.YAMLError as err:
        raise QnnflowError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise QnnflowError(f"{path}: expected a mapping of fields (epochs:, lr:, ...)")
    fields = [f for f in TrainConfig.__dataclass_fields__ if f != "source"]
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise QnnflowError(f"{path}: {key}: unknown field (known: {', '.join(fields)})")
        values[key] = _check(key, value, f"{path}: {key}")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _check(key, value, f"--{key.replace('_', '-')}")
    return TrainConfig(**values, source=str(path))


def add_arguments(parser):
    """The `qnnflow train` options (defined here, without importing torch, for the CLI)."""
    parser.add_argument("model", help="a zoo model (lfc_w1a1) or a build YAML naming one")
    parser.add_argument("--config", help="training YAML (default models/train_configs/<model or family>.yaml)")
    parser.add_argument("--out", help="run directory (default runs/<model>)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int, help="the global batch (split across torchrun processes)")
    parser.add_argument("--weight-bits", type=int, help="train the zoo model of this weight bit width")
    parser.add_argument("--act-bits", type=int, help="train the zoo model of this activation bit width")
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--train-limit", type=int, metavar="N", help="train on N training images spread evenly over the set")
    parser.add_argument("--test-limit", type=int, metavar="N", help="test on N test images spread evenly over the set")


def model_with_bits(name, family, weight_bits, act_bits, known):
    """The zoo name of `family` at the requested bit widths (default: those of `name`)."""
    if weight_bits is None and act_bits is None:
        return name
    import re

    w, a, suffix = re.fullmatch(r".*_w(\d+)a(\d+)(_in\d+)?", name).groups()  # suffix: another input width
    wanted = (f"{family}_w{weight_bits if weight_bits is not None else w}a{act_bits if act_bits is not None else a}"
              f"{suffix or ''}")
    if wanted not in known:
        have = ", ".join(k for k in known if k.startswith(family + "_"))
        raise QnnflowError(f"--weight-bits/--act-bits: the zoo has no '{wanted}' (it has {have})")
    return wanted
