"""Training and sampling throughput of the study's UNet beside diffusers' ``UNet2DModel`` of the same layout, in
one run on one machine.

- Training: img/s of full optimiser steps (ε-prediction MSE at uniform t, backward, Adam with ``foreach``, as
  :class:`diffsteps.learners.ObjectiveLearner` runs them) at the preset's ``train.batch_size``.
- Sampling: img·NFE/s of network evaluations under ``torch.no_grad`` at the preset's ``sampling.batch_size``
  (one NFE is one forward pass; the sampler's own arithmetic is negligible beside it).
- Sizes: the layout of the ``cpu`` preset (the default study) and of the ``gpu`` preset, each on its data shape.
- Modes: eager float32 everywhere; on a GPU also bf16 autocast and ``torch.compile`` (``--modes``).
  ``pipeline`` times the study's own training step (the loop's step on the preset's DDPM run: data order and
  draws on the device, fused Adam, clipping, EMA, the preset's ``amp``) against diffusers' eager float32 step:
  the comparison the GPU issue's targets are stated in. ``stacked`` trains ``--replicates`` copies of the network
  (one per training seed) as one stacked network (``torch.func.stack_module_state`` and ``vmap``, fused Adam over
  the stacked parameters, eager float32), counting every replicate's images: the design "train the replicate
  seeds of one run together" would use, timed before it is built (the study trains each seed in its own job).

The two networks are built from the same :class:`~diffsteps.models.unet.UNetSpec`: widths ``channels ×
channel_mult``, ``num_res_blocks`` residual blocks per level (one more on the way up), self-attention at the
same resolutions and in the middle with the same head width, stride-2 convolutions down and nearest-neighbour
upsampling with a convolution up, a 4×width time embedding. diffusers uses one GroupNorm group count for every
width (here the study's count at the base width), the study a count per width. diffusers is a benchmark-only
extra (``pip install -c requirements/constraints.txt -e ".[bench]"``), never a dependency of the package.

Each figure is the best of ``--repeats`` timed windows of at least ``--seconds`` each, after warm-up steps
(compilation included in warm-up for ``compile``), the two networks' windows interleaved so that a slow moment
of the machine hits both. Writes ``benchmarks/results/throughput.json`` and prints a
table. ``--tiny`` runs a few steps of each case in seconds (the suite runs it, so the script cannot rot); its
figures are not measurements.

    python benchmarks/throughput.py [--sizes cpu gpu] [--device auto] [--modes eager bf16 compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "throughput.json"
sys.path.insert(0, str(ROOT / "src"))

from diffsteps.io import device_name, git_commit  # noqa: E402  (the package from this checkout)
from diffsteps.models.unet import UNet, UNetSpec, _groups, count_parameters  # noqa: E402
from diffsteps.data.shapes import image_shape  # noqa: E402
from diffsteps.params import load_config  # noqa: E402

MODES = ("eager", "bf16", "compile", "pipeline", "stacked")
T_TRAIN = 1000  # the time input's range: ε-prediction at integer t ∈ [0, T), as the DDPM runs train


def preset_config(preset: str):
    return load_config(ROOT / "src/diffsteps/presets" / f"{preset}.yaml")


def spec_of(preset: str) -> tuple[UNetSpec, int, int]:
    """The preset's network and its training and sampling batch sizes."""
    cfg = preset_config(preset)
    C, H = image_shape(cfg.data)
    return UNetSpec.from_config(cfg.model, image_size=H, in_channels=C), cfg.train.batch_size, cfg.sampling.batch_size


def pipeline_train_step(preset: str, train_batch: int, device: torch.device) -> tuple[int, Callable[[], None]]:
    """The study's own training step on ``preset``'s DDPM run (random uint8 images of its data shape): the
    parameter count and one step of the training loop, its values read back every ``log_every`` steps as the
    loop reads them."""
    from diffsteps.methods.ddpm import DDPM
    from diffsteps.training.loop import _Run

    cfg = preset_config(preset)
    C, H = image_shape(cfg.data)
    images = np.random.default_rng(0).integers(0, 256, (max(8 * train_batch, 512), C, H, H), dtype=np.uint8)
    train = dataclasses.replace(cfg.train, batch_size=train_batch)
    run = _Run(DDPM(cfg, "ddpm", (C, H, H)), images, train, 0, device,
               Path(tempfile.mkdtemp(prefix="throughput-")) / "checkpoint.pt")
    run.model.train()

    def train_step() -> None:
        run.train_step()
        if len(run.pending) >= train.log_every:
            run.flush()
            run.interval.clear()

    return count_parameters(run.model), train_step


