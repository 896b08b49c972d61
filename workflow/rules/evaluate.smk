rule evaluate:
    # every cell of one sampling job, with one load of each extractor and of the reference statistics
    input:
        unpack(stage_inputs("evaluate")),
    output:
        **stage_outputs("evaluate"),
    params:
        values=stage_params("evaluate"),
        reads=stage_keys("evaluate"),
        cells=cell_args("evaluate"),
    log:
        f"{LOGS}/evaluate/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}.tsv"
    threads: 1
    priority: job_priority("evaluate")
    resources:
        **job_resources("evaluate"),
    shell:
        "{PY} evaluate " + CELL + " --threads {threads} --train {input.train}" + SCORING_ARGS +
        " {params.cells} > {log} 2>&1"


rule solver_error:
    input:
        unpack(stage_inputs("solver_error")),
    output:
        **stage_outputs("solver_error"),
    params:
        values=stage_params("solver_error"),
        reads=stage_keys("solver_error"),
    log:
        f"{LOGS}/solver_error/{{dataset}}/{{method}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/solver_error/{{dataset}}/{{method}}/train{{ts}}.tsv"
    threads: 1
    priority: job_priority("solver_error")
    resources:
        **job_resources("solver_error"),
    shell:
        "{PY} solver-error " + CELL + " --threads {threads} --method {wildcards.method}"
        " --model-dir $(dirname {input.model}) --train-seed {wildcards.ts} --out {output.errors} > {log} 2>&1"


rule nll:
    # every bound of one trained run (K-step chains and T = ∞), for the runs of evaluation.nll.methods
    input:
        unpack(stage_inputs("nll")),
    output:
        **stage_outputs("nll"),
    params:
        values=stage_params("nll"),
        reads=stage_keys("nll"),
    log:
        f"{LOGS}/nll/{{dataset}}/{{method}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/nll/{{dataset}}/{{method}}/train{{ts}}.tsv"
    threads: 1
    priority: job_priority("nll")
    resources:
        **job_resources("nll"),
    shell:
        "{PY} nll " + CELL + " --threads {threads} --method {wildcards.method} --model-dir $(dirname {input.model})"
        " --data-dir results/data/{wildcards.dataset} --train-seed {wildcards.ts} --out {output.nll} > {log} 2>&1"


rule probe:
    # the domain-FID curve of a probed run's EMA snapshots (DDGAN), after its training
    input:
        unpack(stage_inputs("probe")),
    output:
        **stage_outputs("probe"),
    params:
        values=stage_params("probe"),
        reads=stage_keys("probe"),
        run=lambda wildcards: cells.run_of(wildcards.model),
    log:
        f"{LOGS}/probe/{{dataset}}/{{model}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/probe/{{dataset}}/{{model}}/train{{ts}}.tsv"
    threads: 1
    priority: job_priority("probe")
    resources:
        **job_resources("probe"),
    shell:
        "{PY} probe " + CELL + " --threads {threads} --method {params.run} --model-dir $(dirname {input.model})"
        " --train-seed {wildcards.ts} --stats {input.stats} --weights {input.weights} --domain-meta {input.domain_meta}"
        " --data-meta {input.data_meta} --out {output.probe} > {log} 2>&1"


rule floor:
    input:
        unpack(stage_inputs("floor")),
    output:
        **stage_outputs("floor"),
    params:
        values=stage_params("floor"),
        reads=stage_keys("floor"),
    log:
        f"{LOGS}/floor/{{dataset}}.log",
    priority: job_priority("floor")
    resources:
        **job_resources("floor"),
    shell:
        "{PY} floor " + CELL + " --threads {threads} --heldout {input.heldout}" + SCORING_ARGS +
        " --out {output.metrics} > {log} 2>&1"
