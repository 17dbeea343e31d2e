"""Tasks: LightningModules that receive their module. Fitting one signal (``fit``), LSQ+
quantization-aware fitting (``qat``), once-for-all supernetworks (``ofa``), meta-learning over a
data set (``meta``) and generating INRs in one pass with a hyper-network (``hypernet``).

Each registers a builder with :func:`inrbench.registry.register_task`; the builder's keyword
arguments are the keys of ``conf/task/<name>.yaml``. Importing this package registers them.
"""

from inrbench.registry import TASKS, list_tasks, register_task
from inrbench.tasks import hypernet, meta, ofa, qat  # noqa: F401  (registration)
from inrbench.tasks.fit import FitTask, RunHistory

__all__ = ["FitTask", "RunHistory", "TASKS", "list_tasks", "register_task"]
