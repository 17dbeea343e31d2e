"""3D shapes on a voxel grid: occupancy (``occupancy``, ``shapenet_occupancy``; ASMR paper
sec. 4.3, Table 6, appendix H) and signed distance (``sdf``; appendix M).

A mesh (OFF/OBJ/PLY/STL, read with trimesh) is centred, scaled uniformly so its longest side
spans the cube [-1, 1]^3 less 1.5 voxels on each side, and sampled at the ``R^3`` voxel centres
of the grid convention (``make_grid``: centre ``j`` at ``-1 + 2 j / (R - 1)``). A centre is
inside when rays cast through it along x, y and z agree by majority on an odd number of
surface crossings (exact for a watertight mesh; the vote makes small holes, common in
ShapeNet, harmless). The SDF is the Euclidean distance transform of that occupancy, in the
units of the cube, negative inside, clipped to [-1, 1] (a voxel-accurate SDF).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.fetch import PaperDataModule, Resolution, extract, fetch_url, sample_file
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError
from inrbench.io import atomic_write_bytes

MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl")


def load_mesh(path: Path):
    """A trimesh.Trimesh with at least one face; a DataError for missing/corrupt files."""
    import trimesh  # heavy import (~0.5 s), only for mesh data

    path = Path(path)
    if not path.is_file():
        raise DataError(f"mesh file {path} does not exist; pass an existing "
                        f"{'/'.join(MESH_SUFFIXES)} file as data.path=FILE")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise DataError(f"{path} is not a mesh file this reader knows ({', '.join(MESH_SUFFIXES)})")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as e:  # noqa: BLE001 - trimesh raises many types on bad input
        raise DataError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); replace "
                        f"the file") from None
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0 or not np.isfinite(mesh.vertices).all():
        raise DataError(f"{path} holds no usable triangles (truncated or corrupt file?)")
    if int(faces.max()) >= len(mesh.vertices):
        raise DataError(f"{path} has faces pointing past its vertices (corrupt file)")
    return mesh


def normalised_triangles(mesh, resolution: int) -> np.ndarray:
    """``(F, 3, 3)`` triangles centred and scaled so the longest side spans [-h, h], h = 1 - 1.5
    voxel pitches: a margin of empty voxels, and no bounding face through a row of centres."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    extent = float((hi - lo).max())
    if extent <= 0:
        raise DataError("the mesh is degenerate (all vertices coincide)")
    half = 1.0 - 1.5 * 2.0 / (resolution - 1)
    v = (v - (lo + hi) / 2) * (2 * half / extent)
    return v[np.asarray(mesh.faces)]


