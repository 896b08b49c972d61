rule train_domain:
    input:
        **stage_inputs("train_domain"),
    output:
        **stage_outputs("train_domain"),
    params:
        values=stage_params("train_domain"),
        out_dir=out_dir,
    log:
        f"{LOGS}/train_domain/{{dataset}}.log",
    benchmark:
        f"{BENCH}/train_domain/{{dataset}}.tsv"
    threads: HEAVY_THREADS
    resources:
        gpu=1,
    shell:
        "{PY} train-domain --params params.yaml --threads {threads} --data-dir results/data/{wildcards.dataset}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule reference_stats:
    input:
        **stage_inputs("reference_stats"),
    output:
        **stage_outputs("reference_stats"),
    params:
        values=stage_params("reference_stats"),
    log:
        f"{LOGS}/reference_stats/{{dataset}}.log",
    benchmark:
        f"{BENCH}/reference_stats/{{dataset}}.tsv"
    resources:
        gpu=1,
    shell:
        "{PY} reference-stats --params params.yaml --threads {threads} --data-dir results/data/{wildcards.dataset}"
        " --weights {input.weights} --data-meta {input.data_meta} --domain-meta {input.domain_meta}"
        " --out {output.stats} --inception-out {output.inception} > {log} 2>&1"
