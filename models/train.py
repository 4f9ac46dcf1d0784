"""Training zoo models: the recipe of Brevitas's bnn_pynq examples, on one process or many (DDP).

Recipe: Adam, lr 0.02 with a cosine or step schedule, squared-hinge or cross-entropy loss,
weights clipped to [-1, 1] after every step (the range of every zoo weight quantizer),
dropout 0.2 in the FC models, random crop (padding 4) and flip for CIFAR-10.

Determinism: every random draw (weight init, the epoch's shuffle, augmentation, dropout
masks) comes from a generator seeded by (seed, epoch), never from the global RNG, so a
run is repeatable, a resumed run continues exactly as an uninterrupted one would, and
under torch.distributed every rank draws the same global batch and keeps its slice.
With batch-norm statistics summed over ranks (models/norms.py), N processes train as
one process with the same global batch.

Multi-process: launch with `torchrun --nproc-per-node N --no-python qnnflow train ...`
(gloo on CPU, nccl on GPUs; torchrun's RANK/WORLD_SIZE/LOCAL_RANK select the process).

OUT (default runs/<model>/) receives: last.pt (everything --resume needs), best.pt (the
weights of the best test accuracy), epochs/epoch_NNN.pt (each epoch's weights; the newest
`keep_epochs`), metrics.csv, metrics.json and learning_curve.png.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from qnnflow.base.errors import QnnflowError

from .data import load_dataset, preprocess, spread_indices
from .dropout import BatchDropout
from .progress import Progress
from .train_config import TrainConfig
from .train_report import write_metrics
from .zoo import get_entry, untrained_model

NUM_CLASSES = 10
EVAL_BATCH = 1000
CROP_PADDING = 4
SEED_STRIDE = 1_000_003  # separates the per-epoch seeds of different runs


# ---------------------------------------------------------------- processes


@dataclass
class Processes:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    group: object = None  # the process group when distributed

    @property
    def main(self):
        return self.rank == 0

    def sum(self, values):
        """Sum a list of floats over all ranks."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.group is not None:
            torch.distributed.all_reduce(t, group=self.group)
        return t.tolist()


def start_processes():
    """The process layout from torchrun's environment (one process when it is absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if "OMP_NUM_THREADS" not in os.environ and not cuda:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if world == 1:
        return Processes(device=device)
    import torch.distributed as dist

    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Processes(dist.get_rank(), world, local_rank, device, dist.group.WORLD)


# ---------------------------------------------------------------- data


def dataset_tensors(dataset, split, limit=None):
    """(float images NCHW in [0, 1], int64 labels) of a data set split, `limit` images spread over it."""
    images, labels = load_dataset(dataset, split)
    chosen = spread_indices(len(images), limit)
    images, labels = images[chosen], labels[chosen]
    return torch.from_numpy(preprocess(images, dataset)), torch.from_numpy(labels)


def augment(x, gen, padding=CROP_PADDING):
    """Random crop of the zero-padded images (padding 4) and random horizontal flip, per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.arange(w)
    rows = dy[:, None] + torch.arange(h)  # (n, h)
    cols = dx[:, None] + torch.where(flip[:, None], cols.flip(0), cols)  # (n, w)
    batch = torch.arange(n)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


# ---------------------------------------------------------------- recipe


def loss_fn(name, scores, labels):
    if name == "cross_entropy":
        return F.cross_entropy(scores, labels)
    # Squared hinge against +1 for the class and -1 elsewhere (BNN-PYNQ's SqrHinge).
    target = torch.full_like(scores, -1.0).scatter_(1, labels[:, None], 1.0)
    return torch.clamp(1.0 - scores * target, min=0).pow(2).mean()


