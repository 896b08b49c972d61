rule train:
    input:
        **stage_inputs("train"),
    output:
        **stage_outputs("train"),
    params:
        values=stage_params("train"),
        out_dir=out_dir,
    log:
        f"{LOGS}/train/{{dataset}}/{{method}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{method}}/train{{ts}}.tsv"
    threads: TRAIN_THREADS
    resources:
        gpu=1,
    shell:
        "{PY} train --params params.yaml --threads {threads} --method {wildcards.method}"
        " --train-seed {wildcards.ts} --data-dir results/data/{wildcards.dataset} --out-dir {params.out_dir}"
        " --no-progress > {log} 2>&1"
