"""``inrbench compress`` / ``decompress``: a finished run -> ``.inrb`` file -> image.

Rates (ANI Table 3; facts note sec. 2b): ``bpp`` = file bits / (H W), the convention of COIN,
COIN++ and Strümpler et al.; ``bpp_ani`` = file bits / (H W C), the divisor that reproduces
ANI's printed figures (C = 3 for RGB). Each is given for the entropy-coded file and for the
same file with fixed-length symbols (``*_fixed``), and ANI's own count (parameter bits only:
no header, no step sizes, no entropy coding) is ``bpp_ani_count``. The PSNR reported is the
one of the network decoded from the file, rendered and compared with the original signal,
as a float and after rounding to 8 bits as a PNG would hold it (``psnr_8bit``, the codecs'
convention).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.overrides import TorchFunctionMode

from inrbench.build import as_inr, build_datamodule, build_model, model_kwargs
from inrbench.checkpoint import read_checkpoint
from inrbench.compression.bitstream import (
    LIBRARY_ERRORS,
    MAX_WEIGHTS,
    Decoded,
    Entry,
    corrupt_line,
    decode,
    encode,
    read_header,
)
from inrbench.compression.ofa import assemble_subnet, check_space, chunks_needed, family, ofa_chunks
from inrbench.compression.quant import (
    apply_lsq,
    check_bits,
    lsq_quantized,
    parse_layers,
    plain_state_dict,
    quantize_ptq,
    selected,
    tensor_roles,
)
from inrbench.config import load_yaml
from inrbench.data.base import SignalSpec
from inrbench.errors import ConfigError, DataError, InrbenchError
from inrbench.io import atomic_write_bytes, atomic_write_json, write_png
from inrbench.metrics import evaluate, psnr
from inrbench.models import create_model
from inrbench.models.base import EVAL_CHUNK, model_label

METHODS = ("ptq", "qat", "none")
#: the most samples (pixels, voxels) ``decompress`` renders unless ``--max-pixels`` raises it:
#: 2^28 = 16384 x 16384, 1 GiB per channel as float32
MAX_PIXELS = 2**28


# -- loading a finished run -----------------------------------------------------------------

def quant_config(cfg: DictConfig) -> dict | None:
    """The run's QAT settings, or None for a full-precision run."""
    task = cfg.get("task", {})
    bits = task.get("quant_bits", None)
    if bits is None:
        return None
    return {"bits": int(bits), "layers": str(task.get("quant_layers", "hidden")),
            "biases": bool(task.get("quant_biases", False)),
            "offset": bool(task.get("quant_offset", False))}


def load_run(run_dir: Path):
    """``(cfg, model, spec, datamodule)`` of a finished run: its config and last checkpoint."""
    run_dir = Path(run_dir)
    cfg_path, ckpt = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    for path in (cfg_path, ckpt):
        if not path.is_file():
            raise DataError(f"{path} does not exist; compress needs a finished run folder "
                            f"(inrbench run ... --out {run_dir})")
    try:  # plain types only: a checkpoint never runs code (inrbench.checkpoint)
        state = read_checkpoint(ckpt)["state_dict"]
    except Exception as e:  # truncated, not a checkpoint, or objects weights_only refuses
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read checkpoint {ckpt} ({reason}); compress reads only "
                        f"checkpoints of tensors and plain values, as inrbench writes "
                        f"them") from None
    cfg = load_yaml(cfg_path)
    dm = build_datamodule(cfg)
    spec = dm.spec()
    model = build_model(cfg, spec)
    q = quant_config(cfg)
    if q is not None:
        apply_lsq(model, q["bits"], q["layers"], q["biases"], q["offset"])
    own = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(own, strict=False)
    if missing:
        raise DataError(f"checkpoint {ckpt} lacks {len(missing)} model tensor(s) "
                        f"(e.g. {missing[0]}); was the run trained with another config?")
    model.eval()
    return cfg, model, spec, dm


# -- building the file ----------------------------------------------------------------------

