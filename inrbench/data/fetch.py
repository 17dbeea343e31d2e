"""Large downloads, archive extraction, shipped samples and the offline fallback.

``inrbench.data.download`` covers small files (read into memory). The papers' data sets are
hundreds of MB to GB, so :func:`fetch_url` streams to a ``.part`` file, checks the published
size, MD5 and/or SHA-256 on the fly and renames only a verified file into place.

:class:`PaperDataModule` is the base of every paper data set (LibriSpeech, Pluto, the cat video,
UVG, ShapeNet, CIFAR-10). It decides once, *before* the model is built, where the signal comes
from, because the model's shape depends on it:

1. the paper's files are in the cache folder -> use them;
2. they are missing but ``download=True`` and the server answers -> use the paper data set;
   ``prepare_data`` (called by Lightning before ``setup``) downloads and prepares it;
3. otherwise, with ``fallback=True``, the real sample of the same modality shipped in
   ``datasets/samples/`` is used and one line says so;
4. otherwise a :class:`DataError` names the URL, the folder and the files expected.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from inrbench.data.base import SignalDataModule, SignalSpec, files_of
from inrbench.data.download import Manifest, data_root
from inrbench.errors import DataError


def samples_root() -> Path:
    """``$INRBENCH_SAMPLES``, else ``datasets/samples`` of the repository."""
    env = os.environ.get("INRBENCH_SAMPLES")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "datasets" / "samples"


def sample_file(relative: str) -> Path:
    """A shipped sample file; a DataError when the repository's ``datasets/`` is not there."""
    path = samples_root() / relative
    if not path.is_file():
        raise DataError(f"the shipped sample {relative} is missing from {samples_root()}; run "
                        f"from a checkout of the inrbench repository (datasets/samples/) or set "
                        f"INRBENCH_SAMPLES to a folder holding it")
    return path


# some servers (Wikimedia) refuse urllib's default agent; say who is asking
USER_AGENT = "inrbench/0.1 (INR benchmark data download; Python urllib)"


# errno values that mean "this machine has no network path there" (no route, network down)
NO_ROUTE_ERRNOS = {getattr(errno, n) for n in ("ENETUNREACH", "EHOSTUNREACH", "ENETDOWN")
                   if hasattr(errno, n)}


