rule sample:
    # every budget, training seed and sampling seed of one run's sampler and spacing, in one process (cells.LAYOUT)
    input:
        unpack(stage_inputs("sample")),
    output:
        **stage_outputs("sample"),
    params:
        values=stage_params("sample"),
        reads=stage_keys("sample"),
        cells=cell_args("sample"),
    log:
        f"{LOGS}/sample/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}.log",
    benchmark:
        f"{BENCH}/sample/{{dataset}}/{{method}}/{{sampler}}-{{spacing}}.tsv"
    threads: 1
    priority: job_priority("sample")
    resources:
        **job_resources("sample"),
    shell:
        "{PY} sample " + CELL + " --threads {threads} --method {wildcards.method}"
        " --sampler {wildcards.sampler} --spacing {wildcards.spacing} {params.cells} > {log} 2>&1"
