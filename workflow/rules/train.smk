rule train:
    wildcard_constraints:
        method=ONCE_RUNS,
    input:
        **stage_inputs("train"),
    output:
        **stage_outputs("train"),
    params:
        values=stage_params("train"),
        reads=stage_keys("train"),
        out_dir=out_dir,
    log:
        f"{LOGS}/train/{{dataset}}/{{method}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{method}}/train{{ts}}.tsv"
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    shell:
        "{PY} train " + CELL + " --threads {threads} --method {wildcards.method}"
        " --train-seed {wildcards.ts} --data-dir results/data/{wildcards.dataset} --out-dir {params.out_dir}"
        " --no-progress > {log} 2>&1"


rule train_fixed_T:
    wildcard_constraints:
        method=FIXED_T_RUNS,
    input:
        **stage_inputs("train_fixed_T"),
    output:
        **stage_outputs("train_fixed_T"),
    params:
        values=stage_params("train_fixed_T"),
        reads=stage_keys("train_fixed_T"),
        out_dir=out_dir,
    log:
        f"{LOGS}/train/{{dataset}}/{{method}}/T{{budget}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{method}}/T{{budget}}/train{{ts}}.tsv"
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    shell:
        "{PY} train " + CELL + " --threads {threads} --method {wildcards.method} --T {wildcards.budget}"
        " --train-seed {wildcards.ts} --data-dir results/data/{wildcards.dataset} --out-dir {params.out_dir}"
        " --stats {input.stats} --weights {input.weights} --domain-meta {input.domain_meta}"
        " --no-progress > {log} 2>&1"
