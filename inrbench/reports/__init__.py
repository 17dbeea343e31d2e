"""Reports: the paper's tables and curves regenerated from run results (``inrbench report``).

The top layer of the package: it reads results folders and experiment files, never builds
or runs a model (profiling, which builds models, is given to :func:`make_report` by its
caller). Inside, imports point one way: :mod:`~inrbench.reports.runs` (finding and grouping
results folders) and :mod:`~inrbench.reports.sections` (what a report is made of) below
:mod:`~inrbench.reports.comparable` and :mod:`~inrbench.reports.tables` (matching runs to the
rows of ``conf/experiment/table*.yaml``), then :mod:`~inrbench.reports.figures` (matplotlib,
Agg), then the sections of other tasks (:mod:`~inrbench.reports.figure5`,
:mod:`~inrbench.reports.amortized`, :mod:`~inrbench.reports.ratedistortion`), and
:mod:`~inrbench.reports.build` (the command) on top.
"""

from inrbench.reports.runs import Run, find_runs, group_runs, load_run, mean_std

__all__ = ["Run", "find_runs", "group_runs", "load_run", "make_report", "mean_std"]


def make_report(*args, **kwargs):
    """:func:`inrbench.reports.build.make_report`."""
    # imported on call: reading runs (``inrbench compare``) must not load matplotlib
    from inrbench.reports.build import make_report as _make

    return _make(*args, **kwargs)
