"""Each task's keys are its builder's arguments, with their defaults in conf/task/<name>.yaml,
and the task section is validated the same way whatever was imported before."""

import inspect
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from inrbench.build import task_context
from inrbench.config import compose, conf_dir
from inrbench.errors import ConfigError
from inrbench.registry import TASKS
from inrbench.tasks import list_tasks

CONTEXT = {"model", "spec", "datamodule", "seed", "data_name", "model_config"}


def _keys(name):
    return {k for k in OmegaConf.load(conf_dir() / "task" / f"{name}.yaml").task if k != "name"}


def test_the_context_is_what_build_task_offers():
    from omegaconf import OmegaConf as O

    cfg = O.create({"trainer": {"seed": 0}, "data": {"name": "d"}, "model": {"name": "siren"}})
    from inrbench.data.base import SignalSpec

    assert set(task_context(cfg, None, None, SignalSpec((4, 4), 1))) == CONTEXT


@pytest.mark.parametrize("name", list_tasks())
def test_task_file_keys_are_the_builder_arguments(name):
    params = inspect.signature(TASKS.get(name)).parameters
    arguments = {p for p in params if p not in CONTEXT}
    assert _keys(name) == arguments
    for key in _keys(name):  # the file's default is the builder's, so both read the same
        default = params[key].default
        if default is not inspect.Parameter.empty:
            file_value = OmegaConf.load(conf_dir() / "task" / f"{name}.yaml").task[key]
            file_value = OmegaConf.to_container(file_value) if OmegaConf.is_config(
                file_value) else file_value
            expected = list(default) if isinstance(default, tuple) else default
            assert file_value == expected, key


@pytest.mark.parametrize("name", list_tasks())
def test_each_task_composes_with_its_own_keys_only(name):
    cfg = compose(overrides=[f"task.name={name}"])
    assert set(cfg.task) - {"name"} == _keys(name)


def test_a_key_of_another_task_names_that_task():
    with pytest.raises(ConfigError, match=r"unknown key task.enc_depth \(a key of --task "
                                          r"hypernet\); valid keys of task fit"):
        compose("siren", "cameraman", ["task.enc_depth=3"])


def test_a_model_files_fitting_rate_is_left_to_the_tasks_that_take_it():
    cfg = compose("siren", "cifar10", extra={"task.name": "meta"})
    assert "lr" not in cfg.task and cfg.task.outer_lr == 3e-6


def test_unknown_task_lists_the_task_files():
    with pytest.raises(ConfigError, match=r"unknown task 'nope'; valid choices: fit, "
                                          r"hypernet, meta, ofa, qat"):
        compose(extra={"task.name": "nope"})


def test_bad_hypernet_key_from_a_fresh_interpreter():
    """No module import decides whether a task key is checked: a new process that imports
    only the CLI refuses it in one line, exit 2, before any data is read."""
    done = subprocess.run([sys.executable, "-m", "inrbench.cli", "run", "--task", "hypernet",
                           "--model", "anr", "--data", "cifar10", "--steps", "1",
                           "task.enc_depth=abc"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "task.enc_depth must be an integer >= 1, got 'abc'" in lines[0]
