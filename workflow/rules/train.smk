rule train:
    # one model per run and training seed, and per T of a family with a model per T ({model} = <run>/T<T>)
    input:
        unpack(stage_inputs("train")),
    output:
        **stage_outputs("train"),
    params:
        values=stage_params("train"),
        reads=stage_keys("train"),
        args=model_args,
        out_dir=out_dir,
    log:
        f"{LOGS}/train/{{dataset}}/{{model}}/train{{ts}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{model}}/train{{ts}}.tsv"
    threads: TRAIN_THREADS
    priority: job_priority("train")
    resources:
        **job_resources("train"),
    shell:
        "{PY} train " + CELL + " --threads {threads} {params.args} --train-seed {wildcards.ts}"
        " --data-dir results/data/{wildcards.dataset} --out-dir {params.out_dir} --no-progress > {log} 2>&1"
