"""What each job takes of a machine: of a GPU, a slot and a memory figure (so that several jobs share one GPU);
of the host, its memory and wall time (what a batch system such as SLURM is told: README "Cluster").

Small networks leave an H100 mostly idle, so the workflow runs GPU jobs side by side. Every GPU job declares
``gpu=1`` (a slot) and ``gpu_mem_mb`` (the GPU memory it may hold, MiB); the machine's totals are given once,
``snakemake --cores all --resources gpu=S gpu_mem_mb=M``, and Snakemake starts a job only while both sums
stay within them. :func:`suggested_totals` says what to give for a GPU (``python -m diffsteps resources``).

A job's figures are derived from the study's sizes (``params.yaml``), never typed per rule. Each stage declares
what its jobs need as a field of the stage table (``workflow.STAGES``: a :class:`Needs` of the functions below);
this module holds the model those functions share, and turns a :class:`Needs` into Snakemake's resources:

    gpu_mem_mb = context + slack · (weights + batch · per-image activation memory)

- ``context``: one CUDA context, :data:`CUDA_CONTEXT_MIB`;
- ``slack``: PyTorch's caching allocator holds freed blocks for reuse, so a process holds more than its
  peak of live tensors (:data:`ALLOCATOR_SLACK`);
- per image: the UNet's activations scale with its *activation units*, Σ over levels of the level's width ×
  its side² (:func:`unet_units`); a forward pass under ``no_grad`` (sampling, the bound, the solver error) keeps
  :data:`UNET_FORWARD_BYTES_PER_UNIT` bytes a unit and image at its peak, a training step
  :data:`UNET_TRAIN_BYTES_PER_UNIT` (bf16 autocast: what backward saves); Inception works at 299² whatever the
  data, :data:`INCEPTION_MIB_PER_IMAGE`; the domain classifier is small, :data:`DOMAIN_BYTES_PER_PIXEL`
  (forward) and four times that to train;
- the batch is what the stage's command runs at once: ``min(batch_size, images it has)``.

The per-image constants are the peaks of live tensors (``torch.cuda.max_memory_allocated``, the records'
``gpu_peak_memory_mb``) measured by ``benchmarks/gpu_check.py`` on one H200 with torch 2.11 at the gpu preset
(``benchmarks/results/gpu_check.json``); ``tests/test_resources.py`` checks that every figure covers the peak
measured there. Stages that never touch the GPU declare none, and no stage does when ``train.device`` is ``cpu``.

Host memory and wall time (``mem_mb``, ``runtime`` in minutes) come from the same sizes:

    mem_mb  = slack · (base + data set + tensors, when they live on the CPU)
    runtime = max(floor, safety · (start-up + work / rate))

where the work is the job's forward FLOPs (the UNet's, :func:`unet_flops`: a training image costs three forwards)
or its Inception images, at rates measured on the CPU per thread and on one H200 (:data:`CPU_FLOPS_PER_THREAD`,
:data:`GPU_FLOPS`, :data:`INCEPTION_IMG_PER_S`). ``tests/test_resources.py`` checks both against what the smoke
study's jobs used (Snakemake's benchmark files) and what the GPU check's slice measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .config import StudyConfig, lookup, to_plain
from .data.shapes import image_count, image_shape
from .sampler_registry import SamplerSpec

#: one CUDA context (torch 2.11, CUDA 13, H200): measured with nvidia-smi around a fresh process
CUDA_CONTEXT_MIB = 617
#: the caching allocator's reserve over the peak of live tensors: 8 evaluate jobs with 6.7 GiB of live tensors
#: each held up to 127 GiB of the H200 together (gpu_check.json: slice)
ALLOCATOR_SLACK = 2.0
#: bytes per activation unit and image, at the peak of a no-grad forward (sample 3.36, nll 3.49, solver error
#: 3.55 MiB an image at 106,496 units: the largest, rounded up)
UNET_FORWARD_BYTES_PER_UNIT = 35.0
#: the same for a training step under bf16 autocast: 2530 MiB at batch 128, less the weights, gradients, Adam's
#: moments and the EMA (20 bytes a parameter): 18.8 MiB an image
UNET_TRAIN_BYTES_PER_UNIT = 186.0
#: Inception (299² input, float32): 13,292 MiB at batch 1000 (reference statistics), 6,721 at 500 (a cell)
INCEPTION_MIB_PER_IMAGE = 13.4
INCEPTION_WEIGHTS_MIB = 91
#: the domain classifier's forward, per input pixel and image: 291 MiB at batch 1000 of 32×32 (reference statistics)
DOMAIN_BYTES_PER_PIXEL = 300.0
MIB = 2**20

def networks(cfg: StudyConfig) -> int:
    """The most UNet-sized networks one training step of the study holds (a DDGAN step: generator and
    discriminator, their activations and moments)."""
    return max(type(cfg.method_config[run]).networks for run in cfg.methods)


def own_budgets(cfg: StudyConfig) -> list[int]:
    """The step counts of the runs whose family samples its own grid of budgets (DDGAN's T), from their grids."""
    plain = to_plain(cfg)
    keys = [(run, type(cfg.method_config[run]).grid.cells.get("budget", "")) for run in cfg.methods]
    return [b for run, key in keys if key.startswith("method_config.") for b in lookup(plain, key.format(run=run))]


def training_seeds(cfg: StudyConfig) -> int:
    """The most training runs of one run (:meth:`~.config.TrainConfig.seeds_of`): a sampling or scoring job holds the
    cells of all of them."""
    return max(len(cfg.train.seeds_of(run)) for run in cfg.methods)


def probe_points(cfg: StudyConfig) -> int:
    """The most weights a probe job scores (its snapshots and the final weights)."""
    return max((cfg.method_config[run].probe_points(cfg.train.steps) for run in cfg.methods
                if type(cfg.method_config[run]).probed), default=1)


def unet_units(cfg: StudyConfig) -> int:
    """Σ_level width_level · side_level² of the study's UNet on its data (a level halves the side)."""
    _, side = image_shape(cfg.data)
    return sum(cfg.model.channels * mult * (side // 2**level) ** 2 for level, mult in enumerate(cfg.model.channel_mult))


def _level_weights(cfg: StudyConfig) -> list[int]:
    """The 3×3 weights of each level of the UNet: two convolutions per residual block, 2·blocks + 1 blocks a level,
    each at most 2·width in and width out."""
    return [9 * 2 * (cfg.model.channels * m) ** 2 * 2 * (2 * cfg.model.num_res_blocks + 1)
            for m in cfg.model.channel_mult]


def unet_parameters(cfg: StudyConfig) -> int:
    """An upper bound on the UNet's parameters from its widths: 3×3 convolutions dominate (the levels', and three
    blocks in the middle at the last width)."""
    return sum(_level_weights(cfg)) + 9 * 2 * (cfg.model.channels * cfg.model.channel_mult[-1]) ** 2 * 3


def _unet_forward_mib(cfg: StudyConfig, batch: int) -> float:
    return 4 * unet_parameters(cfg) / MIB + batch * unet_units(cfg) * UNET_FORWARD_BYTES_PER_UNIT / MIB


def _domain_forward_mib(cfg: StudyConfig, batch: int) -> float:
    channels, side = image_shape(cfg.data)
    return batch * channels * side * side * DOMAIN_BYTES_PER_PIXEL / MIB


def _inception_mib(batch: int) -> float:
    return INCEPTION_WEIGHTS_MIB + batch * INCEPTION_MIB_PER_IMAGE


@dataclass(frozen=True)
class Rates:
    """Seconds of one unit of work where a job runs (its threads on the CPU, or one GPU)."""

    forward: float  #: a UNet forward on one image
    inception: float  #: one Inception image (299² with the resize)
    domain: float  #: one domain-classifier training image
    gpu: bool


def one_thread(cfg: StudyConfig) -> int:
    return 1


@dataclass(frozen=True)
class Needs:
    """What one job of a stage takes of a machine, as functions of the study (a field of the stage table).

    ``tensors``: the peak of live tensors of one job (MiB); a stage that has it runs on the GPU when the study has
    one (``train.device`` not ``cpu``), and one without it never touches a GPU. ``work``: seconds of compute of the
    stage's largest job at the given :class:`Rates`. ``threads``: the threads the job declares (many one-thread
    jobs run side by side). A stage that declares none of them takes the host memory of its data and the floor
    of wall time; Snakemake's attempt-scaled retries cover a figure that falls short (:func:`scaled`).
    """

    tensors: Callable[[StudyConfig], float] | None = None
    work: Callable[[StudyConfig, Rates], float] | None = None
    threads: Callable[[StudyConfig], int] = one_thread
    #: seconds of compute of one job from its cells (their wildcards), for a stage whose jobs differ in size (a
    #: 1000-step reference chain beside a grid of few steps); without it every job counts as the largest (``work``)
    job_work: Callable[[StudyConfig, Rates, list[dict[str, Any]]], float] | None = None

    def seconds(self, cfg: StudyConfig, job_cells: list[dict[str, Any]]) -> float:
        """Seconds of compute of the job of these cells where it runs (:func:`rates` on its threads)."""
        r = rates(cfg, self, self.threads(cfg))
        if self.job_work is not None:
            return self.job_work(cfg, r, job_cells)
        return self.work(cfg, r) if self.work is not None else 0.0

    @property
    def gpu(self) -> bool:
        return self.tensors is not None


# the peak of live tensors of one job of each GPU stage (MiB)

def train_tensors(cfg: StudyConfig) -> float:
    step = 20 * unet_parameters(cfg) / MIB + cfg.train.batch_size * unet_units(cfg) * UNET_TRAIN_BYTES_PER_UNIT / MIB
    return step * networks(cfg)


def probe_tensors(cfg: StudyConfig) -> float:
    """A generator's forward at the sampling batch, then the domain features of its samples."""
    return max(_unet_forward_mib(cfg, cfg.sampling.batch_size), _domain_forward_mib(cfg, cfg.evaluation.batch_size))


def sample_tensors(cfg: StudyConfig) -> float:
    return _unet_forward_mib(cfg, min(cfg.sampling.batch_size, cfg.sampling.n_samples))


def nll_tensors(cfg: StudyConfig) -> float:
    nll = cfg.evaluation.nll
    return _unet_forward_mib(cfg, min(nll.batch_size, nll.n_images))


def solver_error_tensors(cfg: StudyConfig) -> float:
    se = cfg.evaluation.solver_error
    return _unet_forward_mib(cfg, min(se.batch_size, se.n))


def scoring_tensors(cfg: StudyConfig) -> float:
    """A scoring job (evaluate; the floor declares the same: it scores stored held-out features, its peak is its
    metrics', 193 MiB on the gpu preset, but it is one job)."""
    s, ev = cfg.sampling, cfg.evaluation
    scored = min(ev.batch_size, ev.inception.n or s.n_samples)
    inception = _inception_mib(scored) if ev.inception.weights is not None else 0.0
    return max(inception, _domain_forward_mib(cfg, min(ev.batch_size, s.n_samples)))


def inception_stats_tensors(cfg: StudyConfig) -> float:
    ev = cfg.evaluation
    return _inception_mib(ev.batch_size) if ev.inception.weights is not None else 0.0


def domain_stats_tensors(cfg: StudyConfig) -> float:
    return _domain_forward_mib(cfg, cfg.evaluation.batch_size)


def train_domain_tensors(cfg: StudyConfig) -> float:
    return 4 * _domain_forward_mib(cfg, cfg.evaluation.domain.batch_size)


def tensor_mib(cfg: StudyConfig, needs: Needs) -> float:
    """The peak of live tensors of one job (MiB), from the study's sizes; 0 for a CPU-only stage."""
    return needs.tensors(cfg) if needs.gpu else 0.0


def gpu_mem_mb(cfg: StudyConfig, needs: Needs) -> int:
    """What one job declares of the GPU's memory (MiB): a context plus the allocator's slack on its peak of live
    tensors; 0 for a stage that never touches the GPU."""
    if not needs.gpu:
        return 0
    return math.ceil(CUDA_CONTEXT_MIB + ALLOCATOR_SLACK * tensor_mib(cfg, needs))


def on_gpu(cfg: StudyConfig, needs: Needs) -> bool:
    """Whether the job takes a GPU: a GPU stage of a study whose device is not ``cpu`` (``auto`` takes one where
    there is one)."""
    return needs.gpu and cfg.train.device != "cpu"


def gpu_resources(cfg: StudyConfig, needs: Needs) -> dict[str, int]:
    """A GPU slot and its memory figure for the job, or nothing when it runs on the CPU."""
    return {"gpu": 1, "gpu_mem_mb": gpu_mem_mb(cfg, needs)} if on_gpu(cfg, needs) else {}


#: host memory of a job before its data and tensors: Python, torch, the package and the CPU allocator's reserve
#: (the smoke study's jobs peak at 0.9 GB, evaluate's with the Inception weights); a CUDA process maps its
#: libraries and pinned buffers too (a sample job peaked at 8.6 GiB on the H200, gpu_check.json: slice)
HOST_BASE_MIB = {"cpu": 1024, "gpu": 9216}
HOST_SLACK = 1.5
#: forward FLOP/s of the UNet on one CPU thread: the gpu preset's size trains at 11.7 img/s on 2 threads of the
#: 2-core x86 machine (throughput.json), 3 forwards of 3.4 GFLOP (unet_flops) an image
CPU_FLOPS_PER_THREAD = 6.0e10
#: the seconds of a UNet forward on one image and CPU thread beyond its FLOPs, which small images make up most of
#: (many small kernels): the cpu preset's size samples at 5718 img·NFE/s on 2 threads (throughput.json), 1.18e-4 s
#: of FLOPs an image and thread, 3.50e-4 s in all
CPU_SECONDS_PER_IMAGE = 2.3e-4
#: the same on one H200 in eager float32: 4391 img/s (gpu_check.json: throughput)
GPU_FLOPS = 4.5e13
#: Inception images a second (299² with the resize): a CPU thread (README "Standard Inception FID"), one H200
INCEPTION_IMG_PER_S = {"cpu": 3.0, "gpu": 1979.0}
#: the domain classifier's training images a second per CPU thread (small: 15 epochs of digits in about 20 s)
DOMAIN_IMG_PER_S = 1000.0
#: a job's start-up and CPU-side work beyond its FLOPs (metrics, files), seconds
JOB_OVERHEAD_S = 60.0
RUNTIME_SAFETY = 4.0
RUNTIME_FLOOR_MIN = 10


def unet_flops(cfg: StudyConfig) -> float:
    """Forward FLOPs of the study's UNet on one image: 2 × Σ_level (the level's 3×3 weights) × side_level²."""
    _, side = image_shape(cfg.data)
    return 2.0 * sum(w * (side // 2**level) ** 2 for level, w in enumerate(_level_weights(cfg)))


def data_mib(cfg: StudyConfig) -> float:
    """The data set as float32 in host memory (what train, the domain classifier and the scores load)."""
    channels, side = image_shape(cfg.data)
    return image_count(cfg.data) * channels * side * side * 4 / MIB


def mem_mb(cfg: StudyConfig, needs: Needs) -> int:
    """Host memory (MB) that one job asks for, rounded up to 256."""
    gpu = on_gpu(cfg, needs)
    tensors = 0.0 if gpu else tensor_mib(cfg, needs)  # on the CPU the tensors live in host memory
    need = HOST_SLACK * (HOST_BASE_MIB["gpu" if gpu else "cpu"] + data_mib(cfg) + tensors)
    return 256 * math.ceil(need / 256)


def rates(cfg: StudyConfig, needs: Needs, threads: int) -> Rates:
    """The :class:`Rates` of a job on ``threads`` CPU threads, or on one GPU where it takes one."""
    if on_gpu(cfg, needs):
        return Rates(unet_flops(cfg) / GPU_FLOPS, 1.0 / INCEPTION_IMG_PER_S["gpu"], 1.0 / DOMAIN_IMG_PER_S, True)
    return Rates((unet_flops(cfg) / CPU_FLOPS_PER_THREAD + CPU_SECONDS_PER_IMAGE) / threads,
                 1.0 / (INCEPTION_IMG_PER_S["cpu"] * threads),
                 1.0 / (DOMAIN_IMG_PER_S * threads), False)


# the seconds of compute of each stage's largest job

def train_work(cfg: StudyConfig, r: Rates) -> float:
    return 3 * cfg.train.images * r.forward * networks(cfg)  # a training image costs three forwards


def sample_work(cfg: StudyConfig, r: Rates) -> float:
    """A job samples every budget, training seed and sampling seed of one sampler and spacing: the most evaluations
    of any job, a reference job's, the grid's (Heun: 2K − 1 a chain) or a run's own T's."""
    s = cfg.sampling
    ref = s.reference.budget * len(s.reference.seeds) if s.reference.methods else 0
    nfe = max(ref, 2 * sum(s.budgets) * len(s.seeds), sum(own_budgets(cfg)) * len(s.seeds))
    return s.n_samples * nfe * training_seeds(cfg) * r.forward


def probe_work(cfg: StudyConfig, r: Rates) -> float:
    return probe_points(cfg) * cfg.evaluation.probe.n * max(own_budgets(cfg), default=1) * r.forward


def nll_work(cfg: StudyConfig, r: Rates) -> float:
    """Each K-step chain of ``evaluation.nll`` (K evaluations): one per variance, spacing and budget, except the
    K = T chain, one per variance whatever the spacing; and a continuous run's T = ∞ bound (one a draw). Every
    term over ``draws`` draws."""
    nll, T = cfg.evaluation.nll, cfg.noise.T
    spaced = sum(K for K in nll.budgets if K != T) * len(cfg.sampling.spacings) + (T if T in nll.budgets else 0)
    return nll.n_images * nll.draws * (len(nll.variances) * spaced + 1) * r.forward


def solver_error_work(cfg: StudyConfig, r: Rates) -> float:
    """Every sampler's cells (Heun: two evaluations a step), then the RK4 reference: its steps doubling up to max_K
    sum to < 2·max_K steps of four evaluations each."""
    s, se = cfg.sampling, cfg.evaluation.solver_error
    return se.n * (len(s.samplers) * len(s.spacings) * 2 * sum(s.budgets) + 8 * se.max_K) * r.forward


def _inception_images(cfg: StudyConfig, images: int, r: Rates) -> float:
    return images * r.inception if cfg.evaluation.inception.weights is not None else 0.0


def train_job_work(cfg: StudyConfig, r: Rates, job_cells: list[dict[str, Any]]) -> float:
    """A training job: its run's networks (DDGAN trains two) over the training images."""
    return sum(3 * cfg.train.images * r.forward * type(cfg.method_config[c["method"]]).networks for c in job_cells)


def _nfe(cell: dict[str, Any]) -> int:
    return SamplerSpec.parse(cell["sampler"]).nfe(int(cell["budget"]))


def sample_job_work(cfg: StudyConfig, r: Rates, job_cells: list[dict[str, Any]]) -> float:
    """A sampling job: n_samples chains of NFE(K) evaluations a cell."""
    return cfg.sampling.n_samples * sum(_nfe(c) for c in job_cells) * r.forward


def evaluate_job_work(cfg: StudyConfig, r: Rates, job_cells: list[dict[str, Any]]) -> float:
    """A scoring job: the Inception images of its cells that get Inception rows."""
    inception = cfg.evaluation.inception
    scored = sum(inception.scores(c["sampler"], _nfe(c)) for c in job_cells)
    return _inception_images(cfg, (inception.n or cfg.sampling.n_samples) * scored, r)


def evaluate_work(cfg: StudyConfig, r: Rates) -> float:
    """A job's cells' samples through Inception."""
    s = cfg.sampling
    cells = max(len(s.budgets), len(own_budgets(cfg))) * len(s.seeds) * training_seeds(cfg)
    return _inception_images(cfg, (cfg.evaluation.inception.n or s.n_samples) * cells, r)


def floor_work(cfg: StudyConfig, r: Rates) -> float:
    """The held-out split (at most the data set) through Inception."""
    return _inception_images(cfg, cfg.evaluation.inception.n or image_count(cfg.data), r)


def inception_stats_work(cfg: StudyConfig, r: Rates) -> float:
    return _inception_images(cfg, cfg.evaluation.inception.n_ref or image_count(cfg.data), r)


def domain_stats_work(cfg: StudyConfig, r: Rates) -> float:
    return image_count(cfg.data) * r.domain


def train_domain_work(cfg: StudyConfig, r: Rates) -> float:
    return cfg.evaluation.domain.epochs * image_count(cfg.data) * r.domain


def runtime_min(cfg: StudyConfig, needs: Needs, threads: int = 1) -> int:
    """Wall time (minutes) that one job on ``threads`` threads asks for: the safety factor over its start-up and
    work, at least :data:`RUNTIME_FLOOR_MIN`."""
    work = needs.work(cfg, rates(cfg, needs, threads)) if needs.work is not None else 0.0
    seconds = RUNTIME_SAFETY * (JOB_OVERHEAD_S + work)
    return max(RUNTIME_FLOOR_MIN, math.ceil(seconds / 60))


#: the domain classifier's training takes a whole machine (Snakemake lowers it to --cores; SLURM gives the job as
#: many CPUs)
HEAVY_THREADS = 16


def heavy_threads(cfg: StudyConfig) -> int:
    return HEAVY_THREADS


def train_threads(cfg: StudyConfig) -> int:
    return cfg.train.threads


def job_resources(cfg: StudyConfig, needs: Needs, attempt: int = 1) -> dict[str, int]:
    """The Snakemake resources of one job (on its ``needs.threads``): host memory and wall time, and a GPU slot with
    its memory figure when it runs on the GPU; the figures of a retry's ``attempt`` (:func:`scaled`)."""
    need = {"mem_mb": mem_mb(cfg, needs), "runtime": runtime_min(cfg, needs, needs.threads(cfg)),
            **gpu_resources(cfg, needs)}
    return _at_attempt(need, attempt)


def _at_attempt(need: dict[str, int], attempt: int) -> dict[str, int]:
    return {k: v if k == "gpu" else v * attempt for k, v in need.items()}


def scaled(cfg: StudyConfig, needs: Needs) -> dict[str, object]:
    """:func:`job_resources` as Snakemake's callables of the attempt: a job that ran out of memory or time is
    retried (the profiles' ``retries``) with twice, then three times, its figures; the GPU slot stays one."""
    need = job_resources(cfg, needs)  # the first attempt's figures, computed once; a retry scales them
    return {k: (lambda wildcards, attempt, k=k: _at_attempt(need, attempt)[k]) for k in need}


def suggested_totals(gpu_memory_mib: float, cores: int) -> dict[str, int]:
    """``--resources`` for one GPU: a slot per two cores (a job's client, its CPU-side metrics and Snakemake's own
    process share the cores; 8 on the H200's 16 cores kept the GPU 42% busy on the gpu preset's slice) and the
    GPU's memory less 2 GiB (the driver's and other processes' share)."""
    return {"gpu": max(1, cores // 2), "gpu_mem_mb": max(1, int(gpu_memory_mib) - 2048)}


def concurrent_jobs(cfg: StudyConfig, needs: Needs, totals: dict[str, int]) -> int:
    """How many jobs of a stage Snakemake runs at once under ``totals`` (when nothing else runs): what the
    slots allow and what the memory allows, whichever is fewer."""
    need = gpu_resources(cfg, needs)
    if not need:
        return totals.get("gpu", 1)  # a CPU-only stage takes no slot
    return min(totals["gpu"] // need["gpu"], totals["gpu_mem_mb"] // need["gpu_mem_mb"])
