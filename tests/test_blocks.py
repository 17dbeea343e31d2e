"""Block sampling: ASMR trains on random whole cells with activation sharing, and
its values and gradients equal the per-sample forward's on exactly the drawn samples."""

import math

import pytest
import torch

from inrbench.blocks import block_step_macs, choose_level, configure_blocks, level_costs
from inrbench.data.base import RandomBlocks, SignalSpec, choose_cells, index_to_coords
from inrbench.errors import ConfigError
from inrbench.models import create_model
from inrbench.profiling import measured_macs

CASES = [
    ((60,), [[3, 5, 4]]),                                   # 1-D, odd bases
    ((24, 30), [[2, 3, 4], [5, 3, 2]]),                     # 2-D, odd bases
    ((32, 48), [[2, 2, 1, 8], [3, 1, 4, 4]]),               # a base of 1
    ((8, 12, 10), [[2, 2, 2], [3, 2, 2], [5, 1, 2]]),       # 3-D
]


def _model(shape, bases, modulator, channels=3):
    torch.manual_seed(0)
    return create_model("asmr", in_features=len(shape), out_features=channels,
                        signal_shape=shape, bases=bases, n_layers=len(bases[0]), hidden_dim=16,
                        modulator=modulator, modulator_width=8)


@pytest.mark.parametrize("shape,bases", CASES)
@pytest.mark.parametrize("modulator", ["linear", "nonlinear"])
def test_block_step_values_and_gradients_equal_per_sample(shape, bases, modulator):
    model = _model(shape, bases, modulator)
    signal = torch.rand(*shape, 3)
    params = list(model.parameters())
    for level, cell in model.cell_shapes().items():
        n_total = math.prod(n // g for n, g in zip(shape, cell))
        n_cells = max(1, min(3, n_total))
        ds = RandomBlocks(signal, shape, cell, n_cells, length=4, seed=1, level=level)
        batch = ds[2]
        shared = model.forward_cells(batch["cells"], level).reshape(-1, 3)
        assert "coords" not in batch  # ASMR needs only the cells
        per_sample = model(ds.coords(batch["cells"]))
        torch.testing.assert_close(shared, per_sample, atol=1e-4, rtol=0)
        g1 = torch.autograd.grad(((shared - batch["values"]) ** 2).mean(), params)
        g2 = torch.autograd.grad(((per_sample - batch["values"]) ** 2).mean(), params)
        for a, b in zip(g1, g2):
            scale = float(b.abs().max()) or 1.0
            torch.testing.assert_close(a, b, atol=1e-4 * scale, rtol=0)


def test_blocks_are_whole_cells_of_the_signal_in_row_major_order():
    shape, cell = (12, 20), (4, 5)
    signal = torch.arange(12 * 20, dtype=torch.float32).reshape(12, 20, 1)
    ds = RandomBlocks(signal, shape, cell, n_cells=3, length=10, seed=0, level=0)
    batch = ds[0]
    for j, (ci, cj) in enumerate(batch["cells"].tolist()):
        want = signal[ci * 4:(ci + 1) * 4, cj * 5:(cj + 1) * 5].reshape(-1, 1)
        torch.testing.assert_close(batch["values"][j * 20:(j + 1) * 20], want)
    flat = batch["values"][:, 0].long()
    torch.testing.assert_close(ds.coords(batch["cells"]), index_to_coords(flat, shape))
    plain = RandomBlocks(signal, shape, cell, n_cells=3, length=10, seed=0, level=None)[0]
    torch.testing.assert_close(plain["coords"], index_to_coords(flat, shape))


def test_an_epoch_visits_every_cell_once():
    shape, cell = (16, 16), (4, 4)
    ds = RandomBlocks(torch.zeros(16, 16, 1), shape, cell, n_cells=4, length=4, seed=3)
    seen = torch.cat([ds.cell_indices(i) for i in range(4)])
    assert sorted(seen.tolist()) == list(range(16))
    # the next epoch walks another permutation
    assert torch.cat([ds.cell_indices(i) for i in range(4, 8)]).tolist() != seen.tolist()


def test_processes_take_disjoint_shares_of_the_same_cells():
    args = (torch.zeros(16, 16, 1), (16, 16), (4, 4), 4, 8)
    one = RandomBlocks(*args, seed=5).cell_indices(3)
    parts = [RandomBlocks(*args, seed=5, rank=r, world=2).cell_indices(3) for r in range(2)]
    assert torch.cat(parts).tolist() == one.tolist()
    with pytest.raises(ConfigError, match="split evenly"):
        RandomBlocks(*args, seed=5, rank=0, world=3)


def test_level_choice_follows_batch_size():
    shapes = {0: [128, 128], 1: [32, 32], 2: [8, 8]}
    assert choose_cells(shapes, 2**18) == (0, [128, 128], 16)
    assert choose_cells(shapes, 2**14) == (1, [32, 32], 16)
    # a batch smaller than 16 of the finest cells still draws whole cells
    assert choose_cells(shapes, 64) == (2, [8, 8], 1)


class _DM:
    """The part of a data module that configure_blocks talks to."""

    def __init__(self, shape, batch_size, block=None, sampling="blocks", block_cost=1.25,
                 block_cells=256):
        self._spec = SignalSpec(tuple(shape), 3)
        self.sampling, self.batch_size, self.block = sampling, batch_size, block
        self.block_cost, self.block_cells = block_cost, block_cells

    def spec(self):
        return self._spec

    def configure_blocks(self, cell, n_cells, level):
        self.block, self.n_cells, self.block_level = cell, n_cells, level


def test_asmr_shares_and_other_models_get_the_same_cells(capsys):
    shape = (64, 64)
    asmr = create_model("asmr", signal_shape=shape, bases=[[4, 4, 4], [4, 4, 4]], n_layers=3,
                        hidden_dim=8)
    siren = create_model("siren", hidden_dim=8, n_layers=3)
    got = configure_blocks(_DM(shape, 1024, block=[16, 16]), asmr, SignalSpec(shape, 3))
    assert got["shared"] and got["level"] == 0 and got["n_cells"] == 4
    dm = _DM(shape, 1024, block=[16, 16])
    got = configure_blocks(dm, siren, SignalSpec(shape, 3))
    assert not got["shared"] and dm.block == [16, 16] and dm.n_cells == 4
    assert "no activation sharing" in capsys.readouterr().err


def test_a_model_without_sharing_draws_cells_with_the_rules_spread():
    from inrbench.blocks import _default_cell_shapes

    shape = (3375, 6000)  # the Pluto stand-in at Table 5's 2^18 samples per step
    siren = create_model("siren", hidden_dim=8, n_layers=3)
    got = configure_blocks(_DM(shape, 2**18), siren, SignalSpec(shape, 3))
    cells = _default_cell_shapes(shape)
    assert got["n_cells"] >= 256 and got["block_cells"] == 256 and not got["shared"]
    coarser = [k for k, c in cells.items() if math.prod(c) > math.prod(got["cell"])]
    assert all(2**18 // math.prod(cells[k]) < 256 for k in coarser)  # the coarsest with 256
    few = configure_blocks(_DM(shape, 2**18, block_cells=None), siren, SignalSpec(shape, 3))
    assert 16 <= few["n_cells"] < 256  # without the spread term: 16 cells suffice


def test_a_block_that_is_no_asmr_cell_says_so_and_trains_per_sample(capsys):
    shape = (64, 64)
    asmr = create_model("asmr", signal_shape=shape, bases=[[4, 4, 4], [4, 4, 4]], n_layers=3,
                        hidden_dim=8)
    got = configure_blocks(_DM(shape, 1024, block=[8, 8]), asmr, SignalSpec(shape, 3))
    assert got["level"] is None and not got["shared"]
    assert "not a cell of any level" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="divides"):
        configure_blocks(_DM(shape, 1024, block=[7, 8]), asmr, SignalSpec(shape, 3))


def test_auto_sampling_blocks_only_big_signals(capsys):
    asmr = create_model("asmr", signal_shape=(64, 64), bases=[[4, 4, 4], [4, 4, 4]], n_layers=3,
                        hidden_dim=8)
    dm = _DM((64, 64), None, sampling="auto")
    assert configure_blocks(dm, asmr, SignalSpec((64, 64), 3)) is None and dm.sampling == "full"
    big = (2048, 1024)
    asmr = create_model("asmr", signal_shape=big, bases=None, n_layers=4, hidden_dim=8)
    dm = _DM(big, None, sampling="auto")
    got = configure_blocks(dm, asmr, SignalSpec(big, 3))
    assert dm.sampling == "blocks" and got["shared"]
    assert "too many for one step" in capsys.readouterr().err


def test_the_finest_level_within_the_cost_ratio_is_chosen():
    costs = [{"level": k, "macs_per_sample": m, "n_cells": 4 ** k}
             for k, m in enumerate([100.0, 101.0, 120.0, 400])]
    assert choose_level(costs, 1.25, None)["level"] == 2
    assert choose_level(costs, 1.0, None)["level"] == 0
    assert choose_level(costs, 10.0, None)["level"] == 3
    assert choose_level(costs, 1.25, 16) == {**costs[2], "chosen_for": "cost"}  # 16 cells: enough


# (cells per step, MACs per sample) of levels 2, 3, 4 in the quality records, and the level
# that trained best at equal wall time there (reports/blocks-spread-cpu, blocks-spread-2e18,
# blocks-levels-cpu section 2): steps of 26-64 cells lost to 655-1,024 cells costing ~3x;
# steps of 419-1,024 cells were the best level
RECORDS = {
    "bark/bird 2048^2, 2^14": ([(4, 20611.75), (64, 22546.0), (1024, 68929.0)], 4),
    "pluto 3375x6000, 2^14": ([(1, 14015.9), (26, 14825.8), (655, 45221.4)], 4),
    "bird 2048^2, 2^18": ([(64, 20608.9), (1024, 22544.1), (16384, 68928.1)], 3),
    "pluto 3375x6000, 2^18": ([(17, 14011.0), (419, 14823.0), (10486, 45220.0)], 3),
}


@pytest.mark.parametrize("case", list(RECORDS))
def test_the_default_level_is_the_best_level_of_each_quality_record(case):
    levels, best = RECORDS[case]
    costs = [{"level": k, "n_cells": n, "macs_per_sample": m}
             for k, (n, m) in zip((2, 3, 4), levels)]
    chosen = choose_level(costs)  # the defaults: block_cost 1.25, block_cells 256
    assert chosen["level"] == best
    assert chosen["chosen_for"] == ("spread" if best == 4 else "cost")


def test_spread_stays_within_its_cost_limit_and_takes_the_coarsest_level_with_enough_cells():
    from inrbench.blocks import SPREAD_COST_LIMIT

    costs = [{"level": k, "n_cells": n, "macs_per_sample": m}
             for k, (n, m) in enumerate([(4, 100.0), (300, 150.0), (5000, 390.0)])]
    assert choose_level(costs)["level"] == 1  # 300 cells reach 256: no finer than needed
    over = [{**c, "macs_per_sample": c["macs_per_sample"] * (1 if c["level"] == 0 else
                                                               SPREAD_COST_LIMIT)}
            for c in costs]  # every finer level beyond the limit: the cost rule's level
    assert choose_level(over) == {**over[0], "chosen_for": "cost"}
    few = [{**c, "n_cells": 10 * (c["level"] + 1)} for c in costs]  # none reaches 256
    assert choose_level(few)["level"] == 2


@pytest.mark.parametrize("shape,bases", CASES)
def test_a_step_of_every_cell_costs_at_least_a_full_render(shape, bases):
    """The cost rule is the profiler's: level-0 cells covering the signal do exactly the work
    of one full render (the profiler's measured MACs); finer cells add the coarse layers'
    modulations, evaluated per drawn cell rather than once per level grid."""
    model = _model(shape, bases, "linear")
    full = measured_macs(model, shape)
    for level, cell in model.cell_shapes().items():
        every = math.prod(n // g for n, g in zip(shape, cell))
        step = block_step_macs(model, level, every)
        if level == 0:
            assert step == pytest.approx(full, rel=1e-9)
        else:
            assert step >= full * (1 - 1e-9), level


def test_cost_grows_toward_fine_levels_and_cells_fit_the_step():
    shape = (96, 128)
    model = _model(shape, [[2, 3, 4, 4], [2, 4, 4, 4]], "linear")
    costs = level_costs(model, 2048)
    assert all(math.prod(c["cell"]) <= 2048 for c in costs)
    assert [c["level"] for c in costs] == sorted(c["level"] for c in costs)
    macs = [c["macs_per_sample"] for c in costs]
    assert macs == sorted(macs)  # finer cells share less


def test_configure_blocks_records_every_level_and_the_choice(capsys):
    shape = (96, 128)
    model = _model(shape, [[2, 3, 4, 4], [2, 4, 4, 4]], "linear")
    spec = SignalSpec(shape, 3)
    got = configure_blocks(_DM(shape, 2048), model, spec)
    costs = level_costs(model, 2048)
    assert got["chosen_by"] == "cost" and got["levels"] == costs
    chosen = choose_level(costs, 1.25, 256)
    assert got["level"] == chosen["level"] and got["chosen_for"] == chosen["chosen_for"]
    assert got["block_cells"] == 256
    out = capsys.readouterr().out
    # 128 level-2 cells, the finest level: no finer one to spread to, so the cost rule says why
    assert got["chosen_for"] == "cost" and got["n_cells"] == 128
    assert f"level-{got['level']} cells" in out and "data.block_cost=1.25" in out
    cheapest = configure_blocks(_DM(shape, 2048, block_cost=1.0, block_cells=None), model, spec)
    assert cheapest["level"] == min(costs, key=lambda c: c["macs_per_sample"])["level"]
    assert cheapest["chosen_for"] == "cost"
    assert "data.block_cost=1" in capsys.readouterr().out
    # an explicit cell wins over the cost rule
    cell = model.cell_shapes()[costs[-1]["level"]]
    given = configure_blocks(_DM(shape, 2048, block=cell), model, spec)
    assert given["chosen_by"] == "data.block" and given["cell"] == cell and "levels" not in given


def test_block_cost_below_one_is_refused():
    from inrbench.data import create_datamodule

    with pytest.raises(ConfigError, match="block_cost"):
        create_datamodule("cameraman", sampling="blocks", batch_size=64, block_cost=0.5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "many", True])
def test_block_cells_must_be_a_positive_count_or_null(bad):
    from inrbench.data import create_datamodule

    with pytest.raises(ConfigError, match="data.block_cells"):
        create_datamodule("cameraman", sampling="blocks", batch_size=64, block_cells=bad)
    dm = create_datamodule("cameraman", sampling="blocks", batch_size=64, block_cells=None)
    assert dm.block_cells is None
