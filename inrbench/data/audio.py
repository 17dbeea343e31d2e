"""Audio: any local WAV/FLAC (``audio``) and LibriSpeech test-clean (``librispeech``).

Signals are mono waveforms of shape ``(T,)`` with one channel, values in [-1, 1] as
soundfile decodes 16-bit PCM (``int / 32768``), so ``data_range`` is 2.

**Audio PSNR convention** (ASMR paper Table 4, official ``AudioFileDataset`` with
``data_range: 2``): ``PSNR = 10 log10(2^2 / MSE)`` over the whole clip, on the raw waveform
in [-1, 1] (no per-clip peak normalisation), the prediction clamped to [-1, 1]. This equals
the PSNR with peak 1 of the waveform rescaled to [0, 1]; using peak 1 on [-1, 1] values
instead would read 20 log10(2) = 6.02 dB lower for the same fit, so compare only numbers
computed with the same convention.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.fetch import PaperDataModule, check_archive, extract, fetch_url, sample_file
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError
from inrbench.io import atomic_write_text

AUDIO_RANGE = 2.0  # [-1, 1]


def audio_info(path: Path) -> tuple[int, int]:
    """(frames, sample rate) from the file header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file {path} does not exist; pass an existing WAV/FLAC as "
                        f"data.path=FILE")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"cannot read {path} as audio ({e}); is it a WAV/FLAC file?") from None
    frames = int(info.frames)
    declared = _wav_declared_frames(path) if info.format == "WAV" else None
    if frames == 0 or (declared is not None and declared != frames):
        raise DataError(f"{path} is truncated or corrupt: {frames} samples readable"
                        + (f", its header declares {declared}" if declared else "")
                        + "; replace the file")
    return frames, int(info.samplerate)


def _wav_declared_frames(path: Path) -> int | None:
    """The frame count a PCM WAV header declares (libsndfile reports what the file holds)."""
    try:
        with wave.open(str(path)) as w:
            return w.getnframes()
    except (wave.Error, EOFError, OSError):
        return None


def read_audio(path: Path, frames: int | None = None, offset: int = 0) -> torch.Tensor:
    """``(T, 1)`` float32 in [-1, 1], channels averaged to mono. The whole file is decoded (a
    clip is small), so a truncated or corrupt file raises a DataError naming it even when the
    requested window would still decode."""
    path = Path(path)
    declared, _ = audio_info(path)
    try:
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); replace the file") from None
    if data.shape[0] != declared:
        raise DataError(f"{path} decoded to {data.shape[0]} samples, its header declares "
                        f"{declared} (truncated or corrupt file); replace the file")
    end = declared if frames is None else offset + frames
    if end > declared:
        raise DataError(f"{path} has {declared} samples, {end} needed")
    if not np.isfinite(data).all():
        raise DataError(f"{path} decodes to non-finite samples (corrupt file)")
    return torch.from_numpy(np.ascontiguousarray(data[offset:end].mean(axis=1, keepdims=True)))


