"""Video: any local MP4 or raw YUV (``video``), the cat video (``cat_video``) and UVG (``uvg``).

Signals are ``(T, H, W)`` grids of RGB values in [0, 1]. Metrics are per frame (PSNR, SSIM),
reported as mean and standard deviation over frames (ASMR paper appendix F, Table 10/11).

Raw YUV is planar 8-bit 4:2:0 (I420, ``yuv420p``); converting to RGB uses the limited-range
BT.709 matrix (what UVG's HD sequences are) or ``matrix: bt601``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.fetch import PaperDataModule, extract, fetch_url, sample_file
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError
from inrbench.io import atomic_write_bytes

# limited-range ("TV") Y'CbCr -> R'G'B' matrices: rows R, G, B; columns Y, Cb, Cr
_MATRICES = {
    "bt709": np.array([[1.0, 0.0, 1.5748], [1.0, -0.1873, -0.4681], [1.0, 1.8556, 0.0]]),
    "bt601": np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]),
}


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt709"):
    """One I420 frame (Y ``(H, W)``, U/V ``(H/2, W/2)``, uint8) -> ``(H, W, 3)`` uint8 RGB."""
    yf = (y.astype(np.float32) - 16.0) / 219.0
    uf = (np.repeat(np.repeat(u, 2, 0), 2, 1).astype(np.float32) - 128.0) / 224.0
    vf = (np.repeat(np.repeat(v, 2, 0), 2, 1).astype(np.float32) - 128.0) / 224.0
    ycc = np.stack([yf, uf[: y.shape[0], : y.shape[1]], vf[: y.shape[0], : y.shape[1]]], -1)
    rgb = ycc @ _MATRICES[matrix].T.astype(np.float32)
    return (rgb.clip(0, 1) * 255).round().astype(np.uint8)


def yuv_frame_count(path: Path, frame_size) -> int:
    h, w = (int(n) for n in frame_size)
    frame = h * w + 2 * ((h + 1) // 2) * ((w + 1) // 2)
    size = Path(path).stat().st_size
    if size == 0 or size % frame:
        raise DataError(f"{path} has {size} bytes, not a whole number of {w}x{h} 8-bit 4:2:0 "
                        f"frames ({frame} bytes each): truncated file or wrong data.frame_size")
    return size // frame


def read_yuv(path: Path, frame_size, indices, matrix: str = "bt709", resize=None) -> np.ndarray:
    """Frames ``indices`` of a raw I420 file as ``(T, H, W, 3)`` uint8 RGB (resized if asked)."""
    h, w = (int(n) for n in frame_size)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    frame = h * w + 2 * ch * cw
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = []
    for t in indices:
        base = t * frame
        raw = data[base: base + frame]
        if raw.size != frame:
            raise DataError(f"{path} ends inside frame {t} (truncated file)")
        y = raw[: h * w].reshape(h, w)
        u = raw[h * w: h * w + ch * cw].reshape(ch, cw)
        v = raw[h * w + ch * cw:].reshape(ch, cw)
        out.append(_resize(yuv420_to_rgb(y, u, v, matrix), resize))
    return np.stack(out)


def _resize(frame: np.ndarray, resize) -> np.ndarray:
    if resize is None or tuple(frame.shape[:2]) == tuple(resize):
        return frame
    im = Image.fromarray(frame).resize((int(resize[1]), int(resize[0])), Image.LANCZOS)
    return np.asarray(im)


def mp4_header(path: Path) -> tuple[int, int, int]:
    """(frames, H, W) of the first video stream, from the container (packets, no decoding)."""
    import av  # heavy import (FFmpeg bindings, ~0.1 s), only for video files

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video file {path} does not exist; pass an existing MP4 (or raw .yuv "
                        f"with data.frame_size=[H,W]) as data.path=FILE")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"{path} has no video stream")
            s = c.streams.video[0]
            frames, h, w = int(s.frames), int(s.codec_context.height), int(s.codec_context.width)
            if frames <= 0:  # container without a frame count: count packets
                frames = sum(1 for p in c.demux(s) if p.size)
    except av.error.FFmpegError as e:
        raise DataError(f"cannot read {path} as a video ({e}); is it an MP4?") from None
    return frames, h, w


def check_mp4(path: Path) -> None:
    """Demux every packet (no decoding): a file cut short has fewer packets than its header
    lists frames, even when the frames asked for would still decode."""
    import av  # heavy import (FFmpeg bindings, ~0.1 s), only for video files

    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            declared = int(s.frames)
            packets = sum(1 for p in c.demux(s) if p.size)
    except av.error.FFmpegError as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); replace the file") from None
    if declared and packets < declared:
        raise DataError(f"{path} holds {packets} video packets, its header lists {declared} "
                        f"frames (truncated file); replace the file")


def read_mp4(path: Path, indices, resize=None) -> np.ndarray:
    """Decoded frames ``indices`` (sorted) as ``(T, H, W, 3)`` uint8 RGB."""
    import av  # heavy import (FFmpeg bindings, ~0.1 s), only for video files

    wanted, out, t = set(int(i) for i in indices), [], -1
    last = max(wanted)
    try:
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                t += 1
                if t in wanted:
                    out.append(_resize(frame.to_ndarray(format="rgb24"), resize))
                if t >= last:
                    break
    except av.error.FFmpegError as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); replace the file") from None
    if len(out) != len(wanted):
        raise DataError(f"{path} decoded to {t + 1} frames, expected at least {last + 1} "
                        f"(truncated or corrupt file?)")
    return np.stack(out)


def _check_crop(crop, shape):
    """``crop``: ``[H, W]`` or ``[T, H, W]``, top-left (first frames)."""
    if crop is None:
        return tuple(shape)
    crop = [int(c) for c in crop]
    if len(crop) == 2:
        crop = [shape[0], *crop]
    if len(crop) != 3 or any(c < 1 or c > n for c, n in zip(crop, shape)):
        raise ConfigError(f"data.crop must be [H, W] or [T, H, W] within the video "
                          f"{tuple(shape)}, got {crop}")
    return tuple(crop)


def to_signal(frames: np.ndarray, crop_shape) -> torch.Tensor:
    t, h, w = crop_shape
    arr = frames[:t, :h, :w].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr))


@register_datamodule(name="video")
class VideoDataModule(SignalDataModule):
    """A local video: ``--data video data.path=clip.mp4`` or ``data.path=clip.yuv
    data.frame_size=[H,W]`` (raw 8-bit 4:2:0). ``frames``: keep the first N (after ``step``,
    which keeps every step-th frame); ``resize: [H, W]`` (Lanczos, per frame) then
    ``crop: [H, W]`` or ``[T, H, W]`` (top-left), e.g. to make the size factorisable for ASMR.
    """

    def __init__(self, path: str | None = None, frame_size: list[int] | None = None,
                 frames: int | None = None, step: int = 1, crop: list[int] | None = None,
                 resize: list[int] | None = None, matrix: str = "bt709", **kwargs):
        super().__init__(**kwargs)
        if path is None:
            raise ConfigError("data 'video' needs a file: add data.path=/path/to/clip.mp4 (or "
                              ".yuv with data.frame_size=[H,W]); a real sample ships in "
                              "datasets/samples/video/bikes.mp4")
        self.path = Path(path).expanduser()
        self.raw = self.path.suffix.lower() == ".yuv"
        if self.raw and (frame_size is None or len(frame_size) != 2):
            raise ConfigError(f"{self.path.name} is raw YUV: give data.frame_size=[H,W]")
        if matrix not in _MATRICES:
            raise ConfigError(f"data.matrix must be one of {sorted(_MATRICES)}, got {matrix!r}")
        if int(step) < 1 or (frames is not None and int(frames) < 1):
            raise ConfigError("data.step and data.frames must be >= 1")
        if resize is not None and (len(resize) != 2 or min(resize) < 1):
            raise ConfigError(f"data.resize must be [H, W], got {resize}")
        self.frame_size, self.frames, self.step = frame_size, frames, int(step)
        self.crop, self.resize, self.matrix = crop, resize, matrix

    def describe(self) -> str:
        return f"video {self.path}"

    def _indices_and_size(self):
        if self.raw:
            if not self.path.is_file():
                raise DataError(f"video file {self.path} does not exist")
            total = yuv_frame_count(self.path, self.frame_size)
            h, w = self.frame_size
        else:
            total, h, w = mp4_header(self.path)
        indices = list(range(0, total, self.step))
        if self.frames is not None:
            if self.frames > len(indices):
                raise ConfigError(f"{self.path} has {len(indices)} frames (step {self.step}); "
                                  f"data.frames={self.frames} is too many")
            indices = indices[: self.frames]
        h, w = self.resize if self.resize is not None else (h, w)
        return indices, (len(indices), int(h), int(w))

    def spec(self) -> SignalSpec:
        _, shape = self._indices_and_size()
        return SignalSpec(_check_crop(self.crop, shape), 3, "video", 1.0)

    def load_signal(self) -> torch.Tensor:
        indices, shape = self._indices_and_size()
        crop_shape = _check_crop(self.crop, shape)
        indices = indices[: crop_shape[0]]
        if self.raw:
            frames = read_yuv(self.path, self.frame_size, indices, self.matrix, self.resize)
        else:
            check_mp4(self.path)
            frames = read_mp4(self.path, indices, self.resize)
        return to_signal(frames, crop_shape)


BIKES = "video/bikes.mp4"


class _VideoPaper(PaperDataModule):
    """Shared parts of the paper videos: processed frames cached as a uint8 ``.npy``."""

    shape: tuple[int, int, int]

    def __init__(self, crop: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.crop = crop

    def paper_spec(self) -> SignalSpec:
        return SignalSpec(_check_crop(self.crop, self.shape), 3, "video", 1.0)

    def load_frames(self, path: Path) -> np.ndarray:
        self.verify(path)
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path} is truncated or corrupt ({e}); delete it and prepare it "
                            f"again") from None
        if arr.dtype != np.uint8 or tuple(arr.shape) != (*self.shape, 3):
            raise DataError(f"{path} holds {arr.dtype} {tuple(arr.shape)}, expected uint8 "
                            f"{(*self.shape, 3)}; delete it and prepare it again")
        return arr

    def load_paper(self) -> torch.Tensor:
        arr = self.load_frames(self.paper_files()[0])
        return to_signal(arr, _check_crop(self.crop, self.shape))

    def make_sample(self) -> SignalDataModule:
        return VideoDataModule(path=str(sample_file(BIKES)), crop=self.crop)

    def describe(self) -> str:
        return self._sample.describe() if self.uses_sample else self.dataset


def save_npy(path: Path, arr: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, arr)
    atomic_write_bytes(path, buffer.getvalue())


SIREN_DATA = "https://drive.google.com/drive/folders/1_iq__37-hw7FJOEUK1tX7mdp8SKB368K"


@register_datamodule(name="cat_video")
class CatVideoDataModule(_VideoPaper):
    """Sitzmann et al.'s cat video (Ehlers, 2019): 300 frames of 512x512 RGB (ASMR paper
    sec. 4.3, appendix F, Table 10). SIREN's authors distribute it as ``video_512.npy`` (uint8
    ``(300, 512, 512, 3)``) in their Google Drive data folder, which cannot be fetched by a
    script: put ``video_512.npy`` (or the same frames as ``cat_video.mp4``) into
    ``$INRBENCH_DATA/cat_video``. Its SHA-256 is recorded on the first load and verified after.
    ``crop: [H, W]`` or ``[T, H, W]``. Offline, the shipped ``bikes.mp4`` stands in.
    """

    dataset = "cat video (300x512x512)"
    subdir = "cat_video"
    auto_download = False
    manual_note = "SIREN's data folder; the file is video_512.npy"
    shape = (300, 512, 512)

    def urls(self) -> list[str]:
        return [SIREN_DATA]

    def _candidates(self) -> list[Path]:
        return [self.folder / "video_512.npy", self.folder / "cat_video.mp4"]

    def paper_files(self) -> list[Path]:
        found = [p for p in self._candidates() if p.exists()]
        return found[:1] or self._candidates()[:1]

    def fetch(self) -> None:
        raise self.missing_error()

    def load_paper(self) -> torch.Tensor:
        path = self.paper_files()[0]
        if path.suffix == ".npy":
            arr = self.load_frames(path)
        else:
            self.verify(path)
            frames, h, w = mp4_header(path)
            if frames < self.shape[0] or (h, w) != self.shape[1:]:
                raise DataError(f"{path} is {frames}x{h}x{w}, expected {self.shape}")
            check_mp4(path)
            arr = read_mp4(path, range(self.shape[0]))
        if self.manifest._load().get(path.name) is None:
            self.manifest.record(path)  # first good load: later corruption is detected
        return to_signal(arr, _check_crop(self.crop, self.shape))


UVG_URL = "https://ultravideo.fi/video/{}_1920x1080_120fps_420_8bit_YUV_RAW.7z"
UVG_SEQUENCES = ("Beauty", "Bosphorus", "HoneyBee", "Jockey", "ReadySetGo", "ShakeNDry",
                 "YachtRide")
UVG_FRAMES = {"ShakeNDry": 300}  # raw 120 fps frames; the others have 600
UVG_FACTOR = 4


@register_datamodule(name="uvg")
class UVGDataModule(_VideoPaper):
    """One of the 7 UVG HD sequences (ASMR paper appendix G, Table 11), downsampled by 4 in
    time and space: every 4th raw frame from the first (120 -> 30 fps), 1920x1080 -> 480x270
    with Lanczos, as the official code: ``(150, 270, 480)``, ShakeNDry ``(75, 270, 480)``.

    ``prepare_data`` downloads ``<Sequence>_1920x1080_120fps_420_8bit_YUV_RAW.7z`` from
    ultravideo.fi (SHA-256 recorded on first download), unpacks the raw 8-bit 4:2:0 file
    (py7zr or the 7z tool), checks its exact size (1920*1080*1.5 bytes per frame), converts
    (BT.709 limited range) and stores ``<Sequence>_150x270x480.npy`` (uint8), then deletes the
    1.9 GB raw file. Offline, the shipped ``bikes.mp4`` stands in.
    """

    subdir = "uvg"

    def __init__(self, sequence: str = "Beauty", keep_raw: bool = False, **kwargs):
        names = {s.lower(): s for s in UVG_SEQUENCES}
        if str(sequence).lower() not in names:
            raise ConfigError(f"data.sequence must be one of {', '.join(UVG_SEQUENCES)}, got "
                              f"{sequence!r}")
        self.sequence = names[str(sequence).lower()]
        raw_frames = UVG_FRAMES.get(self.sequence, 600)
        self.raw_frames = raw_frames
        self.shape = (raw_frames // UVG_FACTOR, 1080 // UVG_FACTOR, 1920 // UVG_FACTOR)
        self.dataset = f"UVG {self.sequence}"
        self.keep_raw = bool(keep_raw)
        super().__init__(**kwargs)
        self.archive = self.folder / UVG_URL.format(self.sequence).rsplit("/", 1)[1]
        t, h, w = self.shape
        self.file = self.folder / f"{self.sequence}_{t}x{h}x{w}.npy"

    def urls(self) -> list[str]:
        return [UVG_URL.format(self.sequence)]

    def paper_files(self) -> list[Path]:
        return [self.file]

    def fetch(self) -> None:
        if not self.archive.exists():
            fetch_url(self.urls()[0], self.archive)
            self.manifest.record(self.archive)
        self.verify(self.archive)
        raw_dir = self.folder / f"{self.sequence}_raw"
        yuvs = sorted(raw_dir.glob("*.yuv"))
        if not yuvs:
            extract(self.archive, raw_dir)
            yuvs = sorted(raw_dir.glob("**/*.yuv"))
        if len(yuvs) != 1:
            raise DataError(f"expected one .yuv file in {self.archive}, found {len(yuvs)}")
        frames = yuv_frame_count(yuvs[0], (1080, 1920))
        if frames != self.raw_frames:
            raise DataError(f"{yuvs[0]} has {frames} frames, UVG {self.sequence} has "
                            f"{self.raw_frames} (truncated?); delete it and the archive")
        indices = range(0, self.raw_frames, UVG_FACTOR)
        arr = read_yuv(yuvs[0], (1080, 1920), indices, "bt709", self.shape[1:])
        save_npy(self.file, arr)
        self.manifest.record(self.file)
        if not self.keep_raw:
            for f in raw_dir.glob("**/*"):
                if f.is_file():
                    f.unlink()
