rule sample:
    input:
        unpack(stage_inputs("sample")),
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
        **job_resources("sample"),
    shell:
        "{PY} sample " + CELL + " --threads {threads} --method {wildcards.method} --model-dir $(dirname {input.model})"
        " --sampler {wildcards.sampler} --spacing {wildcards.spacing} --budget {wildcards.budget}"
        " --train-seed {wildcards.ts} --seed {wildcards.seed} --out-dir {params.out_dir} > {log} 2>&1"
