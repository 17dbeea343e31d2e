"""Reconstructions saved per modality (the runner saves images itself as reconstruction.png).

- audio: ``reconstruction.wav`` (16-bit PCM at the signal's rate, clamped to [-1, 1]);
- video: ``reconstruction_frame<t>.png`` for the first, middle and last frame;
- occupancy / sdf: ``reconstruction.ply``, the zero level set (logit 0, SDF 0) by marching
  cubes, in the [-1, 1]^3 coordinates of the grid.

Every file is written atomically (``inrbench.io``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from skimage.measure import marching_cubes

from inrbench.data.base import SignalSpec
from inrbench.io import atomic_write_bytes, write_png


def save_wav(path: Path, pred: torch.Tensor, rate: float) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, pred.detach().float().clamp(-1, 1).reshape(-1).cpu().numpy(), int(rate),
             format="WAV", subtype="PCM_16")
    atomic_write_bytes(path, buffer.getvalue())


def save_frames(out: Path, pred: torch.Tensor, frames=None) -> list[Path]:
    t = pred.shape[0]
    frames = sorted({0, t // 2, t - 1}) if frames is None else frames
    paths = []
    for i in frames:
        path = out / f"reconstruction_frame{i:04d}.png"
        write_png(path, pred[i].detach().float())
        paths.append(path)
    return paths


def save_surface(path: Path, field: np.ndarray, level: float = 0.0) -> bool:
    """Marching cubes of ``field`` at ``level`` to a PLY; False when there is no surface."""
    import trimesh  # heavy import (~0.5 s), only for 3D reconstructions

    if not field.min() < level < field.max():
        return False
    verts, faces, _, _ = marching_cubes(field, level)
    verts = verts * (2.0 / (np.array(field.shape) - 1)) - 1.0
    payload = trimesh.Trimesh(verts, faces, process=False).export(file_type="ply")
    atomic_write_bytes(path, payload if isinstance(payload, bytes) else payload.encode())
    return True


def save_reconstruction(out: Path, pred: torch.Tensor, spec: SignalSpec) -> list[Path]:
    """Save ``pred`` (the model's full render) the way its modality is listened to or viewed."""
    out = Path(out)
    if spec.modality == "audio" and spec.rate:
        save_wav(out / "reconstruction.wav", pred, spec.rate)
        return [out / "reconstruction.wav"]
    if spec.modality == "video":
        return save_frames(out, pred)
    if spec.modality in ("occupancy", "sdf"):
        field = pred.detach().float()[..., 0].cpu().numpy()
        if spec.modality == "occupancy":
            field = -field  # logit > 0 is inside; marching cubes wants inside below the level
        path = out / "reconstruction.ply"
        return [path] if save_surface(path, field) else []
    return []