def entries_for(model: torch.nn.Module, method: str, bits: int | None, layers="hidden",
                biases: bool = False, scheme: str = "affine") -> tuple[list[Entry], list[str]]:
    """Every state-dict tensor of ``model`` as a bitstream entry; the selected ones quantized."""
    plain = plain_state_dict(model)
    if method == "qat":
        qmap = lsq_quantized(model)
        if not qmap:
            raise ConfigError("--method qat needs a run trained with task.quant_bits (LSQ+ QAT)")
    elif method == "ptq":
        names = selected(model, layers, biases)
        if not names:
            raise ConfigError(f"--layers {layers} selects no tensor of model "
                              f"{model_label(model)!r}")
        qmap = {n: quantize_ptq(plain[n], check_bits(bits), scheme) for n in names}
    else:
        qmap = {}
    entries = [Entry(name, qmap.get(name, t)) for name, t in plain.items()]
    return entries, list(qmap)


def ofa_entries(cfg, mk: dict, model, qnames: list[str], bits, scheme: str
                ) -> tuple[list[list[Entry]], dict]:
    """A once-for-all run's tensors cut into cells, one chunk per sub-network increment; the
    cells of a quantized tensor are quantized separately (each has its own step size)."""
    widths, depths = check_space(list(cfg.task.ofa_widths), list(cfg.task.ofa_depths), mk)
    state = plain_state_dict(model)
    groups = ofa_chunks(family(mk["name"]), mk, state, widths, depths)
    chunks = []
    for _, cells in groups:
        chunk = []
        for name, sl in cells:
            part = state[name][tuple(slice(a, b) for a, b in sl)]
            value = quantize_ptq(part, bits, scheme) if name in qnames else part
            chunk.append(Entry(name, value, slice=sl))
        chunks.append(chunk)
    ofa = {"widths": widths, "depths": depths, "chunks": [list(k) for k, _ in groups]}
    return chunks, ofa


def ani_count_bits(model: torch.nn.Module, quantized: dict[str, int]) -> int:
    """ANI's count: quantized tensors at their bits, every other parameter at 32 bits."""
    total = 0
    roles = tensor_roles(model)
    for name, t in plain_state_dict(model).items():
        if name in roles and torch.is_floating_point(t):
            total += t.numel() * quantized.get(name, 32)
    return total


def _signal_record(spec) -> dict:
    return {"shape": list(spec.shape), "channels": spec.channels, "modality": spec.modality,
            "data_range": spec.data_range}


def rates(bits: int, spec_shape, channels: int) -> dict:
    pixels = math.prod(spec_shape)
    return {"bpp": bits / pixels, "bpp_ani": bits / (pixels * channels)}


def _settings(cfg: DictConfig, run_dir: Path, bits, method, layers: str, biases: bool,
              scheme: str) -> tuple:
    """``(method, bits, layers, biases, scheme)`` checked against how the run was trained: a QAT
    run's own bits and layers, PTQ only of a full-precision run."""
    qat = quant_config(cfg)
    if method is None:
        method = "qat" if qat else "ptq"
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "qat":
        if qat is None:
            raise ConfigError(f"--method qat: {run_dir} was not trained with LSQ+ "
                              f"(task.quant_bits); use --method ptq")
        if bits is not None and int(bits) != qat["bits"]:
            raise ConfigError(f"--bits {bits}: {run_dir} was trained with LSQ+ at "
                              f"{qat['bits']} bits; omit --bits or pass --bits {qat['bits']}")
        return method, qat["bits"], qat["layers"], qat["biases"], "lsq"
    if method == "ptq":
        bits = 8 if bits is None else bits
        if qat is not None:
            raise ConfigError(f"{run_dir} is a QAT run; its weights are already quantized "
                              f"(--method qat)")
        check_bits(bits)
        parse_layers(layers)
    return method, bits, layers, biases, scheme


def _tag(method: str, bits, layers: str, biases: bool) -> str:
    """The file's name: ``ptq8``, ``qat4-hidden+first``, ``fp32``..."""
    tag = f"{method}{bits}" if method != "none" else "fp32"
    if method != "none" and layers != "hidden":
        tag += "-" + layers.replace(",", "+")
    return tag + ("-biases" if biases else "")