def _parity(tri: np.ndarray, resolution: int, axis: int) -> np.ndarray:
    """Inside-by-parity of all voxel centres for rays along ``axis``: ``(R, R, R)`` bool."""
    a, b = [k for k in range(3) if k != axis]
    r, d = resolution, 2.0 / (resolution - 1)
    # rays slightly off the grid lines, so they never hit an edge or vertex exactly
    ja, jb = d * 1.234567e-4, d * 2.718281e-4
    ta, tb, tc = tri[:, :, a], tri[:, :, b], tri[:, :, axis]
    ia0 = np.ceil((ta.min(1) - ja + 1) / d).astype(np.int64).clip(0, r)
    ia1 = np.floor((ta.max(1) - ja + 1) / d).astype(np.int64).clip(-1, r - 1)
    ib0 = np.ceil((tb.min(1) - jb + 1) / d).astype(np.int64).clip(0, r)
    ib1 = np.floor((tb.max(1) - jb + 1) / d).astype(np.int64).clip(-1, r - 1)
    na, nb = (ia1 - ia0 + 1).clip(0), (ib1 - ib0 + 1).clip(0)
    counts = na * nb
    toggles = np.zeros((r, r, r + 1), dtype=np.int32)
    total = int(counts.sum())
    if total == 0:
        return np.zeros((r, r, r), dtype=bool)
    f = np.repeat(np.arange(len(tri)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    ia = ia0[f] + k // nb[f]
    ib = ib0[f] + k % nb[f]
    pa, pb = ia * d - 1 + ja, ib * d - 1 + jb
    x0, y0 = ta[f, 0], tb[f, 0]
    x1, y1 = ta[f, 1], tb[f, 1]
    x2, y2 = ta[f, 2], tb[f, 2]
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    ok = det != 0
    det = np.where(ok, det, 1.0)
    l0 = ((y1 - y2) * (pa - x2) + (x2 - x1) * (pb - y2)) / det
    l1 = ((y2 - y0) * (pa - x2) + (x0 - x2) * (pb - y2)) / det
    l2 = 1 - l0 - l1
    hit = ok & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
    z = l0 * tc[f, 0] + l1 * tc[f, 1] + l2 * tc[f, 2]
    k0 = np.ceil((z[hit] + 1) / d).astype(np.int64).clip(0, r)
    np.add.at(toggles, (ia[hit], ib[hit], k0), 1)
    inside = (np.cumsum(toggles, axis=2)[..., :r] % 2).astype(bool)
    # axes of ``inside`` are (a, b, axis); put them back in (x, y, z) order
    return np.moveaxis(inside, (0, 1, 2), (a, b, axis))


def voxelize(mesh, resolution: int) -> np.ndarray:
    """``(R, R, R)`` bool occupancy at the voxel centres (majority of 3 ray directions)."""
    tri = normalised_triangles(mesh, resolution)
    votes = sum(_parity(tri, resolution, axis).astype(np.uint8) for axis in range(3))
    return votes >= 2


def occupancy_to_sdf(occ: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) in cube units, from the voxel occupancy, in [-1, 1]."""
    d = 2.0 / (occ.shape[0] - 1)
    if occ.all() or not occ.any():
        raise DataError("the occupancy grid is all inside or all outside; no surface to measure")
    outside = distance_transform_edt(~occ) - 0.5  # to the nearest inside centre, minus half
    inside = distance_transform_edt(occ) - 0.5
    sdf = np.where(occ, -inside, outside) * d
    return np.clip(sdf, -1.0, 1.0).astype(np.float32)


MIN_RESOLUTION = 5  # the 1.5-pitch margin of normalised_triangles leaves no centre inside at 4


def _check_resolution(resolution) -> int:
    if int(resolution) < MIN_RESOLUTION:
        raise ConfigError(f"data.resolution must be >= {MIN_RESOLUTION} voxels per side (a "
                          f"smaller grid has no voxel centre inside the normalised mesh), got "
                          f"{resolution}")
    return int(resolution)


class MeshGridDataModule(SignalDataModule):
    """A mesh file on an ``R^3`` grid, as occupancy in {0, 1} or as an SDF in [-1, 1]."""

    kind = "occupancy"

    def __init__(self, path: str | None = None, resolution: int = 128, **kwargs):
        super().__init__(**kwargs)
        if path is None:
            raise ConfigError(f"data '{self.kind}' needs a mesh: add data.path=/path/to/mesh.off "
                              f"(or .obj/.ply); real samples ship in datasets/samples/meshes/")
        self.path = Path(path).expanduser()
        self.resolution = _check_resolution(resolution)

    def describe(self) -> str:
        return f"{self.kind} of {self.path} at {self.resolution}^3"

    def spec(self) -> SignalSpec:
        if not self.path.is_file():
            raise DataError(f"mesh file {self.path} does not exist; pass an existing "
                            f"{'/'.join(MESH_SUFFIXES)} file as data.path=FILE")
        return grid_spec(self.kind, self.resolution)

    def load_signal(self) -> torch.Tensor:
        return grid_signal(self.kind, voxelize(load_mesh(self.path), self.resolution))


def grid_spec(kind: str, resolution: int) -> SignalSpec:
    if kind == "sdf":
        return SignalSpec((resolution,) * 3, 1, "sdf", 2.0)
    return SignalSpec((resolution,) * 3, 1, "occupancy", 1.0)


def grid_signal(kind: str, occ: np.ndarray) -> torch.Tensor:
    if not occ.any():
        raise DataError(f"the mesh covers no voxel centre of the {occ.shape[0]}^3 grid; raise "
                        f"data.resolution")
    values = occupancy_to_sdf(occ) if kind == "sdf" else occ.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(values))[..., None]


@register_datamodule(name="occupancy")
class OccupancyDataModule(MeshGridDataModule):
    """A local mesh as an occupancy grid: ``--data occupancy data.path=mesh.off
    [data.resolution=128]``. Fitted with BCE on logits; IoU at logit 0 is the metric."""


# ShapeNetCore v2: the 55 categories (synset id, name)
SHAPENET_CATEGORIES = (
    ("02691156", "airplane"), ("02747177", "trash bin"), ("02773838", "bag"),
    ("02801938", "basket"), ("02808440", "bathtub"), ("02818832", "bed"), ("02828884", "bench"),
    ("02843684", "birdhouse"), ("02871439", "bookshelf"), ("02876657", "bottle"),
    ("02880940", "bowl"), ("02924116", "bus"), ("02933112", "cabinet"), ("02942699", "camera"),
    ("02946921", "can"), ("02954340", "cap"), ("02958343", "car"), ("02992529", "cellphone"),
    ("03001627", "chair"), ("03046257", "clock"), ("03085013", "keyboard"),
    ("03207941", "dishwasher"), ("03211117", "display"), ("03261776", "earphone"),
    ("03325088", "faucet"), ("03337140", "file cabinet"), ("03467517", "guitar"),
    ("03513137", "helmet"), ("03593526", "jar"), ("03624134", "knife"), ("03636649", "lamp"),
    ("03642806", "laptop"), ("03691459", "loudspeaker"), ("03710193", "mailbox"),
    ("03759954", "microphone"), ("03761084", "microwave"), ("03790512", "motorcycle"),
    ("03797390", "mug"), ("03928116", "piano"), ("03938244", "pillow"), ("03948459", "pistol"),
    ("03991062", "flowerpot"), ("04004475", "printer"), ("04074963", "remote control"),
    ("04090263", "rifle"), ("04099429", "rocket"), ("04225987", "skateboard"),
    ("04256520", "sofa"), ("04330267", "stove"), ("04379243", "table"),
    ("04401088", "telephone"), ("04460130", "tower"), ("04468005", "train"),
    ("04530566", "watercraft"), ("04554684", "washer"),
)
# ShapeNetCore v2 on the Hugging Face hub (gated: accept the terms, then set HF_TOKEN)
SHAPENET_URL = "https://huggingface.co/datasets/ShapeNet/ShapeNetCore/resolve/main/{}.zip"
BUNNY = "meshes/bunny00.off"


def shapenet_category(category) -> tuple[int, str, str]:
    """(index, synset id, name) from an index 0..54, a synset id or a name."""
    key = str(category).strip().lower()
    for i, (synset, name) in enumerate(SHAPENET_CATEGORIES):
        if key in (str(i), synset, name):
            return i, synset, name
    raise ConfigError(f"data.category must be 0..54, a ShapeNet synset id or a name (e.g. "
                      f"'airplane', '03001627'), got {category!r}")


@register_datamodule(name="shapenet_occupancy")
class ShapeNetOccupancyDataModule(PaperDataModule):
    """One ShapeNetCore v2 object per category (55 in all) as an ``R^3`` occupancy grid (ASMR
    paper Table 6). ``category``: 0..54, synset id or name; ``object``: which model of the
    category, in sorted model-id order (default the first; the paper took one at random and
    did not list them).

    ``resolution``: 128 by default. The paper's ASMR (10 layers, base 2 on every level)
    implies a 2^10 = 1024^3 grid; its MACs (0.038M here, 0.039M printed) are the same for any
    grid whose last levels have base 2, so ``data.resolution=1024`` reproduces the setting but
    a dense 1024^3 grid (4 GiB as float) does not fit this CPU benchmark.

    ``prepare_data`` downloads ``<synset>.zip`` from the Hugging Face hub (gated: set
    ``HF_TOKEN``; SHA-256 recorded on first download), unpacks it, voxelises
    ``<model>/models/model_normalized.obj`` and caches the grid (checksum recorded). Offline,
    the Stanford Bunny shipped in ``datasets/samples/meshes`` stands in.
    """

    subdir = "shapenet"
    kind = "occupancy"
    manual_note = ("ShapeNetCore is gated on the Hugging Face hub: accept its terms and set "
                   "HF_TOKEN, or unpack <synset>.zip there by hand")

    def __init__(self, category=0, object: int = 0, resolution: int = 128, **kwargs):
        self.index, self.synset, self.name = shapenet_category(category)
        self.object = int(object)
        if self.object < 0:
            raise ConfigError(f"data.object must be >= 0, got {object}")
        self.resolution = _check_resolution(resolution)
        self.dataset = f"ShapeNetCore {self.name} ({self.synset})"
        super().__init__(**kwargs)
        self.archive = self.folder / f"{self.synset}.zip"
        self.cache = self.folder / "voxels" / f"{self.synset}_{self.object}_{self.resolution}.npz"

    @property
    def auto_download(self) -> bool:
        return bool(os.environ.get("HF_TOKEN"))

    def describe(self) -> str:
        if self.uses_sample:
            return self._sample.describe()
        return f"{self.kind} of {self.dataset} object {self.object} at {self.resolution}^3"

    def urls(self) -> list[str]:
        return [SHAPENET_URL.format(self.synset)]

    def paper_files(self) -> list[Path]:
        return [self.cache]

    def paper_spec(self) -> SignalSpec:
        return grid_spec(self.kind, self.resolution)

    def fetch(self) -> None:
        if not self.archive.exists():
            headers = {"Authorization": f"Bearer {os.environ['HF_TOKEN']}"}
            fetch_url(self.urls()[0], self.archive, headers=headers)
            self.manifest.record(self.archive)
        self.verify(self.archive)
        tree = self.folder / self.synset
        if not tree.is_dir():
            extract(self.archive, self.folder)
        models = sorted(p.parent.parent for p in tree.glob("*/models/model_normalized.obj"))
        if self.object >= len(models):
            raise DataError(f"{tree} has {len(models)} models; data.object={self.object} is out "
                            f"of range (incomplete extraction?)")
        mesh_path = models[self.object] / "models" / "model_normalized.obj"
        occ = voxelize(load_mesh(mesh_path), self.resolution)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, occupancy=np.packbits(occ), shape=np.array(occ.shape),
                            model=np.array(models[self.object].name))
        atomic_write_bytes(self.cache, buffer.getvalue())
        self.manifest.record(self.cache)

    def load_paper(self) -> torch.Tensor:
        self.verify(self.cache)
        try:
            with np.load(self.cache) as z:
                shape = tuple(int(n) for n in z["shape"])
                occ = np.unpackbits(z["occupancy"])[: int(np.prod(shape))].reshape(shape)
        except (ValueError, OSError, KeyError, EOFError) as e:
            raise DataError(f"{self.cache} is truncated or corrupt ({e}); delete it to rebuild "
                            f"it") from None
        if shape != (self.resolution,) * 3:
            raise DataError(f"{self.cache} holds a {shape} grid, expected "
                            f"{(self.resolution,) * 3}; delete it to rebuild it")
        return grid_signal(self.kind, occ.astype(bool))

    def make_sample(self) -> SignalDataModule:
        cls = SDFGrid if self.kind == "sdf" else OccupancyDataModule
        return cls(path=str(sample_file(BUNNY)), resolution=self.resolution)


class SDFGrid(MeshGridDataModule):
    kind = "sdf"


@register_datamodule(name="sdf")
class SDFDataModule(ShapeNetOccupancyDataModule):
    """Signed distance on an ``R^3`` grid (ASMR paper appendix M): of a local mesh
    (``data.path=mesh.off``) or of a ShapeNet object (``category``/``object``, as
    ``shapenet_occupancy``, bunny offline). Values in [-1, 1] (cube units, negative inside);
    the metric is the IoU of the inside (SDF < 0) beside PSNR with data range 2."""

    kind = "sdf"

    def __init__(self, path: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.path = Path(path).expanduser() if path else None

    def resolve(self) -> Resolution:
        if self.path is not None and self._resolution is None:
            self._sample = SDFGrid(path=str(self.path), resolution=self.resolution)
            self._resolution = Resolution("file")
        return super().resolve()

