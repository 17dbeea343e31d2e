"""Images per optimizer step of the data-set tasks (inrbench.tasks.stepimages)."""

import pytest

from inrbench.errors import ConfigError
from inrbench.tasks.stepimages import FULL_STEPS, resolve_step_images


@pytest.mark.parametrize("steps, used", [(3, 1), (100, 7), (500, 32), (FULL_STEPS, 64),
                                         (20 * FULL_STEPS, 64)])
def test_auto_grows_with_the_run_to_the_asked_batch(steps, used):
    step = resolve_step_images("auto", steps, 64, 1)
    assert step.used == used and step.asked == 64
    assert (step.note(steps) is None) == (used == 64)


def test_accumulated_batch_is_one_micro_batch_when_smaller():
    step = resolve_step_images("auto", 3, 6, 3)
    assert (step.batch_size, step.accumulate, step.asked) == (1, 1, 18)
    full = resolve_step_images("auto", FULL_STEPS, 6, 3)
    assert (full.batch_size, full.accumulate) == (6, 3)
    assert step.record() == {"step_images": 1, "step_images_asked": 18,
                             "step_images_setting": "auto", "batch_size": 1,
                             "accumulate": 1, "accumulate_asked": 3}
    assert "1 image(s) per step, not the asked 18" in step.note(3)


@pytest.mark.parametrize("value, used", [("all", 64), (None, 64), (5, 5)])
def test_explicit_values_win(value, used):
    assert resolve_step_images(value, 3, 64, 1).used == used


@pytest.mark.parametrize("value", [0, -1, "some", 2.5, True])
def test_bad_values_are_refused(value):
    with pytest.raises(ConfigError, match="task.step_images"):
        resolve_step_images(value, 3, 64, 1)

