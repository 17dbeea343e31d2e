"""Records say which data a run saw: files read (path, size, SHA-256), paper data
set or stand-in; only "no route"/"no name" counts as offline; Kodak falls back like the
other paper data sets and downloads nothing unless asked."""

import errno
import hashlib
import json
import socket
import ssl
import urllib.error
import urllib.request

import pytest
import yaml

import inrbench.data.fetch as fetch_mod
from inrbench.data import create_datamodule
from inrbench.data.provenance import data_record
from inrbench.errors import DataError
from inrbench.run import run


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty cache and a network that answers every request with "name not known"."""
    monkeypatch.setenv("INRBENCH_DATA", str(tmp_path / "cache"))
    calls = []

    def urlopen(req, *a, **k):
        calls.append(getattr(req, "full_url", req))
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls


def test_cameraman_is_the_paper_image_with_its_file_hashed():
    rec = data_record(create_datamodule("cameraman"))
    assert rec["source"] == "paper" and rec["stands_in_for"] is None
    (f,) = rec["files"]
    from pathlib import Path
    path = Path(f["path"])
    assert path.name == "camera.png"
    assert f["bytes"] == path.stat().st_size and f["sha256"] == digest(path)


def test_librispeech_offline_is_a_labelled_stand_in(no_network, capsys):
    dm = create_datamodule("librispeech", utterance=2)
    rec = data_record(dm)
    assert rec["source"] == "stand-in" and rec["stands_in_for"] == "LibriSpeech test-clean"
    assert "offline" in rec["reason"]
    (f,) = rec["files"]
    assert f["path"].endswith("sense_and_sensibility_01_austen_64kb-0890.wav")
    assert f["sha256"] == "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10"
    assert "using the shipped sample" in capsys.readouterr().err


def test_user_file_is_labelled_user(small_png):
    rec = data_record(create_datamodule("image", path=str(small_png)))
    assert rec["source"] == "user"
    assert rec["files"][0]["sha256"] == digest(small_png)


# -- what counts as offline -------------------------------------------------------------------

@pytest.mark.parametrize("exc,offline", [
    (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), True),
    (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), True),
    (urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable")), True),
    (OSError(errno.EHOSTUNREACH, "No route to host"), True),
    (urllib.error.URLError(ssl.SSLError(1, "CERTIFICATE_VERIFY_FAILED")), False),
    (urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "refused")), False),
    (urllib.error.URLError(OSError("Tunnel connection failed: 407 Proxy Auth")), False),
    (TimeoutError("timed out"), False),
])
def test_only_no_name_and_no_route_count_as_offline(exc, offline):
    assert fetch_mod.is_offline(exc) is offline


@pytest.mark.parametrize("exc", [
    urllib.error.URLError(ssl.SSLError(1, "CERTIFICATE_VERIFY_FAILED")),
    TimeoutError("timed out"),
    urllib.error.HTTPError("https://x/y", 404, "Not Found", {}, None),
])
def test_other_network_errors_are_errors_not_a_silent_fallback(exc, tmp_path, monkeypatch):
    monkeypatch.setenv("INRBENCH_DATA", str(tmp_path / "cache"))

    def urlopen(*a, **k):
        raise exc

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    dm = create_datamodule("librispeech")  # download and fallback both allowed
    with pytest.raises(DataError, match="openslr.org") as err:
        dm.spec()
    assert "data.download=false" in str(err.value)  # the way to the shipped sample


# -- Kodak ------------------------------------------------------------------------------------

def test_kodak_downloads_nothing_unless_asked_and_falls_back(no_network, capsys):
    dm = create_datamodule("kodak", image=4)
    spec = dm.spec()
    assert no_network == []  # not even a probe
    assert spec.shape == (768, 512) and spec.channels == 3  # the portrait image's shape
    dm.setup()
    assert dm.signal.shape == (768, 512, 3) and float(dm.signal.std()) > 0.05
    rec = data_record(dm)
    assert rec["source"] == "stand-in" and rec["stands_in_for"] == "Kodak"
    assert rec["files"][0]["path"].endswith("Kleiber_by_Lukas_Baubkus.jpg")
    assert "data.fallback=false" in capsys.readouterr().err


def test_kodak_download_true_offline_probes_then_falls_back(no_network):
    dm = create_datamodule("kodak", image=1, download=True)
    assert dm.spec().shape == (512, 768)
    assert no_network and "kodim01.png" in no_network[0]
    assert data_record(dm)["source"] == "stand-in"


def test_kodak_without_fallback_names_url_and_folder(no_network):
    dm = create_datamodule("kodak", image=7, fallback=False)
    with pytest.raises(DataError) as err:
        dm.spec()
    msg = str(err.value)
    assert "https://r0k.us/graphics/kodak/kodak/kodim07.png" in msg
    assert str(dm.folder) in msg and "kodim07.png" in msg


def test_kodak_file_in_the_cache_is_the_paper_data(tmp_path, monkeypatch, no_network):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "cache" / "kodak"
    folder.mkdir(parents=True)
    path = folder / "kodim02.png"
    Image.fromarray(np.full((512, 768, 3), 90, np.uint8)).save(path)
    dm = create_datamodule("kodak", image=2)
    rec = data_record(dm)
    assert rec["source"] == "paper" and rec["files"][0]["sha256"] == digest(path)
    dm.setup()
    assert dm.signal.shape == (512, 768, 3)


# -- the record in a run's folder ---------------------------------------------------------

def test_run_records_the_data_in_metrics_and_config_and_resume_checks_it(tmp_path, small_png,
                                                                         tiny_cfg, capsys):
    out = tmp_path / "run"
    run(tiny_cfg(small_png, out, steps=3))
    summary = json.loads((out / "metrics.json").read_text())
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    expected = {"path": str(small_png.resolve()), "bytes": small_png.stat().st_size,
                "sha256": digest(small_png)}
    assert summary["data_source"] == "user" and summary["data_files"] == [expected]
    assert cfg["data_record"]["source"] == "user" and cfg["data_record"]["files"] == [expected]
    # the file changes under the run: --resume refuses instead of mixing two signals
    from PIL import Image
    with Image.open(small_png) as im:
        im.transpose(Image.FLIP_LEFT_RIGHT).save(small_png)
    from inrbench.cli import main
    assert main(["run", "--out", str(out), "--resume"]) == 2
    assert "--resume: the run started on user data" in capsys.readouterr().err