def _record(out: Path, run_dir: Path, cfg, model, spec, meta: dict, bits, qnames: list[str],
            sizes: dict, by: dict, encode_s: float) -> dict:
    """The ``<tag>.json`` beside the file: what was coded and its rates by every count."""
    ani_bits = ani_count_bits(model, {n: bits for n in qnames})
    return {
        "file": str(out), "run": str(run_dir), "model": cfg.model.name,
        "data": OmegaConf.to_container(cfg.data, resolve=True), "method": meta["method"],
        "bits": meta["bits"], "scheme": meta["scheme"], "layers": meta["layers"],
        "biases": meta["biases"], "coding": meta["coding"], "quantized_tensors": qnames,
        "signal_shape": list(spec.shape), "channels": spec.channels,
        "file_bits": sizes["total_bits"], "header_bits": sizes["header_bits"],
        "histogram_bits": sizes["histogram_bits"],
        "file_bits_range": by["range"], "file_bits_fixed": by["fixed"],
        **{f"{k}": v for k, v in rates(by["range"], spec.shape, spec.channels).items()},
        **{f"{k}_fixed": v for k, v in rates(by["fixed"], spec.shape, spec.channels).items()},
        "ani_count_bits": ani_bits,
        "bpp_ani_count": rates(ani_bits, spec.shape, spec.channels)["bpp_ani"],
        "params": sum(t.numel() for n, t in plain_state_dict(model).items()
                      if torch.is_floating_point(t)),
        "encode_s": encode_s,
    }


def compress_run(run_dir: Path, bits: int | None = None, method: str | None = None,
                 layers: str = "hidden", biases: bool = False, scheme: str = "affine",
                 coding: str = "range", out: Path | None = None, evaluate: bool = True) -> dict:
    """Compress a finished run into ``out`` (default ``RUN_DIR/compressed/<tag>.inrb``), decode
    the file back and score it; the record is written beside it as ``<tag>.json``."""
    cfg, model, spec, dm = load_run(run_dir)
    method, bits, layers, biases, scheme = _settings(cfg, run_dir, bits, method, layers,
                                                     biases, scheme)
    if coding not in ("range", "fixed"):
        raise ConfigError(f"--coding must be range or fixed, got {coding!r}")
    entries, qnames = entries_for(model, method, bits, layers, biases, scheme)
    mk = model_kwargs(cfg, spec)
    meta = {"method": method, "bits": bits if method != "none" else 32, "layers": layers,
            "biases": biases, "scheme": scheme if method != "none" else None}
    chunks = [entries]
    if (cfg.task.get("name") or "fit") == "ofa":  # one chunk per sub-network increment
        chunks, meta["ofa"] = ofa_entries(cfg, mk, model, qnames, bits, scheme)
    t0 = time.perf_counter()
    data, sizes = encode(mk, _signal_record(spec), chunks, coding, meta)
    encode_s = time.perf_counter() - t0
    other = "fixed" if coding == "range" else "range"
    _, sizes_other = encode(mk, _signal_record(spec), chunks, other, meta)
    tag = _tag(method, bits, layers, biases)
    out = Path(out) if out else Path(run_dir) / "compressed" / f"{tag}.inrb"
    _check_decodes(data, model, out)
    atomic_write_bytes(out, data)
    by = {coding: sizes["total_bits"], other: sizes_other["total_bits"]}
    record = _record(out, run_dir, cfg, model, spec, {**meta, "coding": coding}, bits, qnames,
                     sizes, by, encode_s)
    if evaluate:
        record.update(score_file(out, dm, max_pixels=None))  # the run's own signal
    atomic_write_json(out.with_suffix(".json"), record)
    return record


def _check_decodes(data: bytes, model, out: Path) -> None:
    """Decode the bytes as ``decompress`` will, before they are written: a file that cannot
    rebuild the network it came from is never left behind."""
    try:
        decoded, dec = _decode_bytes(data, None, None, max_pixels=None)
    except InrbenchError as e:
        raise DataError(f"the bitstream for {out} does not decode ({e}); nothing was written: "
                        f"please report this with the run folder") from None
    want = plain_state_dict(decoded)
    have = plain_state_dict(model)
    if set(want) != set(have) or any(want[k].shape != have[k].shape for k in want):
        raise DataError(f"the bitstream for {out} decodes to another network than model "
                        f"{model_label(model)!r}; nothing was written: please report this with "
                        f"the run folder")


# -- decoding ------------------------------------------------------------------------------