@register_datamodule(name="audio")
class AudioDataModule(SignalDataModule):
    """A local WAV/FLAC: ``--data audio data.path=clip.wav [data.seconds=2] [data.offset=0]``.

    ``seconds`` keeps the first seconds (after ``offset`` seconds), as appendix D keeps the
    first 2 s of each LibriSpeech utterance; the sample rate is the file's.
    """

    def __init__(self, path: str | None = None, seconds: float | None = None,
                 offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if path is None:
            raise ConfigError("data 'audio' needs a file: add data.path=/path/to/clip.wav "
                              "(or .flac); a real sample ships in datasets/samples/speech/")
        if seconds is not None and seconds <= 0:
            raise ConfigError(f"data.seconds must be positive, got {seconds}")
        if offset < 0:
            raise ConfigError(f"data.offset must be >= 0 seconds, got {offset}")
        self.path = Path(path).expanduser()
        self.seconds, self.offset = seconds, offset

    def describe(self) -> str:
        return f"audio {self.path}"

    def _window(self) -> tuple[int, int]:
        total, rate = audio_info(self.path)
        start = int(round(self.offset * rate))
        length = total - start if self.seconds is None else int(round(self.seconds * rate))
        if length < 1 or start + length > total:
            raise ConfigError(f"{self.path} has {total / rate:.2f} s; data.offset={self.offset} "
                              f"and data.seconds={self.seconds} do not fit in it")
        return start, length

    def spec(self) -> SignalSpec:
        return SignalSpec((self._window()[1],), 1, "audio", AUDIO_RANGE,
                          audio_info(self.path)[1])

    def load_signal(self) -> torch.Tensor:
        start, length = self._window()
        return read_audio(self.path, length, start)


LIBRISPEECH_URL = "https://www.openslr.org/resources/12/test-clean.tar.gz"
LIBRISPEECH_BYTES = 346_663_984
# MD5 published in openslr.org/resources/12/md5sum.txt; SHA-256 as torchaudio pins it
LIBRISPEECH_MD5 = "32fa31d27d2e1cad72775fee3f4849a9"
LIBRISPEECH_SHA256 = "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"
LIBRISPEECH_RATE = 16_000
SPEECH_SAMPLES = "speech"


def select_utterances(flacs: list[Path], count: int = 100, min_frames: int = 32_000) -> list:
    """Appendix D: the first ``count`` utterances of at least ``min_frames`` samples, in the order
    torchaudio's ``LIBRISPEECH`` walks them (sorted file stems), which the official code used."""
    chosen = []
    for f in sorted(flacs, key=lambda p: p.stem):
        frames, rate = audio_info(f)
        if rate != LIBRISPEECH_RATE:
            raise DataError(f"{f} has sample rate {rate}, LibriSpeech is {LIBRISPEECH_RATE} Hz")
        if frames >= min_frames:
            chosen.append({"file": f.name, "path": str(f), "frames": frames})
            if len(chosen) == count:
                break
    return chosen


@register_datamodule(name="librispeech")
class LibriSpeechDataModule(PaperDataModule):
    """LibriSpeech test-clean (ASMR paper Table 4, appendix D): utterance ``k`` (0..99) of the
    first 100 utterances lasting at least 2 s, its first 2 s at 16 kHz: shape ``(32000,)``.

    ``prepare_data`` downloads test-clean.tar.gz (346,663,984 bytes, MD5 published by OpenSLR,
    SHA-256 as torchaudio pins it) into ``$INRBENCH_DATA/librispeech``, extracts the FLACs,
    writes ``index.json`` with the 100 chosen utterances and records their SHA-256, which every
    load verifies. Offline, the five LibriVox clips shipped in ``datasets/samples/speech``
    (same source and rate) stand in, ``utterance`` picking one of them (0..4).
    """

    dataset = "LibriSpeech test-clean"
    subdir = "librispeech"

    def __init__(self, utterance: int = 0, seconds: float = 2.0, count: int = 100, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= int(utterance) < int(count):
            raise ConfigError(f"data.utterance must be 0..{count - 1}, got {utterance}")
        if seconds <= 0:
            raise ConfigError(f"data.seconds must be positive, got {seconds}")
        self.utterance, self.seconds, self.count = int(utterance), float(seconds), int(count)
        self.frames = int(round(self.seconds * LIBRISPEECH_RATE))
        self.archive = self.folder / "test-clean.tar.gz"
        self.index = self.folder / "index.json"

    def describe(self) -> str:
        if self.uses_sample:
            return self._sample.describe()
        return f"librispeech test-clean utterance {self.utterance}"

    def urls(self) -> list[str]:
        return [LIBRISPEECH_URL]

    def paper_files(self) -> list[Path]:
        return [self.index]

    def paper_spec(self) -> SignalSpec:
        return SignalSpec((self.frames,), 1, "audio", AUDIO_RANGE, LIBRISPEECH_RATE)

    def fetch(self) -> None:
        if not self.archive.exists():
            fetch_url(LIBRISPEECH_URL, self.archive, LIBRISPEECH_BYTES, LIBRISPEECH_MD5,
                      LIBRISPEECH_SHA256)
        else:
            check_archive(self.archive, LIBRISPEECH_BYTES, sha256=LIBRISPEECH_SHA256)
        self.manifest.record(self.archive)
        extract(self.archive, self.folder)
        self.build_index()

    def build_index(self) -> None:
        """Choose the utterances from the extracted tree and record their checksums."""
        tree = self.folder / "LibriSpeech" / "test-clean"
        flacs = list(tree.glob("*/*/*.flac"))
        if not flacs:
            raise self.missing_error(f" (no FLAC files under {tree})")
        chosen = select_utterances(flacs, self.count, self.frames)
        if len(chosen) < self.count:
            raise DataError(f"only {len(chosen)} utterances of >= {self.seconds} s under {tree}, "
                            f"expected {self.count} (incomplete extraction?)")
        for entry in chosen:
            self.manifest.record(Path(entry["path"]))
            entry["path"] = str(Path(entry["path"]).relative_to(self.folder))
        atomic_write_text(self.index, json.dumps(chosen, indent=1))

    def files_read(self) -> list[Path]:
        """The chosen utterance's FLAC (and the index naming it), or the stand-in clip."""
        if self.uses_sample:
            return super().files_read()
        try:
            entry = json.loads(self.index.read_text())[self.utterance]
            return [self.index, self.folder / entry["path"]]
        except (OSError, ValueError, IndexError, KeyError):
            return [self.index]  # load_paper reports what is wrong

    def load_paper(self) -> torch.Tensor:
        try:
            chosen = json.loads(self.index.read_text())
            entry = chosen[self.utterance]
        except (ValueError, IndexError, KeyError) as e:
            raise DataError(f"{self.index} is corrupt ({e}); delete it and run again to "
                            f"rebuild it") from None
        path = self.folder / entry["path"]
        if not path.exists():
            raise self.missing_error(f" ({entry['path']} listed in index.json is missing)")
        self.verify(path)
        return read_audio(path, self.frames)

    def make_sample(self) -> SignalDataModule:
        clips = sorted(sample_file(SPEECH_SAMPLES + "/transcription").parent.glob("*.wav"))
        if self.utterance >= len(clips):
            raise ConfigError(f"{self.dataset} is not available and the shipped sample has "
                              f"{len(clips)} clips; data.utterance must be 0..{len(clips) - 1} "
                              f"offline (got {self.utterance})")
        return AudioDataModule(path=str(clips[self.utterance]), seconds=self.seconds)
