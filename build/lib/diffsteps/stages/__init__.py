"""Pipeline stages: one module per CLI command, the only code that Snakemake rules and DVC stages run."""