def clip_weights(model, low=-1.0, high=1.0):
    """Clip every conv/linear weight to the quantizers' range; beyond it a latent weight only drifts."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.clamp_(low, high)


def _epoch_generator(cfg, epoch, stream):
    return torch.Generator().manual_seed(cfg.seed * SEED_STRIDE + 7 * epoch + stream)


# ---------------------------------------------------------------- checkpoints


def _save_atomic(obj, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_resume(path, name):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for unreadable files
        raise QnnflowError(f"{path} cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__}): "
                           "start a new run without --resume, or in another --out") from None
    if not isinstance(state, dict) or "optimizer" not in state or "epoch" not in state:
        raise QnnflowError(f"{path} is not a training checkpoint (no optimizer state): pass the run's last.pt")
    if state.get("model") != name:
        raise QnnflowError(f"{path} is a run of model '{state.get('model')}', not of '{name}': resume it with "
                           f"`qnnflow train {state.get('model')} --resume`, or train {name} in another --out")
    return state


# ---------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    out_dir: Path
    epochs: int
    best_epoch: int
    best_test_acc: float
    wall_seconds: float
    history: list


def _evaluate(model, x, y, procs, loss_name):
    """(mean loss, accuracy) on the test tensors, each rank taking every world-th image."""
    model.eval()
    idx = torch.arange(procs.rank, len(x), procs.world)
    loss_sum = correct = 0.0
    with torch.no_grad():
        for start in range(0, len(idx), EVAL_BATCH):
            part = idx[start:start + EVAL_BATCH]
            xb, yb = x[part].to(procs.device), y[part].to(procs.device)
            scores = model(xb)
            loss_sum += float(loss_fn(loss_name, scores, yb)) * len(part)
            correct += float((scores.argmax(1) == yb).sum())
    loss_sum, correct = procs.sum([loss_sum, correct])
    return loss_sum / len(x), correct / len(x)


def _prepare(model, procs):
    """Shard the dropout masks and sum the norms' statistics over the ranks."""
    for module in model.modules():
        if hasattr(module, "sync_group"):  # the norms of models/norms.py
            module.sync_group = procs.group
    return [m for m in model.modules() if isinstance(m, BatchDropout)]


def train(name, cfg: TrainConfig, out_dir, resume=False, train_limit=None, test_limit=None,
          procs: Processes | None = None, log=print, progress=True, start=None) -> TrainResult:
    """Train zoo model `name` with `cfg` into `out_dir`; `resume` continues from out_dir/last.pt.
    `start(model)`, when given, prepares the fresh model before training (fine-tuning: load weights, add
    pruning masks)."""
    procs = procs or Processes()
    entry = get_entry(name)
    out_dir = Path(out_dir)
    last = out_dir / "last.pt"
    if resume and not last.is_file():
        raise QnnflowError(f"--resume: {last} not found: train without --resume first, or pass the run's --out")
    if not resume and last.is_file():
        raise QnnflowError(f"{out_dir} already holds a run of {torch.load(last, weights_only=True).get('model')} "
                           f"(last.pt): pass --resume to continue it, or choose another --out")
    if cfg.batch_size % procs.world:
        raise QnnflowError(f"--batch-size {cfg.batch_size} does not split over {procs.world} processes: "
                           f"use a multiple of {procs.world}")
    x_train, y_train = dataset_tensors(entry.dataset, "train", train_limit)
    x_test, y_test = dataset_tensors(entry.dataset, "test", test_limit)
    steps = len(x_train) // cfg.batch_size  # the last partial batch is dropped: every step splits evenly
    if steps == 0:
        raise QnnflowError(f"--batch-size {cfg.batch_size} exceeds the {len(x_train)} training images: lower it")

    model = untrained_model(name, cfg.seed)
    if start is not None:
        start(model)
    model = model.to(procs.device)
    dropouts = _prepare(model, procs)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history, start_epoch, best = [], 0, {"epoch": 0, "test_acc": -1.0}
    if resume:
        state = _load_resume(last, name)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        history, start_epoch, best = list(state["history"]), int(state["epoch"]), dict(state["best"])
        if start_epoch >= cfg.epochs:
            raise QnnflowError(f"--resume: {last} has finished {start_epoch} of {cfg.epochs} epochs: "
                               f"pass --epochs above {start_epoch} to train longer")
        if procs.main:
            log(f"resuming {name} at epoch {start_epoch + 1} of {cfg.epochs} from {last}")
    net = model
    if procs.group is not None:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [procs.device.index] if procs.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
    per_rank = cfg.batch_size // procs.world
    t_run = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        lr = cfg.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(len(x_train), generator=_epoch_generator(cfg, epoch, 0))
        aug_gen, drop_gen = _epoch_generator(cfg, epoch, 1), _epoch_generator(cfg, epoch, 2)
        for d in dropouts:
            d.shard(drop_gen, procs.rank, procs.world)
        net.train()
        bar = Progress(steps * cfg.batch_size, f"epoch {epoch + 1}/{cfg.epochs}", enabled=progress and procs.main)
        t0 = time.perf_counter()
        loss_sum = correct = 0.0
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if cfg.augment:
                xb = augment(xb, aug_gen)
            mine = slice(procs.rank * per_rank, (procs.rank + 1) * per_rank)
            xb, yb = xb[mine].to(procs.device), yb[mine].to(procs.device)
            scores = net(xb)
            loss = loss_fn(cfg.loss, scores, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clip_weights(model)
            loss_sum += float(loss.detach()) * per_rank
            correct += float((scores.argmax(1) == yb).sum())
            seen = (step + 1) * per_rank
            bar.update(cfg.batch_size, loss=loss_sum / seen, acc=correct / seen)
        bar.close()
        train_seconds = time.perf_counter() - t0
        loss_sum, correct = procs.sum([loss_sum, correct])
        seen = steps * cfg.batch_size
        test_loss, test_acc = _evaluate(model, x_test, y_test, procs, cfg.loss)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "test_loss": test_loss, "test_acc": test_acc, "seconds": round(time.perf_counter() - t0, 3),
               "images_per_s": round(seen / train_seconds, 1)}
        history.append(row)
        if test_acc > best["test_acc"]:
            best = {"epoch": epoch + 1, "test_acc": test_acc}
        if procs.main:
            _write_epoch(out_dir, name, cfg, model, optimizer, history, best, procs)
            log(f"epoch {epoch + 1}/{cfg.epochs}: lr {lr:.4g} train loss {row['train_loss']:.4f} "
                f"acc {row['train_acc']:.4f} | test loss {test_loss:.4f} acc {test_acc:.4f} | "
                f"{row['images_per_s']:,.0f} img/s, {row['seconds']:.1f} s")
    wall = time.perf_counter() - t_run
    if procs.group is not None:
        torch.distributed.barrier(group=procs.group)
    return TrainResult(out_dir, cfg.epochs, best["epoch"], best["test_acc"], wall, history)