def stacked_train_step(spec: UNetSpec, replicates: int, train_batch: int,
                       device: torch.device) -> tuple[int, Callable[[], None], dict[str, torch.Tensor]]:
    """One network's parameter count, the stacked parameters (replicates, ...) by name and one optimiser step of
    ``replicates`` networks stacked along a leading axis: each replicate's batch (B, C, H, W)
    through ``vmap(functional_call)`` (dropout masks differ between replicates), its own loss mean, their sum's
    backward (each replicate's gradient is its own loss's) and one fused Adam over the stacked parameters."""
    from torch.func import functional_call, stack_module_state, vmap

    nets = []
    for seed in range(replicates):
        torch.manual_seed(seed)
        nets.append(UNet(spec).to(device).train())
    params, buffers = stack_module_state(nets)
    template = nets[0]
    fwd = vmap(lambda p, b, x, t: functional_call(template, (p, b), (x, t)), randomness="different")
    opt = torch.optim.Adam(params.values(), lr=1e-4, fused=True)
    C, H = spec.in_channels, spec.image_size
    x0 = torch.randn(replicates, train_batch, C, H, H, device=device)
    gen = torch.Generator(device).manual_seed(0)

    def train_step() -> None:
        t = torch.randint(0, T_TRAIN, (replicates, train_batch), device=device, generator=gen)
        eps = torch.randn(x0.shape, device=device, generator=gen)
        loss = (fwd(params, buffers, x0 * 0.5 + eps * 0.8, t.float()) - eps).square().mean(dim=(1, 2, 3, 4)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return count_parameters(template), train_step, params


def diffusers_unet(spec: UNetSpec) -> torch.nn.Module:
    """diffusers' UNet2DModel with the study UNet's layout (see the module docstring)."""
    from diffusers import UNet2DModel

    widths = [spec.channels * m for m in spec.channel_mult]
    res, attn_levels = spec.image_size, []
    for _ in widths:
        attn_levels.append(res in spec.attn_resolutions)
        res //= 2
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn_levels))
    head_dim = widths[-1] // spec.num_heads  # the middle block's head width, as in the study's UNet
    return UNet2DModel(sample_size=spec.image_size, in_channels=spec.in_channels, out_channels=spec.out_channels,
                       block_out_channels=tuple(widths), layers_per_block=spec.num_res_blocks,
                       down_block_types=down, up_block_types=up, attention_head_dim=head_dim,
                       norm_num_groups=_groups(spec.channels), dropout=spec.dropout, downsample_type="conv",
                       upsample_type="conv")


