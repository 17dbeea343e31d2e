"""Reports: the paper's tables and curves regenerated from run results (``inrbench report``).

See :mod:`inrbench.reports.build` (the command), :mod:`inrbench.reports.runs` (finding and
grouping results folders), :mod:`inrbench.reports.tables` (matching runs to the rows of
``conf/experiment/table*.yaml``) and :mod:`inrbench.reports.figures` (matplotlib, Agg).
"""

from inrbench.reports.runs import Run, find_runs, group_runs, load_run, mean_std

__all__ = ["Run", "find_runs", "group_runs", "load_run", "make_report", "mean_std"]


def make_report(*args, **kwargs):
    from inrbench.reports.build import make_report as _make

    return _make(*args, **kwargs)