def is_offline(exc: BaseException) -> bool:
    """True for the two failures that mean "offline": the name does not resolve (DNS:
    ``socket.gaierror``) or there is no route to the network (ENETUNREACH, EHOSTUNREACH,
    ENETDOWN). Anything else (a proxy refusing, TLS, a timeout, refused connections, HTTP
    errors) is a real problem a user must see, not a reason to fall back quietly."""
    reason = getattr(exc, "reason", exc) if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and getattr(reason, "errno", None) in NO_ROUTE_ERRNOS


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url``'s server answers a HEAD request (a cheap probe; offline it fails at
    once). False only when offline (:func:`is_offline`); an HTTP error other than 404/410
    still means the server is there (some refuse HEAD), and the download itself then reports
    what goes wrong. Any other failure is a DataError naming the URL and the fix."""
    try:
        req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(req, timeout=timeout):
            return True
    except urllib.error.HTTPError as e:
        if e.code not in (404, 410):
            return True
        raise DataError(f"{url} answered HTTP {e.code} (the file has moved or gone); download "
                        f"the data set by hand, or set data.download=false to use the shipped "
                        f"sample") from None
    except Exception as e:  # noqa: BLE001 - sorted into offline / real error below
        if is_offline(e):
            return False
        raise DataError(f"could not reach {url} ({type(e).__name__}: {e}): a network problem "
                        f"other than being offline (proxy, TLS, timeout); fix it, or set "
                        f"data.download=false to use the shipped sample (or "
                        f"data.fallback=false to require the data set)") from None


def fetch_url(url: str, dest: Path, size: int | None = None, md5: str | None = None,
              sha256: str | None = None, headers: dict | None = None,
              timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` with size/checksum checks; the file appears only if valid."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h_md5, h_sha = hashlib.md5(), hashlib.sha256()
    got = 0
    try:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        with urllib.request.urlopen(req, timeout=timeout) as r, open(part, "wb") as f:
            for block in iter(lambda: r.read(1 << 22), b""):
                f.write(block)
                h_md5.update(block)
                h_sha.update(block)
                got += len(block)
    except Exception as e:  # noqa: BLE001 - any network failure means the same to the user
        part.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({type(e).__name__}: {e}); download it by hand and put it "
            f"at {dest} (folder {dest.parent}; set INRBENCH_DATA to use another cache folder)"
        ) from None
    problem = None
    if size is not None and got != size:
        problem = f"{got} bytes, expected {size} (truncated download?)"
    elif md5 is not None and h_md5.hexdigest() != md5:
        problem = f"MD5 {h_md5.hexdigest()}, expected the published {md5}"
    elif sha256 is not None and h_sha.hexdigest() != sha256:
        problem = f"SHA-256 {h_sha.hexdigest()}, expected {sha256}"
    if problem:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} is corrupt: {problem}; try again, or put a good copy "
                        f"at {dest}")
    os.replace(part, dest)
    return dest


def check_archive(path: Path, size: int | None = None, md5: str | None = None,
                  sha256: str | None = None) -> None:
    """Verify an archive already on disk (a user may have copied it by hand)."""
    problem = None
    actual = path.stat().st_size
    if size is not None and actual != size:
        problem = f"has {actual} bytes, expected {size} (truncated?)"
    else:
        for algo, expected in (("md5", md5), ("sha256", sha256)):
            if expected is None:
                continue
            h = hashlib.new(algo)
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            if h.hexdigest() != expected:
                problem = f"has {algo.upper()} {h.hexdigest()}, expected {expected} (corrupt)"
                break
    if problem:
        raise DataError(f"{path} {problem}; delete it and download it again")


def extract(archive: Path, folder: Path, members: list[str] | None = None) -> None:
    """Unpack a .tar.gz / .zip / .7z into ``folder`` (only ``members`` if given)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as tar:
                chosen = ([tar.getmember(m) for m in members] if members is not None
                          else tar.getmembers())
                try:
                    tar.extractall(folder, members=chosen, filter="data")
                except TypeError:  # Python without extraction filters
                    tar.extractall(folder, members=chosen)  # noqa: S202
        elif name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(folder, members=members)
        elif name.endswith(".7z"):
            _extract_7z(archive, folder)
        else:
            raise DataError(f"do not know how to unpack {archive}")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise DataError(f"cannot unpack {archive} ({type(e).__name__}: {e}); the archive is "
                        f"truncated or corrupt: delete it and download it again") from None


