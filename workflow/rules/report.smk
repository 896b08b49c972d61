rule report:
    input:
        unpack(get_report_inputs),
        code=list(plan.STAGE["report"].modules),
    output:
        csv=report("reports/results.csv", category="Results", caption="../report/results.rst"),
        md="reports/report.md",
        html="reports/report.html",
        metrics="reports/metrics.json",
    params:
        values=stage_params("report"),
        reads=stage_keys("report"),
    log:
        f"{LOGS}/report.log",
    resources:
        **job_resources("report"),
    shell:
        "{PY} report " + CELL + " --out-dir reports > {log} 2>&1"


onsuccess:
    # Keep DVC's lock in step with what Snakemake just built (skipped when DVC itself runs Snakemake:
    # DVC holds its lock then and records the stage itself).
    plan.dvc_sync({str(f) for job in workflow.dag.jobs for f in job.output})
