"""Reports of a run: aggregation of judge answers and metrics (`report.aggregate`), the HTML
leaderboard with drill-down pages, CSV and JSON (`report.render`), inline SVG charts (`report.charts`).

    from mibench.report import render_report, markdown_table
    render_report(Path("runs/demo"))     # -> runs/demo/report/index.html
    from mibench.report.aggregate import aggregate, leaderboard   # the numbers as DataFrames
"""

from mibench.report.render import markdown_table, render_report

__all__ = ["markdown_table", "render_report"]
