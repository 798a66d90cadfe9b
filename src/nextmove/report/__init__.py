"""The playbook report: one self-contained HTML page per run (opens offline, charts inline)."""

from nextmove.report.data import ReportData, build_report_data
from nextmove.report.render import render_report, write_report

__all__ = ["ReportData", "build_report_data", "render_report", "write_report"]
