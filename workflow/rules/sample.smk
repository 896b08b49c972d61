rule sample:
    wildcard_constraints:
        method=ONCE_RUNS,
    input:
        **stage_inputs("sample"),
    output:
        **stage_outputs("sample"),
    params:
        values=stage_params("sample"),
        reads=stage_keys("sample"),
        out_dir=out_dir,
    log:
        f"{LOGS}/sample/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}/K{{budget}}/train{{ts}}-seed{{seed}}.log",
    benchmark:
        f"{BENCH}/sample/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}/K{{budget}}/train{{ts}}-seed{{seed}}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{PY} sample " + CELL + " --threads {threads} --method {wildcards.method}"
        " --model-dir results/models/{wildcards.dataset}/{wildcards.method}/train{wildcards.ts}"
        " --sampler {wildcards.sampler} --spacing {wildcards.spacing} --budget {wildcards.budget}"
        " --train-seed {wildcards.ts} --seed {wildcards.seed} --out-dir {params.out_dir} > {log} 2>&1"


rule sample_fixed_T:
    wildcard_constraints:
        method=FIXED_T_RUNS,
    input:
        **stage_inputs("sample_fixed_T"),
    output:
        **stage_outputs("sample_fixed_T"),
    params:
        values=stage_params("sample_fixed_T"),
        reads=stage_keys("sample_fixed_T"),
        out_dir=out_dir,
    log:
        f"{LOGS}/sample/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}/K{{budget}}/train{{ts}}-seed{{seed}}.log",
    benchmark:
        f"{BENCH}/sample/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}/K{{budget}}/train{{ts}}-seed{{seed}}.tsv"
    threads: 1
    resources:
        gpu=1,
    shell:
        "{PY} sample " + CELL + " --threads {threads} --method {wildcards.method}"
        " --model-dir results/models/{wildcards.dataset}/{wildcards.method}/T{wildcards.budget}/train{wildcards.ts}"
        " --sampler {wildcards.sampler} --spacing {wildcards.spacing} --budget {wildcards.budget}"
        " --train-seed {wildcards.ts} --seed {wildcards.seed} --out-dir {params.out_dir} > {log} 2>&1"
