rule prepare_data:
    input:
        unpack(stage_inputs("prepare_data")),
    output:
        **stage_outputs("prepare_data"),
    params:
        values=stage_params("prepare_data"),
        reads=stage_keys("prepare_data"),
        out_dir=out_dir,
    log:
        f"{LOGS}/prepare_data/{{dataset}}.log",
    priority: job_priority("prepare_data")
    resources:
        **job_resources("prepare_data"),
    shell:
        "{PY} prepare-data " + CELL + " --out-dir {params.out_dir} > {log} 2>&1"
