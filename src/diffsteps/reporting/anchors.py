"""Published numbers (STUDY.md, "Published anchors"), shown in the report for context only.

They are CIFAR-10 (or CelebA-64) Inception FIDs on 50k samples from much larger networks and
budgets; a number of this study is never comparable to them, and the report says so beside them.
"""

from __future__ import annotations

from .render import Block, Bullets, Paragraph, Table

ANCHOR_WARNING = ("Published numbers, for context only: CIFAR-10 unless noted, Inception FID on 50k samples, "
                  "large networks and budgets. They are NOT comparable to this run's numbers.")

_NFE = ("NFE", "10", "20", "50", "100", "1000")

ANCHOR_TABLES: tuple[Table, ...] = (
    Table(_NFE, (("DDIM η = 0", "13.36", "6.84", "4.67", "4.16", "4.04"),
                 ("DDIM η = 1", "41.07", "18.36", "8.01", "5.78", "4.73")),
          "DDIM (arXiv 2010.02502) Table 1, CIFAR-10 FID (published)"),
    Table(_NFE, (("Gamma-DDIM", "11.64", "6.83", "4.28", "3.17", "2.92"),),
          "DDGM (arXiv 2110.05948), CelebA-64 FID (published)"),
    # the higher-order solvers that define the few-step regime this study's samplers are compared in
    Table(("solver", "NFE", "FID", "comparable"),
          (("DPM-Solver (arXiv 2206.00927)", "10", "4.70", "no"), ("DPM-Solver (arXiv 2206.00927)", "20", "2.87", "no"),
           ("UniPC (arXiv 2302.04867)", "10", "3.87", "no"), ("EDM, Heun (arXiv 2206.00364)", "35", "1.97", "no")),
          "Higher-order ODE solvers, CIFAR-10 FID (published; not comparable: other networks, budgets and 50k "
          "Inception samples)"),
)

ANCHOR_NOTES: tuple[str, ...] = (
    "DDPM (arXiv 2006.11239), 1000 steps: FID 3.17, NLL ≤ 3.75 bits/dim (CIFAR-10, published).",
    "VDM (arXiv 2107.00630): 2.65 bits/dim (CIFAR-10, published).",
    "Denoising Diffusion GAN (arXiv 2112.07804): FID 3.75 at NFE 4; 14.6 at T = 1 (CIFAR-10, published).",
    "Few-step distillation, for scale: consistency distillation 3.55 at 1 NFE; iCT 2.51 at 1 and 2.24 at 2 "
    "(CIFAR-10, published).",
)


def anchor_blocks() -> list[Block]:
    """The anchors section body: the warning first, then the tables and the single numbers."""
    return [Paragraph(ANCHOR_WARNING), *ANCHOR_TABLES, Bullets(ANCHOR_NOTES)]