def _read(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; give a .inrb file written by inrbench compress")
    return path.read_bytes()


def model_from_decoded(dec: Decoded, width: int | None = None, depth: int | None = None):
    """The network the file describes (a sub-network for once-for-all files)."""
    kwargs = dict(dec.header["model"])
    name = kwargs.pop("name")
    ofa = dec.header["meta"].get("ofa")
    if ofa is not None:
        return assemble_subnet(name, kwargs, ofa, dec, width, depth)
    if width is not None or depth is not None:
        raise ConfigError("--width/--layers select a sub-network of a once-for-all file "
                          "(a run of --task ofa); this file holds one network")
    model = as_inr(create_model(name, **kwargs), name, dec.header["signal"]["channels"])
    state = model.state_dict()
    missing = [k for k in state if k not in dec.tensors]
    if missing:
        raise DataError(f"bitstream lacks tensor {missing[0]} of model {name}; the file is "
                        f"corrupt or from another version")
    model.load_state_dict({k: dec.tensors[k].to(state[k].dtype) for k in state})
    return model.eval()


def decode_file(path: Path, width: int | None = None, depth: int | None = None,
                max_pixels: int | None = MAX_PIXELS):
    """``(model, decoded)`` from a file alone; a damaged file is a DataError naming it, and so
    is one whose declared sizes disagree with its network or exceed the limits."""
    try:
        return _decode_bytes(_read(path), width, depth, max_pixels)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def check_declared(header: dict, max_pixels: int | None) -> None:
    """The sizes a header declares, against limits and against the network it names (built on
    the meta device: no memory), before the decoder allocates anything: the signal's samples
    against ``max_pixels``, every tensor's shape against the network's own."""
    sig = header["signal"]
    shape, channels = sig["shape"], sig["channels"]
    if not isinstance(shape, list) or not shape or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape) \
            or not isinstance(channels, int) or not 1 <= channels <= 64:
        raise DataError(f"corrupt bitstream: its signal {str(shape)[:80]} x {channels!r} is not a "
                        f"shape of positive integers with 1..64 channels")
    samples = math.prod(shape)
    if max_pixels is not None and samples > max_pixels:
        size = "x".join(map(str, shape[:8]))
        raise DataError(f"the file declares a {size} signal ({samples:,} "
                        f"samples), more than --max-pixels {max_pixels:,}; raise --max-pixels if "
                        f"you trust the file and have the memory")
    kwargs = dict(header["model"])
    name = kwargs.pop("name", None)
    if not isinstance(name, str):
        raise DataError("corrupt bitstream: its header names no model")
    try:
        with torch.device("meta"):
            model = as_inr(create_model(name, **kwargs), name, channels)
    except (RuntimeError, NotImplementedError):  # a model that cannot be built without memory
        with _AllocationBudget(MAX_WEIGHTS, name):
            model = as_inr(create_model(name, **kwargs), name, channels)
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    if sum(math.prod(s) for s in expected.values()) > MAX_WEIGHTS:
        raise DataError(f"the header builds model {name!r} with more than {MAX_WEIGHTS:,} values; "
                        f"the file is corrupt or crafted")
    for chunk in header["chunks"]:
        for head in chunk["tensors"]:
            tname, declared = head["name"], head["shape"]
            full = expected.get(tname)
            if full is None:
                raise DataError(f"the file holds tensor {tname!r}, which model {name!r} does not "
                                f"have; the file is corrupt or from another version")
            want = full
            if "slice" in head:
                sl = head["slice"]
                if not isinstance(sl, list) or len(sl) != len(full) or not all(
                        isinstance(p, list) and len(p) == 2 and all(isinstance(i, int)
                                                                    for i in p)
                        and 0 <= p[0] <= p[1] <= n for p, n in zip(sl, full)):
                    raise DataError(f"the file's slice {str(sl)[:60]} of tensor {tname!r} lies "
                                    f"outside its shape {full}; the file is corrupt")
                want = [b - a for a, b in sl]
            if declared != want:
                raise DataError(f"the file declares tensor {tname!r} of shape {declared}, but "
                                f"model {name!r} holds {want}; the file is corrupt or crafted")