def forward_of(kind: str, net: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "diffsteps":
        return net
    return lambda x, t: net(x, t).sample


def best_rates(steps: dict[str, Callable[[], None]], items: float, device: torch.device, *, warmup: int,
               seconds: float, repeats: int) -> dict[str, float]:
    """items/s of each step function: the best of ``repeats`` windows of ≥ ``seconds`` (at least 2 steps) after
    warm-up, the functions' windows interleaved (A B A B …) so that a slow moment of the machine hits both."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    best = dict.fromkeys(steps, 0.0)
    for _ in range(repeats):
        for kind, step in steps.items():
            n, start = 0, time.perf_counter()
            while n < 2 or time.perf_counter() - start < seconds:
                step()
                n += 1
                if device.type == "cuda" and n % 8 == 0:
                    sync()
            sync()
            best[kind] = max(best[kind], n * items / (time.perf_counter() - start))
    return best


def step_functions(kind: str, spec: UNetSpec, mode: str, train_batch: int, sample_batch: int,
                   device: torch.device) -> tuple[int, Callable[[], None], Callable[[], None]]:
    """The network's parameter count, one training step and one sampling NFE (each on its batch); ``pipeline``
    is eager float32 here (diffusers' side of that comparison, and the study's sampling)."""
    mode = "eager" if mode in ("pipeline", "stacked") else mode
    torch.manual_seed(0)
    net = (UNet(spec) if kind == "diffsteps" else diffusers_unet(spec)).to(device)
    fwd = forward_of(kind, torch.compile(net) if mode == "compile" else net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, foreach=True)
    C, H = spec.in_channels, spec.image_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16")
    x0 = torch.randn(train_batch, C, H, H, device=device)
    xs = torch.randn(sample_batch, C, H, H, device=device)
    ts = torch.full((sample_batch,), T_TRAIN / 2, device=device)
    gen = torch.Generator(device).manual_seed(0)

    def train_step() -> None:
        net.train()
        t = torch.randint(0, T_TRAIN, (train_batch,), device=device, generator=gen)
        eps = torch.randn(x0.shape, device=device, generator=gen)
        with autocast:
            loss = F.mse_loss(fwd(x0 * 0.5 + eps * 0.8, t.float()).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sample_step() -> None:
        net.eval()
        with torch.no_grad(), autocast:
            fwd(xs, ts)

    return count_parameters(net), train_step, sample_step


def measure(preset: str, spec: UNetSpec, mode: str, train_batch: int, sample_batch: int, device: torch.device,
            replicates: int = 3, **timing) -> dict[str, dict]:
    kinds = ("diffsteps", "diffusers")
    built = {k: step_functions(k, spec, mode, train_batch, sample_batch, device) for k in kinds}
    if mode == "pipeline":
        parameters, train_step = pipeline_train_step(preset, train_batch, device)
        built["diffsteps"] = (parameters, train_step, built["diffsteps"][2])
    if mode == "stacked":
        parameters, train_step, _ = stacked_train_step(spec, replicates, train_batch, device)
        built["diffsteps"] = (parameters, train_step, built["diffsteps"][2])
    train = best_rates({k: b[1] for k, b in built.items()}, train_batch, device, **timing)
    if mode == "stacked":  # a stacked step trains every replicate's batch: img/s per model, replicates counted
        train["diffsteps"] *= replicates
    sample = best_rates({k: b[2] for k, b in built.items()}, sample_batch, device, **timing)
    return {k: {"parameters": built[k][0], "train_img_per_s": round(train[k], 1),
                "sample_img_nfe_per_s": round(sample[k], 1)} for k in kinds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["cpu", "gpu"], help="presets whose network sizes to time")
    ap.add_argument("--device", default="auto", help="auto (CUDA where there is one), cpu or cuda")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=None,
                    help="default: eager on CPU; eager, bf16 and compile on a GPU")
    ap.add_argument("--replicates", type=int, default=3, help="networks trained together in the stacked mode")
    ap.add_argument("--seconds", type=float, default=0.5, help="least length of one timed window")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--tiny", action="store_true", help="a few steps of every case: a check that it runs, not a figure")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--append", action="store_true",
                    help="keep the rows of --out for other sizes or modes (a slow size timed with fewer repeats)")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    modes = args.modes or (["eager", "bf16", "compile", "pipeline"] if device.type == "cuda" else ["eager", "pipeline"])
    timing = dict(warmup=1, seconds=0.0, repeats=1) if args.tiny else dict(
        warmup=args.warmup, seconds=args.seconds, repeats=args.repeats)
    rows = []
    for size in args.sizes:
        spec, train_batch, sample_batch = spec_of(size)
        if args.tiny:
            train_batch, sample_batch = 4, 4
        for mode in modes:
            row = {"size": size, "mode": mode, "train_batch": train_batch, "sample_batch": sample_batch,
                   "image": f"{spec.in_channels}x{spec.image_size}x{spec.image_size}"}
            if mode == "stacked":
                row["replicates"] = args.replicates
            row.update(measure(size, spec, mode, train_batch, sample_batch, device, replicates=args.replicates,
                               **timing))
            for key in ("train_img_per_s", "sample_img_nfe_per_s"):
                ours, theirs = row["diffsteps"][key], row["diffusers"][key]
                row[f"ratio_{key}"] = round(ours / theirs, 3) if theirs > 0 else math.nan
            rows.append(row)
            print(f"{size:4} {mode:8} train {row['diffsteps']['train_img_per_s']:>9} vs "
                  f"{row['diffusers']['train_img_per_s']:>9} img/s (x{row['ratio_train_img_per_s']})   sample "
                  f"{row['diffsteps']['sample_img_nfe_per_s']:>10} vs {row['diffusers']['sample_img_nfe_per_s']:>10} "
                  f"img·NFE/s (x{row['ratio_sample_img_nfe_per_s']})", flush=True)
    import diffusers

    out = {"device": device_name(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "diffusers": diffusers.__version__, "date": datetime.date.today().isoformat(),
           "git_commit": git_commit(), "tiny": args.tiny, "timing": timing, "rows": rows}
    if args.append and args.out.exists():
        mine = {(r["size"], r["mode"]) for r in rows}
        kept = [dict(r, timing=r.get("timing", old["timing"]), git_commit=r.get("git_commit", old["git_commit"]))
                for old in [json.loads(args.out.read_text())] if old["device"] == out["device"]
                for r in old["rows"] if (r["size"], r["mode"]) not in mine]
        out["rows"] = kept + [dict(r, timing=timing, git_commit=out["git_commit"]) for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