def _write_epoch(out_dir, name, cfg, model, optimizer, history, best, procs):
    """Per-epoch outputs, each written atomically: weights, best, resume state, metrics."""
    epoch = history[-1]["epoch"]
    weights = {"model": name, "epoch": epoch, "test_acc": history[-1]["test_acc"],
               "config": cfg.as_dict(), "state_dict": model.state_dict()}
    _save_atomic(weights, out_dir / "epochs" / f"epoch_{epoch:03d}.pt")
    if cfg.keep_epochs:
        for old in sorted((out_dir / "epochs").glob("epoch_*.pt"))[:-cfg.keep_epochs]:
            old.unlink()
    if best["epoch"] == epoch:
        _save_atomic(weights, out_dir / "best.pt")
    _save_atomic({**weights, "optimizer": optimizer.state_dict(), "history": history, "best": best},
                 out_dir / "last.pt")
    write_metrics(out_dir, name, cfg, history, best, procs.world)


def run(name, args, log=print):
    """`qnnflow train`: the zoo model `name` (bit widths already applied) with the command line's overrides."""
    from .train_config import train_config

    overrides = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
                 "loss": args.loss, "schedule": args.schedule}
    cfg = train_config(name, get_entry(name).family, args.config, overrides)
    procs = start_processes()
    out_dir = Path(args.out) if args.out else Path("runs") / name
    if procs.main:
        log(f"qnnflow: training {name} ({cfg.epochs} epochs, global batch {cfg.batch_size}, lr {cfg.lr}, "
            f"{cfg.schedule}, {cfg.loss}; {procs.world} process(es) on {procs.device.type}) into {out_dir}")
    result = train(name, cfg, out_dir, args.resume, args.train_limit, args.test_limit, procs, log)
    if procs.main:
        log(f"qnnflow: {result.epochs} epochs in {result.wall_seconds:.1f} s; best test accuracy "
            f"{100 * result.best_test_acc:.2f}% at epoch {result.best_epoch}: {out_dir / 'best.pt'}")
    return result


def compact_checkpoint(name, src, dst):
    """Write the weights of checkpoint `src` as `dst` for shipping: each conv/linear weight replaced by
    its quantized value (what inference uses), stored as int8 when integral (binary, 2-bit), else float16
    when exact (power-of-two scales), so a 1-bit LFC takes a quarter of the float checkpoint."""
    from brevitas.nn import QuantConv2d, QuantLinear

    from .zoo import build_model

    model = build_model(name, weights=str(src))
    state = model.state_dict()
    for prefix, module in model.named_modules():
        if isinstance(module, (QuantConv2d, QuantLinear)):
            with torch.no_grad():
                value = module.quant_weight().value.detach()
            for dtype in (torch.int8, torch.float16, torch.float32):
                if torch.equal(value.to(dtype).float(), value):
                    state[f"{prefix}.weight"] = value.to(dtype)
                    break
    meta = torch.load(src, map_location="cpu", weights_only=True)
    _save_atomic({"model": name, "epoch": meta.get("epoch"), "test_acc": meta.get("test_acc"), "state_dict": state},
                 Path(dst))
