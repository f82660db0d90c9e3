"""Reports of a run: aggregation of judge answers and metrics (`aggregate`), HTML leaderboard and
drill-down pages, CSV and JSON (`render`), inline SVG charts (`charts`).

    from mibench.report import render_report, markdown_table
    render_report(Path("runs/demo"))     # -> runs/demo/report/index.html
"""

from mibench.report.aggregate import Aggregate, aggregate, leaderboard
from mibench.report.render import markdown_table, render_report

__all__ = ["Aggregate", "aggregate", "leaderboard", "markdown_table", "render_report"]
