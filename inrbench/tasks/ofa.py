"""Adaptive neural images: once-for-all training of one SIREN/MFN supernetwork (ANI sec. 4.4,
Alg. 2; OFA, Cai et al. 2020; sandwich order from BigNAS, Yu et al. 2020).

``inrbench run --task ofa --model siren model.hidden_dim=256 model.n_layers=7`` trains:

1. the supernetwork alone for ``task.ofa_warmup`` of the steps (Alg. 2 "train(supernet)");
2. then every sub-network of ``task.ofa_widths`` x ``task.ofa_depths`` in turn, in ANI's
   order (sorted by parameter count, alternating the largest and the smallest left),
   ``task.ofa_block`` steps each, cycling until the steps are spent. A sub-network's forward
   runs the supernetwork's own tensors, sliced (``torch.func.functional_call``), so its
   updates train the shared weights (OFA's weight sharing; progressive shrinking's
   initialisation is the supernetwork phase before).

ANI then fine-tunes each sub-network "for a small amount of epochs"; with shared weights that
would give 16 networks, which is not one adaptive image, so we do not. After training, the
summary renders the sub-networks (ANI Figure 7: PSNR of each) into ``metrics.json``
(``subnets``) and ``subnets.csv``: all of them (``task.ofa_eval: all``), or under ``auto``
(the default) all of them for a run of at least 1,000 steps and only the two ends of the space
(smallest and largest width x depth) for a shorter try, whose scores show only that the
pipeline works (each render of the 512 x 512 Cameraman costs about what a training step does on
a CPU). ``metrics.json`` says which: ``subnets_scored`` of ``subnets_total``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from inrbench.compression.ofa import (
    build_subnet,
    check_space,
    family,
    layout,
    sandwich_order,
    subnet_params,
)
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_text, write_png
from inrbench.metrics import evaluate, psnr_tensor
from inrbench.models.base import EVAL_CHUNK, make_grid
from inrbench.registry import register_task
from inrbench.tasks.evalset import FULL_EVAL_STEPS
from inrbench.tasks.fit import FitTask


class OFATask(FitTask):
    def __init__(self, model, spec, model_kwargs: dict, widths, depths, warmup: float = 0.3,
                 block: int = 1, scored: str = "all", **kwargs):
        super().__init__(model, spec, **kwargs)
        if scored not in ("all", "auto"):
            raise ConfigError(f"task.ofa_eval must be all or auto, got {scored!r}")
        self.fam = family(model_kwargs["name"])
        self.model_kwargs = model_kwargs
        self.widths, self.depths = check_space(widths, depths, model_kwargs)
        if not 0.0 <= warmup < 1.0:
            raise ConfigError(f"task.ofa_warmup must be in [0, 1), got {warmup}")
        if int(block) < 1:
            raise ConfigError(f"task.ofa_block must be >= 1, got {block}")
        self.warmup_steps, self.block = int(warmup * self.steps), int(block)
        self.order = sandwich_order(self.fam, model_kwargs, self.widths, self.depths)
        self.layout = layout(self.fam, self.depths[-1],
                             gabor=model_kwargs.get("filter") == "gabor")
        self._subnets: dict = {}
        self.scored = scored

    def scored_subnets(self) -> list[tuple[int, int]]:
        """The (width, depth) pairs the summary renders (``task.ofa_eval``)."""
        every = [(w, d) for w in self.widths for d in self.depths]
        if self.scored == "all" or self.steps >= FULL_EVAL_STEPS:
            return every
        return sorted({every[0], every[-1]})

    def subnet_at(self, step: int) -> tuple[int, int] | None:
        """The sub-network trained at ``step`` (None: the supernetwork)."""
        if step < self.warmup_steps:
            return None
        return self.order[((step - self.warmup_steps) // self.block) % len(self.order)]

    def _shell(self, w: int, d: int):
        if (w, d) not in self._subnets:  # a module skeleton; its tensors come from the supernet
            self._subnets[(w, d)] = build_subnet(self.fam, self.model_kwargs, w, d, meta=True)
        return self._subnets[(w, d)]

    def subnet_forward(self, w: int, d: int, coords: torch.Tensor) -> torch.Tensor:
        params = subnet_params(dict(self.model.named_parameters()), self.layout, w, d)
        return torch.func.functional_call(self._shell(w, d), params, (coords,))

    def subnet_render(self, w: int, d: int) -> torch.Tensor:
        grid = make_grid(self.spec.shape, device=self.device).reshape(-1, len(self.spec.shape))
        out = torch.cat([self.subnet_forward(w, d, g) for g in grid.split(2**18)])
        return out.reshape(*self.spec.shape, self.spec.channels)

    def training_step(self, batch, batch_idx):
        sub = self.subnet_at(int(self.global_step))
        if sub is None:
            return super().training_step(batch, batch_idx)
        w, d = sub
        if "coords" in batch:
            pred = self.subnet_forward(w, d, batch["coords"])
        else:
            pred = self.subnet_render(w, d)
        loss = F.mse_loss(pred, batch["values"])
        row = {"step": int(self.global_step), "loss": loss.detach(),
               "lr": self.trainer.optimizers[0].param_groups[0]["lr"], "width": w, "depth": d}
        if "coords" not in batch:
            row["subnet_psnr"] = psnr_tensor(pred.detach(), batch["values"],
                                             self.spec.data_range)
        self.history.append(row)
        self.log_step(loss=loss)
        return loss

    def summary(self, datamodule, out) -> dict:
        """Supernetwork scores (as the fitting task's) and every sub-network's (Figure 7)."""
        self.model.eval()
        target = datamodule.signal.to(self.device)
        with torch.no_grad():
            pred = self.model.render(self.spec.shape, chunk=EVAL_CHUNK)
            final = evaluate(pred, target, self.spec)
            rows = []
            for w, d in self.scored_subnets():
                scores = evaluate(self.subnet_render(w, d), target, self.spec)
                rows.append({"width": w, "depth": d,
                             "params": sum(p.numel() for p in self._shell(w, d).parameters()),
                             **scores})
        if self.spec.modality == "image":
            write_png(out / "reconstruction.png", pred)
        self.best = max(self.best, {"psnr": final["psnr"], "step": int(self.global_step)},
                        key=lambda b: b["psnr"])
        lines = ["width,depth,params," + ",".join(k for k in rows[0] if k not in
                                                   ("width", "depth", "params"))]
        for r in rows:
            lines.append(",".join(str(v) for v in r.values()))
        atomic_write_text(out / "subnets.csv", "\n".join(lines) + "\n")
        return {**final, "best_psnr": self.best["psnr"], "best_step": self.best["step"],
                "subnets": rows, "subnets_scored": len(rows),
                "subnets_total": len(self.widths) * len(self.depths),
                "ofa": {"widths": self.widths, "depths": self.depths, "order": self.order,
                        "warmup_steps": self.warmup_steps, "block": self.block}}


@register_task("ofa")
def build_ofa(model, spec, model_config: dict, lr: float = 1e-4, lr_min: float = 1e-6,
              steps: int = 10_000, scheduler: str = "cosine", eval_every: int = 1000,
              accumulate: int = 1, ofa_widths: list[int] = (64, 128, 192, 256),
              ofa_depths: list[int] = (2, 3, 4, 5), ofa_warmup: float = 0.3, ofa_block: int = 1,
              ofa_eval: str = "auto"):
    """Once-for-all supernetwork training: the keys of ``conf/task/ofa.yaml``. The sub-networks
    train at full precision (as ANI's Fig. 8); ``inrbench compress --bits B`` quantizes them.
    ``ofa_eval``: which sub-networks the summary scores (module docstring)."""
    return OFATask(model, spec, model_config, list(ofa_widths or []), list(ofa_depths or []),
                   float(ofa_warmup), int(ofa_block), str(ofa_eval), lr=lr, lr_min=lr_min,
                   steps=steps, scheduler=scheduler, eval_every=eval_every,
                   accumulate=accumulate)
