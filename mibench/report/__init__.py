"""Reports of a run: aggregation of judge answers and metrics (`report.aggregate`) with clustered
bootstrap uncertainty (`report.uncertainty`) and slices (`report.slices`), the leaderboard read first
(`report.board`), the views the outputs share (`report.views`), numbers reported by papers
(`report.references`), the HTML leaderboard with drill-down pages and CSV (`report.render`), the JSON
document and Markdown (`report.text`, all from one `collect`), inline SVG charts (`report.charts`).

    from mibench.report import render_report
    render_report(Path("runs/demo"))     # -> runs/demo/report/index.html (+ leaderboard.csv/.json/.md)
    from mibench.report.aggregate import aggregate, leaderboard   # the numbers as DataFrames
"""

from mibench.report.render import render_report

__all__ = ["render_report"]
