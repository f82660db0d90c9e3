"""Reports of a run: aggregation of judge answers and metrics (`report.aggregate`), the views the
outputs share (`report.views`), the HTML leaderboard with drill-down pages and CSV (`report.render`),
the JSON document and Markdown tables (`report.text`), inline SVG charts (`report.charts`).

    from mibench.report import render_report, markdown_table
    render_report(Path("runs/demo"))     # -> runs/demo/report/index.html
    from mibench.report.aggregate import aggregate, leaderboard   # the numbers as DataFrames
"""

from mibench.report.render import render_report
from mibench.report.text import markdown_table

__all__ = ["markdown_table", "render_report"]
