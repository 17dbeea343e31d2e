"""Files from elsewhere never run code, and their sizes are checked before anything is
allocated: a checkpoint holding a pickled payload, a bitstream or a run's config.yaml or a
sweep file naming ``os:system``, ``--model os:system`` itself, a bitstream declaring 2^40
weights or a 100000x100000 image. Each payload would create a marker file; it must not exist
afterwards, and each refusal is one line with exit status 2.

A plain-PyTorch plugin (an ``nn.Module`` with only ``forward``, installed by entry point) goes
through every tool as a built-in does: fit, QAT, compress, decompress, bench, sweep, compare,
and the refusals of meta and hypernet name it as the user does."""

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inrbench import plugins
from inrbench.cli import main
from inrbench.compress import compress_run, decode_file, load_run
from inrbench.compression.bitstream import MAGIC, VERSION, Entry, encode, read_header
from inrbench.compression.quant import plain_state_dict
from inrbench.contract import check_model
from inrbench.models.registry import MODELS

TINY = ["trainer.logger=none", "trainer.progress_bar=false", "trainer.latency_repeats=1",
        "trainer.latency_warmup=0", "trainer.checkpoint_every=50", "task.eval_every=50"]
ROOT = Path(__file__).resolve().parents[1]

PLAIN = '''
import torch
from torch import nn


class PlainNet(nn.Module):
    """A plain-PyTorch network: only forward(coords), no inrbench base class."""

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden: int = 16):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.layers = nn.ModuleList([nn.Linear(in_features, hidden), nn.Linear(hidden, hidden),
                                     nn.Linear(hidden, out_features)])

    def forward(self, coords):
        x = coords
        for layer in self.layers[:-1]:
            x = torch.sin(3.0 * layer(x))
        return self.layers[-1](x)


class OneD(nn.Module):
    """Refuses every signal: no dimensionality accepts it."""

    def __init__(self, in_features: int = 2, out_features: int = 1):
        super().__init__()
        from inrbench.errors import ConfigError

        raise ConfigError(f"oned takes no {in_features}-D signal")
'''


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]



@contextlib.contextmanager
def _plugins_loaded():
    """The installed plugins loaded for one test; the registries as they were afterwards."""
    before = dict(MODELS._entries)
    plugins.load_plugins(reload=True)
    try:
        yield
    finally:
        MODELS._entries.clear()
        MODELS._entries.update(before)
        plugins.PROBLEMS.clear()
        plugins._state.clear()

@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``plain`` (PlainNet) and ``oned`` installed by entry point, with a conf folder giving
    plain's fitting rate; the registries are restored afterwards."""
    site = tmp_path / "site"
    pkg = site / "plain_inr"
    (pkg / "conf" / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text(PLAIN)
    (pkg / "conf" / "model" / "plain.yaml").write_text(
        "model:\n  name: plain\n  hidden: 16\ntask:\n  lr: 0.0123\n")
    info = site / "plain_inr-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plain-inr\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[inrbench.models]\nplain = plain_inr:PlainNet\noned = plain_inr:OneD\n\n"
        "[inrbench.conf]\nplain_inr = plain_inr\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site),
                                                      os.environ.get("PYTHONPATH", "")]))
    with _plugins_loaded():
        yield site


@pytest.fixture(scope="module")
def siren_run(tmp_path_factory):
    """A finished tiny SIREN run, copied by the tests that tamper with it."""
    from skimage import data

    root = tmp_path_factory.mktemp("siren")
    png = root / "small.png"
    Image.fromarray(data.astronaut()[200:264:2, 150:246:2]).save(png)
    out = root / "run"
    assert main(["run", "--model", "siren", "--data", "image", f"data.path={png}", "--steps",
                 "2", "--out", str(out), *TINY, "model.hidden_dim=8", "model.n_layers=3"]) == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "shared"
    shutil.copytree(run, dst)
    return dst


