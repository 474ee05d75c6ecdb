"""Regenerate ``prg_v1.json``, the published test vectors of ``pacda-prg-v1``.

Run ``python tests/vectors/generate_prg_vectors.py`` only when the spec
changes version; the test suite checks the implementation against the file.
Masks are strings of '0'/'1' (mask encoding, item 0 first); seeds are decimal.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from protocol.hypercube import pm_to_mask
from protocol.prg import PRG_VERSION, expand_pairs, expand_points

CASES = [
    {"seed": "00" * 32, "n_items": 16, "p": 0.5, "rho": 0.5, "indices": [0, 1, 2]},
    {"seed": bytes(range(32)).hex(), "n_items": 24, "p": 0.2, "rho": -0.25, "indices": [0, 7]},
    {
        "seed": hashlib.sha256(b"pacda test vector").hexdigest(),
        "n_items": 13,
        "p": 0.7,
        "rho": 0.9,
        "indices": [0, 1, 2**40],
    },
]


def _mask(row: np.ndarray) -> str:
    return "".join("1" if m else "0" for m in pm_to_mask(row))


def build() -> dict[str, object]:
    out = []
    for case in CASES:
        seed = bytes.fromhex(str(case["seed"]))
        idx = list(case["indices"])  # type: ignore[call-overload]
        n_items, p, rho = int(case["n_items"]), float(case["p"]), float(case["rho"])  # type: ignore[arg-type]
        pairs = expand_pairs(seed, idx, n_items, p, [rho] * len(idx))
        points = expand_points(seed, idx, n_items, p)
        out.append(
            {
                **case,
                "pairs": [
                    {
                        "index": k,
                        "first_mask": _mask(pairs.first[i]),
                        "second_mask": _mask(pairs.second[i]),
                        "first_seed": str(int(pairs.first_seeds[i])),
                        "second_seed": str(int(pairs.second_seeds[i])),
                    }
                    for i, k in enumerate(idx)
                ],
                "points": [
                    {"index": k, "mask": _mask(points.x[i]), "seed": str(int(points.seeds[i]))}
                    for i, k in enumerate(idx)
                ],
            }
        )
    return {"version": PRG_VERSION, "cases": out}


if __name__ == "__main__":
    path = Path(__file__).with_name("prg_v1.json")
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path}")
