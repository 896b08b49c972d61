# diffsteps: how many denoising steps does each kind of diffusion model need?
# The DAG lives in src/diffsteps/workflow.py (shared with dvc.yaml); the rules below only call the CLI.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
