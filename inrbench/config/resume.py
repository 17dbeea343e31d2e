"""What ``--resume`` may change: the folder's own config, with the command line's changes
refused unless the key is in :data:`inrbench.config.validation.RESUMABLE` (``--steps N`` among
them: the runner re-plans the cosine schedule to reach ``lr_min`` at step N)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from inrbench.config.compose import base_config, check_keys, validate
from inrbench.config.files import load_yaml, parse_overrides
from inrbench.config.validation import RESUMABLE, SCHEMA, to_plain
from inrbench.console import note
from inrbench.errors import ConfigError
from inrbench.io import flatten


def _drop_foreign_task_keys(saved: DictConfig, base: DictConfig, where: Path) -> None:
    """A config.yaml written when one task section served every task holds the other tasks'
    keys too; they are not this task's configuration and are left out, with a line."""
    task = saved.get("task")
    if not isinstance(task, DictConfig):
        return
    foreign = [k for k in task if k not in base.task and k not in SCHEMA.get("task", {})]
    if foreign:
        saved.task = OmegaConf.masked_copy(task, [k for k in task if k not in foreign])
        note(f"--resume: {where} names keys that task {base.task.name} does not take; left "
             f"out: {', '.join('task.' + k for k in foreign)}")


def resume_config(out: Path, overrides=(), extra: dict | None = None, model: str | None = None,
                  data: str | None = None) -> DictConfig:
    """The folder's config with the command line's changes, refusing those a resumed run
    cannot take (a different model, data, learning rate...)."""
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError(f"--resume: {saved_path} does not exist; is {out} a run folder?")
    saved = load_yaml(saved_path)
    for kind, name in (("model", model), ("data", data)):
        have = OmegaConf.select(saved, f"{kind}.name")
        if name is not None and name != have:
            raise ConfigError(f"--resume: {out} holds a run of {kind} {have!r}, not --{kind} "
                              f"{name}; drop --{kind} or choose another --out")
    base = base_config(OmegaConf.select(saved, "task.name") or "fit")
    cli = parse_overrides(list(overrides))
    check_keys(cli, base)
    # sections the runner records (data_record...) are kept as they are, not config
    known = set(base) | set(SCHEMA)
    records = OmegaConf.masked_copy(saved, [k for k in saved if k not in known])
    saved = OmegaConf.masked_copy(saved, [k for k in saved if k in known])
    _drop_foreign_task_keys(saved, base, saved_path)
    # keys added to defaults.yaml since the run started take their defaults
    fill = OmegaConf.masked_copy(base, [k for k in base if k not in ("model", "data")])
    cfg = OmegaConf.merge(fill, saved, cli)
    for key, value in (extra or {}).items():
        if value is not None:
            OmegaConf.update(cfg, key, value, force_add=True)
    cfg.trainer.out = str(out)  # the folder may have moved since
    cfg = validate(cfg, base)
    before, after = flatten(to_plain(OmegaConf.merge(fill, saved))), flatten(to_plain(cfg))
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new or key == "trainer.out":
            continue
        if key not in RESUMABLE:
            allowed = ", ".join(sorted(k for k in RESUMABLE if k != "trainer.out"))
            raise ConfigError(f"--resume: {key}={new!r} differs from {old!r} in {saved_path}; "
                              f"a resumed run keeps its config (it may change {allowed}); "
                              f"choose another --out for a new run")
        note(f"--resume: {key} {old!r} -> {new!r}")
    return OmegaConf.merge(cfg, records)


