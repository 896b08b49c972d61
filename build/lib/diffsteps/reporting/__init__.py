"""Reporting: the tidy results table, figures, claims and the Markdown/HTML report.

- :mod:`.schema` — the result row (:func:`~.schema.make_row`), the single source of the columns;
- :mod:`.aggregate` — stage JSON records → one sorted DataFrame → ``reports/results.csv``;
- :mod:`.plots` — FID/KID/NLL vs NFE, quality vs cost with its Pareto front, training curves;
- :mod:`.claims` — the verdict rule and the declarative table of published claims;
- :mod:`.report` — ``reports/report.md`` and the self-contained ``reports/report.html``.

Nothing is imported here: metric stages import :mod:`.schema` without loading matplotlib.
"""