class Payload:
    """Unpickling it touches the marker (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


# -- no file the suite reads runs code ------------------------------------------------------

def test_compress_reads_a_pickled_checkpoint_without_running_it(siren_run, tmp_path, capsys):
    run = _copy(siren_run, tmp_path)
    marker = tmp_path / "marker"
    ckpt = run / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "payload": Payload(marker)}, ckpt)
    assert main(["compress", str(run)]) == 2
    line = one_line_error(capsys)
    assert "cannot read checkpoint" in line and "last.ckpt" in line
    assert not marker.exists()
    assert not (run / "compressed").exists()


def _file_naming(model: dict, path: Path) -> Path:
    signal = {"shape": [4, 4], "channels": 1, "modality": "image", "data_range": 1.0}
    data, _ = encode(model, signal, [[]], "fixed")
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["os:system", "subprocess:getoutput"])
def test_decompress_of_a_header_naming_a_function_runs_nothing(name, tmp_path, capsys):
    marker = tmp_path / "marker"
    key = "command" if name == "os:system" else "cmd"
    f = _file_naming({"name": name, key: f"touch {marker}"}, tmp_path / "evil.inrb")
    assert main(["decompress", str(f)]) == 2
    line = one_line_error(capsys)
    assert f"model {name!r} is not registered" in line and "command line" in line
    assert not marker.exists()
    # naming it on the command line does not make a function a model either
    assert main(["decompress", str(f), "--model", name]) == 2
    assert "not a torch nn.Module subclass" in one_line_error(capsys)
    assert not marker.exists()


def test_resume_of_a_config_naming_a_function_runs_nothing(siren_run, tmp_path, capsys):
    run = _copy(siren_run, tmp_path)
    marker = tmp_path / "marker"
    cfg = (run / "config.yaml").read_text()
    cfg = cfg.replace("model:\n  name: siren", f"model:\n  command: touch {marker}\n"
                      f"  name: os:system", 1)
    assert "os:system" in cfg
    (run / "config.yaml").write_text(cfg)
    assert main(["run", "--out", str(run), "--resume", "--steps", "3"]) == 2
    line = one_line_error(capsys)
    assert "'os:system' is not registered" in line
    assert not marker.exists()
    # the folder's own files are all still there
    assert (run / "config.yaml").read_text() == cfg and (run / "checkpoints" / "last.ckpt").exists()


def test_model_os_system_on_the_command_line_is_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    assert main(["run", "--model", "os:system", "--data", "cameraman", "--steps", "1",
                 "--out", str(tmp_path / "r"), f"model.command=touch {marker}"]) == 2
    line = one_line_error(capsys)
    assert "--model os:system" in line and "not a torch nn.Module subclass" in line
    assert main(["profile", "--model", "builtins:print", "--data", "cameraman"]) == 2
    assert "not a torch nn.Module subclass" in one_line_error(capsys)
    assert main(["run", "--model", "siren", "--data", "os:system", "--dry-run"]) == 2
    assert "not a LightningDataModule subclass" in one_line_error(capsys)
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_a_sweep_file_naming_a_function_runs_nothing(tmp_path, small_png, capsys):
    marker = tmp_path / "marker"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(textwrap.dedent(f"""\
        name: evil
        method: grid
        metric: {{name: best_psnr, goal: maximize}}
        parameters:
          model.name: {{value: "os:system"}}
          model.command: {{value: "touch {marker}"}}
          data.name: {{value: image}}
          data.path: {{value: "{small_png}"}}
          task.steps: {{value: 1}}
        """))
    assert main(["sweep", str(sweep), "--local", "--out", str(tmp_path / "sw"),
                 "--logger", "none"]) == 2
    line = one_line_error(capsys)
    assert "model.name 'os:system' is a module:Name reference" in line
    assert not marker.exists() and not (tmp_path / "sw").exists()


def test_an_experiment_file_naming_a_function_runs_nothing(tmp_path, monkeypatch, capsys):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    marker = tmp_path / "marker"
    (conf / "experiment" / "evil.yaml").write_text(textwrap.dedent(f"""\
        title: evil
        source: nowhere
        units: {{params: K, macs: K, psnr: dB}}
        rows:
          - id: r1
            model: {{name: "os:system", command: "touch {marker}"}}
            data: {{name: cameraman}}
            task: {{steps: 1}}
            paper: {{params: "1", macs: "1", psnr: "1"}}
        """))
    monkeypatch.setenv("INRBENCH_CONF", str(conf))
    status = main(["run", "--experiment", "evil", "--out", str(tmp_path / "e"), *TINY])
    out = capsys.readouterr()
    assert status != 0 and "'os:system' is not registered" in out.out + out.err
    assert not marker.exists()


def test_a_reference_is_trusted_only_from_the_command_line(plugin, small_png, tmp_path, capsys):
    """A run of --model module:Class resumes only when the user names the class again."""
    out = tmp_path / "ref"
    argv = ["run", "--model", "plain_inr:PlainNet", "--data", "image", f"data.path={small_png}",
            "--steps", "2", "--out", str(out), *TINY]
    assert main(argv) == 0
    MODELS._entries.pop("plain_inr:PlainNet")  # as a new process starts
    assert main(["run", "--out", str(out), "--resume", "--steps", "3"]) == 2
    assert "give --model plain_inr:PlainNet on the command line" in one_line_error(capsys)
    assert main(["run", "--model", "plain_inr:PlainNet", "--out", str(out), "--resume",
                 "--steps", "3", *TINY]) == 0
    MODELS._entries.pop("plain_inr:PlainNet")
    capsys.readouterr()
    assert main(["compress", str(out), "--method", "none"]) == 2
    assert "give --model plain_inr:PlainNet on the command line" in one_line_error(capsys)
    assert main(["compress", str(out), "--method", "none", "--model",
                 "plain_inr:PlainNet"]) == 0
    MODELS._entries.pop("plain_inr:PlainNet")
    f = str(out / "compressed" / "fp32.inrb")
    capsys.readouterr()
    assert main(["decompress", f]) == 2
    assert "give --model plain_inr:PlainNet on the command line" in one_line_error(capsys)
    assert main(["decompress", f, "--model", "plain_inr:PlainNet"]) == 0


# -- no size is trusted before it is checked -----------------------------------------------

def _siren_file(tmp_path: Path, signal_shape=(8, 8)) -> Path:
    from inrbench.models import create_model

    mk = {"name": "siren", "in_features": 2, "out_features": 1, "hidden_dim": 8, "n_layers": 3}
    model = create_model(**mk)
    signal = {"shape": list(signal_shape), "channels": 1, "modality": "image",
              "data_range": 1.0}
    entries = [Entry(n, t) for n, t in model.state_dict().items()]
    data, _ = encode(mk, signal, [entries], "fixed")
    path = tmp_path / "siren.inrb"
    path.write_bytes(data)
    return path


def _rewrite_header(path: Path, change) -> Path:
    """The file with its header changed by ``change(header)``, CRC and lengths made valid
    again: what a crafted file looks like."""
    data = path.read_bytes()
    header, pos = read_header(data)
    change(header)
    head = zlib.compress(json.dumps(header).encode())
    rest = struct.pack("<I", len(head)) + head + data[pos:]
    crc = zlib.crc32(rest, zlib.crc32(MAGIC + bytes([VERSION])))
    path.write_bytes(MAGIC + struct.pack("<BI", VERSION, crc) + rest)
    return path


def _measured(argv: list[str]) -> tuple[subprocess.CompletedProcess, int, float]:
    """``inrbench ARGV`` in a child of a fresh interpreter: its result, the child's peak RSS in
    bytes (ru_maxrss, the only child of that interpreter) and its wall time."""
    probe = ("import json, resource, subprocess, sys, time\n"
             "t = time.perf_counter()\n"
             "p = subprocess.run([sys.executable, '-m', 'inrbench.cli', *sys.argv[1:]],"
             " capture_output=True, text=True)\n"
             "print(json.dumps({'rc': p.returncode, 'err': p.stderr, 'wall': "
             "time.perf_counter() - t, 'rss_kib': "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rec = json.loads(done.stdout.strip().splitlines()[-1])
    proc = subprocess.CompletedProcess(argv, rec["rc"], "", rec["err"])
    return proc, rec["rss_kib"] * 1024, rec["wall"]


@pytest.mark.parametrize("what", ["weights", "pixels"])
def test_declared_sizes_are_refused_before_any_allocation(what, tmp_path):
    path = _siren_file(tmp_path)

    def huge(header):
        if what == "weights":  # a tensor of 2^40 weights, the chunk's length unchanged
            header["chunks"][0]["tensors"][0]["shape"] = [2**20, 2**20]
        else:
            header["signal"]["shape"] = [100_000, 100_000]

    _rewrite_header(path, huge)
    proc, rss, wall = _measured(["decompress", str(path), "--out", str(tmp_path / "x.png")])
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert ("declares 1,099,511,627," if what == "weights" else "--max-pixels") in err[0]
    assert rss < 2**30, f"peak RSS {rss / 2**20:.0f} MiB"
    assert wall < 120
    assert not (tmp_path / "x.png").exists()


def test_declared_shapes_must_be_the_named_models(tmp_path, capsys):
    path = _siren_file(tmp_path)
    _rewrite_header(path, lambda h: h["chunks"][0]["tensors"][0].update(shape=[1000, 1000]))
    assert main(["decompress", str(path)]) == 2
    line = one_line_error(capsys)
    assert "declares tensor 'net.0.linear.weight' of shape [1000, 1000]" in line
    assert "holds [8, 2]" in line


@pytest.mark.parametrize("name", ["siren", "mfn_gabor"])  # on the meta device; built for real
def test_header_arguments_that_build_a_huge_network_are_refused(name, tmp_path, capsys):
    path = _siren_file(tmp_path)
    _rewrite_header(path, lambda h: h["model"].update(name=name, hidden_dim=2**16))
    assert main(["decompress", str(path)]) == 2
    line = one_line_error(capsys)
    assert f"model {name!r} with more than 268,435,456 values" in line


def test_max_pixels_is_a_limit_the_user_may_raise(tmp_path, capsys):
    path = _siren_file(tmp_path, (40, 40))
    assert main(["decompress", str(path), "--max-pixels", "1000"]) == 2
    line = one_line_error(capsys)
    assert "40x40 signal (1,600 samples), more than --max-pixels 1,000" in line
    assert main(["decompress", str(path), "--max-pixels", "1600", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signal_shape"] == [40, 40]


# -- plugins are built-ins to every task ---------------------------------------------------

def _train(argv, out, extra=()):
    assert main(["run", *argv, "--steps", "3", "--out", str(out), *TINY, *extra]) == 0
    return out


@pytest.mark.parametrize("task", ["fit", "qat"])
def test_a_plain_pytorch_plugin_compresses_and_decompresses(task, plugin, small_png, tmp_path,
                                                            capsys):
    extra = ["task.quant_bits=6"] if task == "qat" else []
    run = _train(["--model", "plain", "--data", "image", f"data.path={small_png}", "--task",
                  task], tmp_path / task, extra)
    _, trained, _, _ = load_run(run)
    capsys.readouterr()
    for method in (["none"] if task == "fit" else []) + [None]:
        rec = compress_run(run, method=method)
        decoded, _ = decode_file(rec["file"])
        want, got = plain_state_dict(trained), plain_state_dict(decoded)
        assert set(got) == set(want) and "module.layers.0.weight" in got
        if rec["method"] in ("none", "qat"):  # exact: float32, or the LSQ+ grid it trained on
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
        png = tmp_path / f"{rec['method']}.png"
        assert main(["decompress", rec["file"], "--out", str(png), "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["model"] == "plain" and png.is_file()
        assert np.asarray(Image.open(png)).shape == (32, 48, 3)
        assert rec["psnr"] > 0


def test_an_undecodable_file_is_never_left_behind(siren_run, tmp_path, monkeypatch):
    import inrbench.compress as C
    from inrbench.errors import DataError

    run = _copy(siren_run, tmp_path)

    def broken(dec, width=None, depth=None):
        raise DataError("bitstream lacks tensor x")

    monkeypatch.setattr(C, "model_from_decoded", broken)
    with pytest.raises(DataError, match="nothing was written"):
        compress_run(run, bits=8)
    folder = run / "compressed"
    assert not folder.exists() or not any(folder.iterdir())


def test_refusals_name_the_plugin_as_the_user_gave_it(plugin, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
            folder / f"im{i}.png")
    for task, message in (("meta", "model 'plain' has no shift modulations"),
                          ("hypernet", "model 'plain' has none")):
        assert main(["run", "--task", task, "--model", "plain", "--data", "images",
                     f"data.path={folder}", "data.size=[8,8]", "--steps", "1", "--out",
                     str(tmp_path / task), *TINY]) == 2
        line = one_line_error(capsys)
        assert message in line and "CoordinateModule" not in line


def test_check_model_reads_the_plugins_conf_and_fails_what_no_dimension_accepts(plugin, capsys):
    fit = [c for c in check_model("plain", fit_steps=3) if c.name == "fit"]
    assert fit and all("lr 0.0123" in c.reason for c in fit)
    assert main(["check-model", "oned", "--steps", "2"]) == 1
    out = capsys.readouterr().out
    assert "no dimensionality accepts the model" in out and "0 failed" not in out


def test_the_plugin_through_bench_sweep_and_compare(plugin, small_png, tmp_path, capsys):
    root = tmp_path / "bench"
    assert main(["bench", "--models", "plain,siren", "--data", "image", f"data.path={small_png}",
                 "--steps", "2", "--out", str(root), "--in-process", *TINY]) == 0
    text = capsys.readouterr()
    assert "plain" in text.out, text.err
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(textwrap.dedent(f"""\
        name: plain-hidden
        method: grid
        metric: {{name: best_psnr, goal: maximize}}
        parameters:
          model.name: {{value: plain}}
          data.name: {{value: image}}
          data.path: {{value: "{small_png}"}}
          task.steps: {{value: 2}}
          model.hidden: {{values: [4, 8]}}
        """))
    assert main(["sweep", str(sweep), "--local", "--out", str(tmp_path / "sw"),
                 "--logger", "none"]) == 0
    assert len(list((tmp_path / "sw").glob("trial-*/metrics.json"))) == 2
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "sw")]) == 0
    assert "plain" in capsys.readouterr().out


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The example plugin package (examples/), installed by its entry points."""
    src = ROOT / "examples" / "inrbench-example-plugin" / "src"
    site = tmp_path / "example-site"
    info = site / "inrbench_example_plugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: inrbench-example-plugin\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[inrbench.models]\ngauss_mlp = inrbench_example.gauss:GaussMLP\n\n"
        "[inrbench.conf]\ninrbench_example = inrbench_example\n")
    for path in (site, src):
        monkeypatch.syspath_prepend(str(path))
    with _plugins_loaded():
        yield site


def test_the_example_plugin_through_qat_compress_decompress_meta_and_bench(
        example, small_png, tmp_path, capsys):
    data = ["--data", "image", f"data.path={small_png}"]
    run = _train(["--model", "gauss_mlp", *data, "--task", "qat"], tmp_path / "qat",
                 ["task.quant_bits=8", "model.hidden_dim=8"])
    assert main(["compress", str(run)]) == 0
    capsys.readouterr()
    assert main(["decompress", str(run / "compressed" / "qat8.inrb"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "gauss_mlp"
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["run", "--task", "meta", "--model", "gauss_mlp", "--data", "images",
                 f"data.path={folder}", "--steps", "1", "--out", str(tmp_path / "m"), *TINY]) == 2
    assert "model 'gauss_mlp' has no shift modulations" in one_line_error(capsys)
    assert main(["bench", "--models", "gauss_mlp", *data, "--steps", "2", "--out",
                 str(tmp_path / "b"), "--in-process", "model.hidden_dim=8", *TINY]) == 0
    assert "gauss_mlp" in capsys.readouterr().out
