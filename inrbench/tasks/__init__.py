"""LightningModules: fitting one signal, meta-learning across a data set (and, later,
compression). Each task registers a builder with ``register_task`` (see ``registry.py``);
``create_task(cfg, model, datamodule, spec)`` builds the one ``cfg.task.name`` names."""

from inrbench.tasks.fit import FitTask
from inrbench.tasks.registry import TASKS, create_task, list_tasks, register_task


@register_task("fit")
def build_fit(cfg, model, datamodule, spec):
    """Fitting one signal (ASMR paper sec. 4): ``FitTask`` with the ``task.*`` keys."""
    if cfg.task.get("quant_bits", None) is not None:  # LSQ+ QAT on the fitting task
        return qat.build_qat(cfg, model, datamodule, spec)
    return FitTask(model, spec, lr=cfg.task.lr, lr_min=cfg.task.lr_min, steps=cfg.task.steps,
                   scheduler=cfg.task.scheduler)


# tasks registered on import: generating INRs in one forward pass, ANR / Trans-INR (issue 14);
# meta-learning over a data set (issue 10); compression, LSQ+ QAT and once-for-all (issue 13)
from inrbench.tasks import hypernet, meta, ofa, qat  # noqa: E402,F401

__all__ = ["FitTask", "TASKS", "create_task", "list_tasks", "register_task"]
