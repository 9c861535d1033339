"""Audit reports over the ledger: ownerless tasks, open violations, compliance.

Every report is first built as one JSON-ready dict (`build.build_report`); each
output format (`render.render`) only presents that dict, so JSON, CSV, Markdown,
the terminal table and the HTML page always hold the same rows.
"""

from syncd.reports.build import REPORTS, build_report, report_from_snapshot
from syncd.reports.render import FORMATS, render
from syncd.reports.snapshot import load_snapshot
from syncd.reports.table import render_table

__all__ = [
    "FORMATS",
    "REPORTS",
    "build_report",
    "load_snapshot",
    "render",
    "render_table",
    "report_from_snapshot",
]
