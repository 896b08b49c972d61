REPORT_OUTPUTS = stage_outputs("report")  # results.csv, report.md, report.html, metrics.json (cells.LAYOUT)


rule report:
    input:
        unpack(get_report_inputs),
        code=plan.STAGE["report"].code(config),
    output:
        # the tidy table is also an item of Snakemake's own report
        csv=report(REPORT_OUTPUTS.pop("csv"), category="Results", caption="../report/results.rst"),
        **REPORT_OUTPUTS,
    params:
        values=stage_params("report"),
        reads=stage_keys("report"),
    log:
        f"{LOGS}/report.log",
    priority: job_priority("report")
    resources:
        **job_resources("report"),
    shell:
        "{PY} report " + CELL + " --out-dir reports > {log} 2>&1"


onsuccess:
    # Keep DVC's lock in step with what Snakemake just built: the outputs of the jobs this run ran (skipped when DVC
    # itself runs Snakemake: DVC holds its lock then and records the stage itself).
    dvc_sync({str(f) for job in workflow.dag.needrun_jobs(exclude_finished=False) for f in job.output})
