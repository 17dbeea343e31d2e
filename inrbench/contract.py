"""The model contract, checked on a registered model: ``inrbench check-model NAME``.

CONTRIBUTING.md states what a model owes the rest of the suite; this module tries each promise
on small 1-D, 2-D and 3-D signals and reports pass / fail / skip with the reason, so a new model
(or a plain ``nn.Module`` with a ``forward(coords)``) can be checked before it is trained:

* construction from the config's keys, sized by :func:`inrbench.build.build_model` (a model that
  refuses a dimensionality with a ConfigError is skipped there, not failed; one that refuses
  every dimensionality fails);
* ``forward``: ``(n, in_features)`` -> ``(n, out_features)``, floating, the input's dtype;
* ``render(shape)`` equals ``forward`` on ``make_grid(shape)`` (metrics and reports read the
  render, training reads the forward: they must be one function);
* gradients reach every trainable parameter (a dead parameter is silently never trained);
* the state dict restores the model (checkpoints, resume, compression read it);
* every constructor default survives YAML (``conf/model/<name>.yaml`` and ``key=value``);
* measured MACs are counted and the paper-convention MACs are a number or "measured only";
* the block path (``cell_shapes``/``forward_cells``) equals ``forward`` on the same cells;
* a short Adam fit lowers the loss (the model can learn at its configured learning rate).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inrbench.build import build_model
from inrbench.config.files import find_conf, load_yaml
from inrbench.config.validation import constructor_specs, to_plain
from inrbench.data.base import RandomBlocks, SignalSpec, choose_cells
from inrbench.errors import ConfigError
from inrbench.models.base import CoordinateModule, make_grid
from inrbench.models.registry import MODELS
from inrbench.models.stack import NotStackable, StackedModel, stack_refusal
from inrbench.profiling import measured_macs
from inrbench.profiling.flops import flops_per_sample
from inrbench.registry import check_kwargs, keyword_parameters

#: the checks, in report order
CHECKS = ("construct", "forward", "render", "gradients", "state_dict", "yaml_keys",
          "macs_measured", "macs", "blocks", "stack", "fit")
#: ``render`` vs ``forward`` and ``forward_cells`` vs ``forward``: absolute tolerance relative
#: to the output's scale (max(1, max |forward|)); float32 sums in another order differ ~1e-6
RENDER_ATOL = 1e-5
BLOCKS_ATOL = 1e-4
#: samples of the random coordinate batch of the forward check
N_COORDS = 37


@dataclass(frozen=True)
class Check:
    """One check on one signal: ``dim`` is the signal's dimensionality (1, 2 or 3)."""

    name: str
    dim: int
    status: str  # "pass" | "fail" | "skip"
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _err(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def validated_overrides(name: str, overrides: dict | None) -> dict:
    """``overrides`` checked as YAML values of ``model.<key>``: an unknown model or key, or a
    value the constructor's annotations refuse, raises the config's own one-line ConfigError."""
    builder = MODELS.get(name)
    plain = dict(overrides or {})
    plain.pop("name", None)
    check_kwargs(builder, plain, "model")
    try:
        values = to_plain(OmegaConf.create({"model": plain}))["model"]
    except OmegaConfBaseException as e:
        raise ConfigError(f"model overrides {plain} are no YAML values: {e}") from None
    specs = constructor_specs(builder)
    return {k: specs[k].check(f"model.{k}", v) if k in specs else v for k, v in values.items()}


def _build(name: str, overrides: dict, spec: SignalSpec, seed: int):
    torch.manual_seed(seed)
    cfg = OmegaConf.create({"model": {"name": name, **overrides}})
    model = build_model(cfg, spec)
    # build_model wraps a module without render in a CoordinateModule, as every run sees it
    model.adapted = isinstance(model, CoordinateModule)
    return model


def fit_lr(name: str) -> float:
    """``task.lr`` of ``model/<name>.yaml`` wherever the config files are (the suite's
    ``conf/``, ``$INRBENCH_CONF``, a plugin's ``conf/``: :func:`~inrbench.config.files.find_conf`,
    as a run composes it); a variant without a file of its own takes its class's
    (``asmr_big`` -> ``asmr.yaml``); 1e-3 when no file gives one."""
    builder = MODELS.get(name)
    names = [name]
    cls = getattr(builder, "__wrapped_class__", None)
    names += [n for n in MODELS.names() if cls is not None and MODELS.get(n) is cls]
    for n in names:
        try:
            path = find_conf(f"model/{n}.yaml")
        except ConfigError:  # no conf/ folder at all
            return 1e-3
        lr = OmegaConf.select(load_yaml(path), "task.lr") if path is not None else None
        if lr is not None:
            return float(lr)
    return 1e-3


def smooth_target(shape: Sequence[int], channels: int, seed: int = 0) -> torch.Tensor:
    """A fixed random but smooth signal ``(*shape, channels)`` in about [-1, 1]: a few
    sinusoids of 1 to 2 periods over the grid, their directions and phases drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = make_grid(shape)
    out = torch.zeros(*shape, channels)
    for _ in range(3):
        freq = torch.randint(-2, 3, (len(shape), channels), generator=g).float()
        freq[0] = torch.where(freq[0] == 0, torch.ones_like(freq[0]), freq[0])
        phase = torch.rand(channels, generator=g) * 2 * math.pi
        out = out + torch.sin(math.pi / 2 * x @ freq + phase) / 3
    return out


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if not a.numel():
        return 0.0
    wide = torch.complex128 if a.is_complex() or b.is_complex() else torch.float64
    return float((a.to(wide) - b.to(wide)).abs().max())


def _scale(t: torch.Tensor) -> float:
    return max(1.0, float(t.detach().abs().max())) if t.numel() else 1.0


class _Signal:
    """One signal of the check and the model built for it."""

    def __init__(self, name, overrides, shape, channels, seed):
        self.name, self.overrides, self.seed = name, overrides, seed
        self.shape, self.channels = tuple(shape), channels
        self.spec = SignalSpec(self.shape, channels)
        self.dim = len(self.shape)
        self.model = _build(name, overrides, self.spec, seed)
        self.in_features = int(getattr(self.model, "in_features", self.dim))
        self.out_features = int(getattr(self.model, "out_features", channels))
        self.grid = make_grid(self.shape).reshape(-1, self.dim)

    # -- the checks: each returns (status, reason) or raises (then: fail with the error) --

    def forward(self):
        g = torch.Generator().manual_seed(self.seed)
        x = torch.rand(N_COORDS, self.in_features, generator=g) * 2 - 1
        with torch.no_grad():
            out = self.model(x)
        want = (N_COORDS, self.out_features)
        if not isinstance(out, torch.Tensor):
            return "fail", f"forward returned a {type(out).__name__}, not a tensor"
        if tuple(out.shape) != want:
            return "fail", f"forward{tuple(x.shape)} gave {tuple(out.shape)}, expected {want}"
        if not out.is_floating_point() or out.dtype != x.dtype:
            return "fail", f"forward gave {out.dtype} for {x.dtype} coordinates"
        if not torch.isfinite(out).all():
            return "fail", "forward gave non-finite values"
        return "pass", f"{tuple(x.shape)} -> {tuple(out.shape)} {str(out.dtype)[6:]}"

    def render(self):
        with torch.no_grad():
            rendered = self.model.render(self.shape)
            per_sample = self.model(self.grid).reshape(*self.shape, -1)
        if tuple(rendered.shape) != tuple(per_sample.shape):
            return "fail", (f"render{self.shape} gave {tuple(rendered.shape)}, forward on the "
                            f"grid {tuple(per_sample.shape)}")
        diff, tol = _max_diff(rendered, per_sample), RENDER_ATOL * _scale(per_sample)
        status = "pass" if diff <= tol else "fail"
        text = f"max |render - forward on make_grid| = {diff:.3g} (tolerance {tol:.3g})"
        if getattr(self.model, "adapted", False):
            text = "no render: rendered by forward on the grid; " + text
        return status, text

    def gradients(self):
        model = self.model
        model.zero_grad(set_to_none=True)
        target = smooth_target(self.shape, self.channels, self.seed).reshape(-1, self.channels)
        out = model(self.grid)
        ((out - target[:, : out.shape[-1]]) ** 2).mean().backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        dead = [n for n, p in trainable if p.grad is None or not bool(p.grad.abs().sum() > 0)]
        model.zero_grad(set_to_none=True)
        if not trainable:
            return "fail", "no trainable parameters"
        if dead:
            return "fail", f"no gradient reaches {', '.join(dead)}"
        return "pass", f"all {len(trainable)} trainable parameters get a gradient"

    def state_dict(self):
        # perturbed so that the state dict differs from what the same seed initialises
        trained = copy.deepcopy(self.model)
        g = torch.Generator().manual_seed(self.seed + 1)
        with torch.no_grad():
            for p in trained.parameters():
                if p.is_floating_point():
                    p.add_(1e-2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        fresh = _build(self.name, self.overrides, self.spec, self.seed)
        fresh.load_state_dict(trained.state_dict())
        with torch.no_grad():
            diff = _max_diff(fresh.render(self.shape), trained.render(self.shape))
        if diff:
            return "fail", f"the reloaded model renders differently (max difference {diff:.3g})"
        return "pass", f"{len(trained.state_dict())} entries restore an identical render"

    def macs_measured(self):
        value = float(measured_macs(self.model, self.shape))
        if value > 0:
            return "pass", f"{value:.4g} MACs/sample"
        # a model without matrix products (a grid, splats) is costed by the rule's other classes
        flops = float(flops_per_sample(self.model, self.shape)["flops"])
        if not flops > 0:
            return "fail", (f"render{self.shape} executes no arithmetic that the cost rule "
                            f"counts ({value:g} MACs, {flops:g} FLOPs per sample)")
        return "pass", f"no matrix product; {flops:.4g} FLOPs/sample by the cost rule"

    def macs(self):
        fn = getattr(self.model, "macs_per_sample", None)
        if fn is None:
            return "pass", "measured only (no macs_per_sample)"
        try:
            value = fn()
        except NotImplementedError:
            return "pass", "measured only"
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            return "fail", f"macs_per_sample() returned {value!r}, not a number >= 0"
        return "pass", f"{float(value):.4g} MACs/sample (paper convention)"

    def blocks(self):
        model = self.model
        if not (callable(getattr(model, "cell_shapes", None))
                and callable(getattr(model, "forward_cells", None))):
            return "skip", "no block path (trains on coordinates)"
        shapes = model.cell_shapes()
        if not shapes:
            return "skip", "cell_shapes() declares no level"
        n = math.prod(self.shape)
        level, cell, n_cells = choose_cells(shapes, max(1, n // 4), min_cells=4)
        if len(cell) != self.dim or any(s % g for s, g in zip(self.shape, cell)):
            return "fail", f"level {level}'s cell {cell} does not tile the signal {self.shape}"
        n_cells = min(n_cells, math.prod(s // g for s, g in zip(self.shape, cell)))
        signal = smooth_target(self.shape, self.channels, self.seed)
        drawn = RandomBlocks(signal, self.shape, cell, n_cells, length=2, seed=self.seed,
                             level=level)
        batch = drawn[1]
        with torch.no_grad():
            shared = model.forward_cells(batch["cells"], level)
            per_sample = model(drawn.coords(batch["cells"]))
        want = (batch["cells"].shape[0], *cell, self.out_features)
        if tuple(shared.shape) != want:
            return "fail", f"forward_cells gave {tuple(shared.shape)}, expected {want}"
        shared = shared.reshape(-1, shared.shape[-1])
        diff, tol = _max_diff(shared, per_sample), BLOCKS_ATOL * _scale(per_sample)
        status = "pass" if diff <= tol else "fail"
        return status, (f"level {level}, {want[0]} cells of {list(cell)}: max |forward_cells - "
                        f"forward| = {diff:.3g} (tolerance {tol:.3g})")

    def stack(self):
        """Two seeds as one stacked model (:mod:`inrbench.models.stack`, how seeds and
        same-shape signals train together): its render and gradient are each member's own.
        A model vmap cannot batch is not a failure: its runs train one by one."""
        other = _build(self.name, self.overrides, self.spec, self.seed + 1)
        members = [self.model, other]
        why = stack_refusal(self.model)
        if why:
            return "skip", f"not stackable ({why}): its runs train one by one"
        try:
            stacked = StackedModel(members)
            stacked.verify(members, "render", self.shape)
            target = smooth_target(self.shape, self.channels, self.seed)
            out = stacked.call("render", self.shape)
        except NotStackable as e:
            return "skip", f"not stackable ({e}): its runs train one by one"
        ((out - target) ** 2).mean(dim=tuple(range(1, out.dim()))).sum().backward()
        worst = 0.0
        for i, m in enumerate(members):
            m.zero_grad(set_to_none=True)
            ((m.render(self.shape) - target) ** 2).mean().backward()
            for p, q in zip(stacked.params, m.parameters()):
                if q.grad is None:
                    continue
                worst = max(worst, _max_diff(p.grad[i], q.grad) / _scale(q.grad))
            m.zero_grad(set_to_none=True)
        status = "pass" if worst <= RENDER_ATOL else "fail"
        return status, (f"2 seeds stacked: the gradient is each member's own (max relative "
                        f"difference {worst:.3g}, tolerance {RENDER_ATOL:g})")

    def fit(self, steps: int):
        model = copy.deepcopy(self.model).train()
        lr = fit_lr(self.name)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return "fail", "no trainable parameters"
        opt = torch.optim.Adam(params, lr=lr)
        target = smooth_target(self.shape, self.channels, self.seed).reshape(-1, self.channels)
        losses = []
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = ((model(self.grid) - target) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            losses.append(float(((model(self.grid) - target) ** 2).mean()))
        first, last = losses[0], losses[-1]
        text = f"MSE {first:.4g} -> {last:.4g} in {steps} Adam steps (lr {lr:g})"
        if not math.isfinite(last) or not last < first:
            return "fail", text + ": the loss did not go down"
        return "pass", text


def _yaml_keys(name: str) -> tuple[str, str]:
    """Every constructor default as YAML: ``OmegaConf.create`` and the constructor's rules."""
    builder = MODELS.get(name)
    found, _ = keyword_parameters(builder)
    defaults = {k: p.default for k, (p, _) in found.items() if p.default is not inspect._empty}
    defaults.update(getattr(builder, "variant_defaults", {}) or {})
    specs = constructor_specs(builder)
    bad, no_rule = [], []
    for key, value in defaults.items():
        try:
            plain = to_plain(OmegaConf.create({"model": {key: value}}))["model"][key]
        except (OmegaConfBaseException, ConfigError, ValueError) as e:
            bad.append(f"{key}={value!r} is no YAML value ({_err(e)})")
            continue
        if key not in specs:
            no_rule.append(key)
            continue
        try:
            specs[key].check(f"model.{key}", plain)
        except ConfigError as e:
            bad.append(str(e))
    note = f"; no rule from the annotation (not checked): {', '.join(no_rule)}" if no_rule else ""
    if bad:
        return "fail", "; ".join(bad) + note
    return "pass", f"{len(defaults)} defaults round-trip{note}"


def check_model(name: str, overrides: dict | None = None, *,
                shapes: Sequence[Sequence[int]] = ((64,), (16, 16), (6, 6, 6)),
                channels: Sequence[int] = (1, 3, 1), fit_steps: int = 20,
                seed: int = 0) -> list[Check]:
    """Check the registered model ``name`` (built with ``overrides``, constructor keys as YAML
    gives them) against the model contract on one small signal per entry of ``shapes`` (with
    ``channels[i]`` channels). Returns one :class:`Check` per check and signal, in
    :data:`CHECKS` order. An unknown name or key, or a value its rule refuses, raises
    :class:`~inrbench.errors.ConfigError` before anything is built."""
    overrides = validated_overrides(name, overrides)
    if len(channels) != len(shapes):
        raise ConfigError(f"check_model needs one channel count per shape, got {len(shapes)} "
                          f"shapes and {len(channels)} channel counts")
    yaml_status = _yaml_keys(name)
    checks: list[Check] = []
    for shape, ch in zip(shapes, channels):
        dim = len(shape)
        try:
            signal = _Signal(name, overrides, shape, int(ch), seed)
        except ConfigError as e:
            checks.append(Check("construct", dim, "skip", str(e)))
            checks += [Check(c, dim, *yaml_status) if c == "yaml_keys"
                       else Check(c, dim, "skip", f"the model refuses {dim}-D signals")
                       for c in CHECKS[1:]]
            continue
        except Exception as e:  # noqa: BLE001  (any other error is the model's failure)
            checks.append(Check("construct", dim, "fail", _err(e)))
            checks += [Check(c, dim, "skip", "construction failed") for c in CHECKS[1:]]
            continue
        kind = type(signal.model).__name__
        if getattr(signal.model, "adapted", False):
            kind = f"{type(signal.model.module).__name__} (no render: rendered by forward on " \
                   f"the grid)"
        checks.append(Check("construct", dim, "pass", f"{kind} for {tuple(shape)} x {ch}"))
        for cname in CHECKS[1:]:
            if cname == "yaml_keys":
                checks.append(Check(cname, dim, *yaml_status))
                continue
            try:
                method = getattr(signal, cname)
                status, reason = method(fit_steps) if cname == "fit" else method()
            except Exception as e:  # noqa: BLE001  (a crash of a check is its failure)
                status, reason = "fail", _err(e)
            checks.append(Check(cname, dim, status, reason))
    return _refused_everywhere(checks)


def _refused_everywhere(checks: list[Check]) -> list[Check]:
    """A model that refuses every dimensionality fulfils no part of the contract: its
    ``construct`` checks fail, with one reason naming the first refusal."""
    built = [c for c in checks if c.name == "construct"]
    if not built or any(c.status != "skip" for c in built):
        return checks
    dims = ", ".join(f"{c.dim}-D" for c in built)
    reason = f"no dimensionality accepts the model ({dims} refused); first: {built[0].reason}"
    return [Check(c.name, c.dim, "fail", reason) if c.name == "construct" else c
            for c in checks]


_MARK = {"pass": "pass", "fail": "FAIL", "skip": "skip"}


def format_checks(checks: Sequence[Check]) -> str:
    """A table (check x dimensionality) of pass / FAIL / skip, one line per failure or skip
    with its reason, and a final ``N passed, M failed, K skipped``."""
    dims = sorted({c.dim for c in checks})
    names = [n for n in CHECKS if any(c.name == n for c in checks)]
    names += [c.name for c in checks if c.name not in names]
    names = list(dict.fromkeys(names))
    cell = {(c.name, c.dim): c for c in checks}
    width = max([len("check"), *map(len, names)])
    lines = ["  ".join(["check".ljust(width), *(f"{d}-D".ljust(4) for d in dims)]).rstrip()]
    for n in names:
        marks = [_MARK[cell[(n, d)].status] if (n, d) in cell else "-" for d in dims]
        lines.append("  ".join([n.ljust(width), *(m.ljust(4) for m in marks)]).rstrip())
    # one line per (status, reason): the checks and dimensions it holds for
    groups: dict[tuple[str, str], list[Check]] = {}
    for c in checks:
        if c.status != "pass":
            groups.setdefault((c.status, c.reason), []).append(c)
    if groups:
        lines.append("")
    for (status, reason), group in sorted(groups.items(), key=lambda kv: kv[0][0] != "fail"):
        what = ", ".join(dict.fromkeys(c.name for c in group))
        where = ", ".join(f"{d}-D" for d in sorted({c.dim for c in group}))
        lines.append(f"{_MARK[status]} {what} ({where}): {reason}")
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "fail", "skip")}
    lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return "\n".join(lines)
