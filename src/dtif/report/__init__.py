"""Reports: compare methods side by side, as a table, JSON, CSV and plots."""

from dtif.report.compare import compare_methods, summarize
from dtif.report.table import format_table

__all__ = ["compare_methods", "format_table", "summarize"]