class _AllocationBudget(TorchFunctionMode):
    """Tensor factories (``torch.empty``, ``zeros``, ``randn``...) refused once the values they
    asked for pass ``budget``, before allocating: a model built for real from a header's
    arguments (one that cannot be built on the meta device) cannot ask for 2^40 weights."""

    FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full}

    def __init__(self, budget: int, name: str):
        super().__init__()
        self.left, self.name = budget, name

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.FACTORIES and args:  # the size: a sequence first, or ints
            size = args[0] if isinstance(args[0], (tuple, list, torch.Size)) else [
                a for a in args if isinstance(a, int) and not isinstance(a, bool)]
            try:
                self.left -= math.prod(int(n) for n in size)
            except (TypeError, ValueError):
                pass
            if self.left < 0:
                raise DataError(f"the header's arguments build model {self.name!r} with more "
                                f"than {MAX_WEIGHTS:,} values; the file is corrupt or crafted")
        return func(*args, **(kwargs or {}))


def _decode_bytes(data: bytes, width, depth, max_pixels):
    try:
        header, _ = read_header(data, warn=False)  # decode() says it once
        check_declared(header, max_pixels)
        chunks = None
        ofa = header["meta"].get("ofa")
        if ofa is not None and (width is not None or depth is not None):
            chunks = chunks_needed(ofa, width, depth)
        dec = decode(data, chunks=chunks)
        return model_from_decoded(dec, width, depth), dec
    except InrbenchError:  # DataError: the file's; ConfigError: a bad --width/--layers
        raise
    except LIBRARY_ERRORS as e:  # a header the CRC could not vouch for (format 1)
        raise DataError(corrupt_line(e)) from None


def render_decoded(model, header: dict) -> torch.Tensor:
    with torch.no_grad():
        return model.render(header["signal"]["shape"], chunk=EVAL_CHUNK)


def to_uint8(pred: torch.Tensor) -> np.ndarray:
    return (pred.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def score_file(path: Path, dm, width: int | None = None, depth: int | None = None,
               max_pixels: int | None = MAX_PIXELS) -> dict:
    """Decode ``path``, render, and score against the data module's signal."""
    t0 = time.perf_counter()
    model, dec = decode_file(path, width, depth, max_pixels)
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = render_decoded(model, dec.header)
    render_s = time.perf_counter() - t0
    dm.setup()
    sig = dec.header["signal"]
    spec = SignalSpec(tuple(sig["shape"]), sig["channels"], sig["modality"], sig["data_range"])
    target = dm.signal.to(pred.device)
    scores = evaluate(pred, target, spec)
    out = {"psnr": scores["psnr"], "decode_s": decode_s, "render_s": render_s,
           "read_bits": dec.sizes["read_bits"]}
    if "ssim" in scores:
        out["ssim"] = scores["ssim"]
    if spec.modality == "image" and sig["data_range"] == 1.0:
        out["psnr_8bit"] = psnr(torch.from_numpy(to_uint8(pred)).float() / 255.0, target, 1.0)
    return out


def decompress(path: Path, out: Path | None = None, width: int | None = None,
               depth: int | None = None, max_pixels: int | None = MAX_PIXELS) -> dict:
    """Rebuild the network from the file alone, render it and save the image; a file that
    declares more than ``max_pixels`` samples is refused before anything is decoded."""
    t0 = time.perf_counter()
    model, dec = decode_file(path, width, depth, max_pixels)
    pred = render_decoded(model, dec.header)
    wall = time.perf_counter() - t0
    sig = dec.header["signal"]
    if out is not None:
        if sig["modality"] != "image":
            raise ConfigError(f"decompress --out writes images; this file holds a "
                              f"{sig['modality']} signal")
        write_png(Path(out), pred)
    meta = dec.header["meta"]
    return {"model": dec.header["model"]["name"], "method": meta.get("method"),
            "bits": meta.get("bits"), "signal_shape": sig["shape"], "channels": sig["channels"],
            "file_bits": dec.sizes["total_bits"], "read_bits": dec.sizes["read_bits"],
            **{k: v for k, v in rates(dec.sizes["read_bits"], sig["shape"],
                                      sig["channels"]).items()},
            "params": sum(p.numel() for p in model.parameters()), "seconds": wall,
            "out": str(out) if out else None, "width": width, "layers": depth}