def _extract_7z(archive: Path, folder: Path) -> None:
    try:
        import py7zr  # noqa: PLC0415 - optional
    except ImportError:
        py7zr = None
    if py7zr is not None:
        with py7zr.SevenZipFile(archive) as z:
            z.extractall(folder)
        return
    tool = shutil.which("7z") or shutil.which("7za") or shutil.which("7zr")
    if tool is None:
        raise DataError(f"{archive} is a 7-Zip archive: pip install py7zr (or install the 7z "
                        f"tool), or unpack it by hand into {folder}")
    out = subprocess.run([tool, "x", "-y", f"-o{folder}", str(archive)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise DataError(f"7z could not unpack {archive}: {out.stderr.strip()[-300:]}")


@dataclass
class Resolution:
    source: str  # "paper", "sample" (shipped stand-in) or "file" (the user's own file)
    reason: str = ""


class PaperDataModule(SignalDataModule):
    """Base of the papers' data sets: cache folder, download, verification, shipped sample.

    Subclasses set ``dataset`` (a human name) and ``subdir`` and implement ``paper_spec``,
    ``paper_files`` (what must exist once prepared), ``urls``, ``fetch`` (download + prepare,
    the real code) and ``load_paper``; ``make_sample`` builds the module of the shipped sample.
    ``download``: may fetch the data set; ``fallback``: use the shipped sample when the data
    set cannot be had; ``root``: cache folder (default ``$INRBENCH_DATA/<subdir>``).
    """

    dataset = "data set"
    subdir = "data"
    auto_download = True  # False when the files must be fetched by hand (login, Drive folder)
    manual_note = ""  # how to get the files by hand

    def __init__(self, root: str | None = None, download: bool = True, fallback: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.folder = Path(root).expanduser() if root else data_root() / self.subdir
        self.download, self.fallback = bool(download), bool(fallback)
        self.manifest = Manifest(self.folder)
        self._resolution: Resolution | None = None
        self._sample: SignalDataModule | None = None

    # -- to implement -----------------------------------------------------------------------
    def paper_spec(self) -> SignalSpec:
        raise NotImplementedError

    def paper_files(self) -> list[Path]:
        raise NotImplementedError

    def urls(self) -> list[str]:
        raise NotImplementedError

    def fetch(self) -> None:
        raise NotImplementedError

    def load_paper(self):
        raise NotImplementedError

    def make_sample(self) -> SignalDataModule:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def missing(self) -> list[Path]:
        return [f for f in self.paper_files() if not f.exists()]

    def missing_error(self, extra: str = "") -> DataError:
        files = ", ".join(str(f.relative_to(self.folder)) if f.is_relative_to(self.folder)
                          else str(f) for f in self.missing() or self.paper_files())
        how = f"download {' and '.join(self.urls())}"
        if self.manual_note:
            how += f" ({self.manual_note})"
        return DataError(f"{self.dataset}: files missing in {self.folder}: {files}; {how} and "
                         f"prepare them there (run with network access and data.download=true, "
                         f"or set INRBENCH_DATA / data.root){extra}")

    def resolve(self) -> Resolution:
        """Paper data set or shipped sample; decided once, announced once."""
        if self._resolution is not None:
            return self._resolution
        if not self.missing():
            self._resolution = Resolution("paper")
        elif self.download and self.auto_download and any(reachable(u) for u in self.urls()):
            self._resolution = Resolution("paper", "to download")
        elif self.fallback:
            why = ("offline: no network route or name" if self.download and self.auto_download
                   else "data.download=false" if not self.download else "manual download needed")
            self._sample = self.make_sample()
            self._resolution = Resolution("sample", why)
            spec = self._sample.spec()
            print(f"inrbench: {self.dataset} is not in {self.folder} ({why}); using the shipped "
                  f"sample {self._sample.describe()} instead, shape {tuple(spec.shape)} x "
                  f"{spec.channels} -- results are not comparable with the paper's "
                  f"(data.fallback=false makes this an error)", file=sys.stderr, flush=True)
        else:
            raise self.missing_error()
        return self._resolution

    def files_read(self) -> list[Path]:
        """The files the signal is read from (recorded by ``inrbench.data.provenance``): the
        stand-in's, or the paper data set's prepared files (subclasses narrow this to the one
        item they load)."""
        if self.uses_sample:
            return files_of(self._sample)
        return self.paper_files()

    @property
    def uses_sample(self) -> bool:
        """True when a delegate module (shipped sample or user file) provides the signal."""
        return self.resolve().source != "paper"

    def spec(self) -> SignalSpec:
        if self.uses_sample:
            return self._sample.spec()
        return self.paper_spec()

    def prepare_data(self) -> None:
        if self.uses_sample or not self.missing():
            return
        if not (self.download and self.auto_download):
            raise self.missing_error()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fetch()
        if self.missing():
            raise self.missing_error(" (the download finished but did not produce them)")

    def load_signal(self):
        if self.uses_sample:
            return self._sample.load_signal()
        if self.missing():
            raise self.missing_error()
        return self.load_paper()

    def verify(self, path: Path) -> None:
        """Size and SHA-256 against the manifest (published or recorded at download)."""
        self.manifest.verify(path)
