"""FLOPs per sample by op class (the cost rule ``inrbench-flops-1``, docs/cost-rule.md) beside
the paper's MACs and the measured matmul MACs, for the ASMR paper's models on one 512x512
grayscale signal (Table 2's Cameraman).

Rows: Table 2's ASMR, SIREN, KiloNeRF and LoE rows as configured in
``conf/experiment/table2.yaml``; FFN, MFN and WIRE as Table 3's rows, Instant-NGP as Table 5's
(Table 2 has none of them), each built for the same 512x512x1 signal. Everything is counted
on meta tensors: nothing is trained or rendered, so the figures do not depend on the machine.

    python benchmarks/cost_rule.py [--out reports/cost-rule/cost_rule.json]
"""

from __future__ import annotations

import argparse
import json

import torch

from inrbench.build import build_model
from inrbench.config import row_config
from inrbench.config.experiment import load_experiment, select_rows
from inrbench.data.base import SignalSpec
from inrbench.io import atomic_write_text
from inrbench.profiling import profile

SPEC = SignalSpec(shape=(512, 512), channels=1)
ROWS = [("table2", "asmr3"), ("table2", "asmr4"), ("table2", "siren3"), ("table2", "siren4"),
        ("table2", "kilonerf3"), ("table2", "loe4"), ("table3", "ffn"), ("table3", "mfn"),
        ("table3", "wire"), ("table5", "ngp")]
CLASSES = ("matmul", "elementwise", "transcendental", "memory", "interpolation")


def table_row(table: str, row_id: str) -> dict:
    exp = load_experiment(table)
    (row,) = select_rows(exp, [row_id])
    torch.manual_seed(0)
    model = build_model(row_config(exp, row), SPEC)
    stats = profile(model, SPEC.shape)
    return {"table": table, "id": row_id, "label": row.get("label", row_id),
            "model": row["model"], **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="reports/cost-rule/cost_rule.json")
    args = ap.parse_args()
    rows = [table_row(t, r) for t, r in ROWS]
    print(f"per sample, {SPEC.shape[0]}x{SPEC.shape[1]}x{SPEC.channels}, rule "
          f"{rows[0]['cost_rule']}; MACs (paper) and measured matmul MACs beside the FLOPs")
    head = ["row", "params", "MACs", "measured", "FLOPs", *CLASSES, "FLOPs/(2 measured)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        c = r["flops_by_class"]
        macs = "-" if r["macs"] is None else f"{r['macs']:,.1f}"
        table = r["table"].replace("table", "Table ")
        print(f"| {r['label']}, {table} | {r['params']:,} | {macs} | "
              f"{r['macs_measured']:,.1f} | {r['flops']:,.1f} | "
              + " | ".join(f"{c[k]:,.1f}" for k in CLASSES)
              + f" | {r['flops'] / (2 * r['macs_measured']):.2f} |")
    atomic_write_text(args.out, json.dumps({"signal": [*SPEC.shape, SPEC.channels],
                                            "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
