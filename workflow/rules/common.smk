# Validation and path helpers. params.yaml is the single source of values: it is validated against
# workflow/schemas/params.schema.yaml, then against the cross-field rules of diffsteps.config, before
# any job runs. The study DAG (paths, inputs, code dependencies, params slices) comes from
# diffsteps.workflow, which also generates dvc.yaml.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

from diffsteps import workflow as plan
from diffsteps.config import validate_mapping

min_version("8.0")


configfile: "params.yaml"


# diffsteps.config validates against the same schema file (workflow/schemas/params.schema.yaml) and then
# the cross-field rules, with errors that name the key, the value and what is allowed; Snakemake's own
# validator then runs on the already-valid values.
STUDY = validate_mapping(config)
validate(config, "../schemas/params.schema.yaml")

# Outputs that DVC restored (checkout or run-cache) carry Snakemake metadata of the run that made
# the old file; forget it so that the restored, up-to-date files are judged by mtime alone.
plan.forget_foreign_outputs(plan.every_output(config))


wildcard_constraints:
    **plan.WILDCARD_CONSTRAINTS,


PY = f"{sys.executable} -m diffsteps"  # the interpreter that runs Snakemake (the venv's)
LOGS = "logs"
HEAVY_THREADS = 16  # training jobs take the whole machine; Snakemake lowers this to --cores
BENCH = "results/benchmarks"


def code_files(stage):
    """The package modules a stage depends on, as files (a folder's mtime misses edits inside it)."""
    files = []
    for entry in plan.STAGE[stage].modules:
        p = Path(entry)
        files.extend(sorted(str(f) for f in p.rglob("*") if f.suffix in (".py", ".yaml")) if p.is_dir() else [entry])
    return files


def stage_inputs(stage):
    return {**plan.STAGE[stage].inputs, "code": code_files(stage)}


def stage_outputs(stage):
    return dict(plan.STAGE[stage].outputs)


def stage_params(stage):
    return plan.params_slice(config, stage)


def out_dir(wildcards, output):
    return str(Path(output[0]).parent)


def get_report_inputs(wildcards):
    return plan.report_inputs(config)


def get_final_outputs():
    return plan.all_outputs(config, "report")
