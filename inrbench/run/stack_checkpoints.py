"""The checkpoints of a stack of runs (:mod:`inrbench.run.stacked`), one file per member: each
member's ``checkpoints/NAME`` is a fit-task checkpoint of that member alone (its slice of the
stacked weights and optimizer state, its own history), so the member resumes stacked again or
alone as an ordinary run, and reading a stack back stacks the members' files."""

from __future__ import annotations

from pathlib import Path

import torch

from inrbench.checkpoint import SafeCheckpointIO, prune_step_checkpoints, read_checkpoint
from inrbench.models.stack import StackedModel


def _paths(obj, old: str, new: str):
    """``obj`` with the folder prefix ``old`` of every string (and key) replaced by ``new``."""
    if isinstance(obj, str):
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {_paths(k, old, new): _paths(v, old, new) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_paths(v, old, new) for v in obj)
    return obj


def _is_stacked(key, value, shape) -> bool:
    return torch.is_tensor(value) and key != "step" and tuple(value.shape) == tuple(shape)


class MemberCheckpoints(SafeCheckpointIO):
    """Checkpoint files of a stack, one per member: saving ``<dir>/NAME`` writes each
    member's ``checkpoints/NAME`` (a fit-task checkpoint of that member alone), loading
    stacks the members' files of that name, removing removes them all."""

    def __init__(self, outs: list[Path], model: StackedModel, persistent: set[str], keep: int):
        super().__init__()
        self.outs, self.model, self.persistent, self.keep = outs, model, persistent, keep
        self.first = str(outs[0] / "checkpoints")

    def split(self, ckpt: dict, i: int) -> dict:
        out = {k: v for k, v in ckpt.items()
               if k not in ("state_dict", "optimizer_states", "inrbench_members", "callbacks")}
        sd, m = ckpt["state_dict"], self.model
        state = {f"model.{k}": sd[f"model.params.{j}"][i].clone() for j, k in enumerate(m.names)}
        state.update({f"model.{k}": sd[f"model.buffer{j}"][i].clone()
                      for j, k in enumerate(m.buffer_names) if f"model.{k}" in self.persistent})
        out["state_dict"] = state
        shapes = [p.shape for p in m.params]
        out["optimizer_states"] = [
            {"state": {idx: {k: v[i].clone() if _is_stacked(k, v, shapes[idx]) else v
                             for k, v in s.items()} for idx, s in opt["state"].items()},
             "param_groups": opt["param_groups"]} for opt in ckpt["optimizer_states"]]
        out["inrbench"] = ckpt["inrbench_members"][i]
        out["callbacks"] = _paths(ckpt.get("callbacks", {}), self.first,
                                  str(self.outs[i] / "checkpoints"))
        return out

    def join(self, parts: list[dict]) -> dict:
        first, m = parts[0], self.model
        out = {k: v for k, v in first.items()
               if k not in ("state_dict", "optimizer_states", "inrbench", "callbacks")}
        sd = {f"model.params.{j}": torch.stack([p["state_dict"][f"model.{k}"] for p in parts])
              for j, k in enumerate(m.names)}
        for j, k in enumerate(m.buffer_names):
            key = f"model.{k}"
            sd[f"model.buffer{j}"] = (torch.stack([p["state_dict"][key] for p in parts])
                                      if key in first["state_dict"] else
                                      getattr(m, f"buffer{j}").detach().clone())
        out["state_dict"] = sd
        shapes = [p.shape[1:] for p in m.params]
        out["optimizer_states"] = [
            {"state": {idx: {k: torch.stack([p["optimizer_states"][o]["state"][idx][k]
                                             for p in parts])
                             if _is_stacked(k, v, shapes[idx]) else v for k, v in s.items()}
                       for idx, s in opt["state"].items()},
             "param_groups": opt["param_groups"]}
            for o, opt in enumerate(first["optimizer_states"])]
        out["inrbench_members"] = [p.get("inrbench", {}) for p in parts]
        out["callbacks"] = _paths(first.get("callbacks", {}), str(self.outs[0] / "checkpoints"),
                                  self.first)
        return out

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        name = Path(path).name
        for i, out in enumerate(self.outs):
            super().save_checkpoint(self.split(checkpoint, i), out / "checkpoints" / name)
            prune_step_checkpoints(out / "checkpoints", self.keep)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        name = Path(path).name
        return self.join([read_checkpoint(out / "checkpoints" / name, map_location)
                          for out in self.outs])

    def remove_checkpoint(self, path):
        for out in self.outs:
            (out / "checkpoints" / Path(path).name).unlink(missing_ok=True)
