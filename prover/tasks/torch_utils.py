"""Torch helpers shared by the built-in tasks: dtypes, devices, seed streams, margins."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from prover.tasks.device import resolve_device as select_device

__all__ = [
    "classifier_margins",
    "derive_seed",
    "resolve_device",
    "seeded_generator",
    "seeded_minibatch_order",
    "torch_dtype",
]


def torch_dtype(name: str) -> torch.dtype:
    """``"float64"`` / ``"float32"`` -> the torch dtype."""
    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if name not in dtypes:
        raise InvalidArgument(f"dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def resolve_device(device: str) -> torch.device:
    """A torch device from its name; a CUDA device must be present.

    Raises:
        InvalidArgument: unknown device.
        DeviceUnavailable: CUDA requested but not available, or ``cuda:K`` beyond
            the GPUs present (:func:`prover.tasks.device.resolve_device`).
    """
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise InvalidArgument(f"unknown device {device!r}: {err}") from err
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgument(f"device must be 'cpu' or 'cuda[:k]', got {device!r}")
    if dev.type == "cuda":
        select_device(str(dev))  # raises, naming the missing device
    return dev


def derive_seed(seed: int, label: str) -> int:
    """A 64-bit stream seed derived from a training seed by a keyed hash.

    ``int.from_bytes(SHA-256(label_utf8 || 0x00 || seed_u64_le)[:8], "little")``.
    Distinct labels give independent streams of one training seed (no seed
    arithmetic).

    Args:
        seed: the model's training seed r, ``0 <= r < 2**64``.
        label: the stream's name, e.g. ``"pacda.mlp.init"``.
    """
    if not 0 <= seed < 2**64:
        raise InvalidArgument(f"seed must lie in [0, 2**64), got {seed}")
    digest = hashlib.sha256(label.encode() + b"\x00" + seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest[:8], "little")


def seeded_generator(seed: int, label: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for the stream ``label`` of training seed ``seed``."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(seed, label))
    return gen


def seeded_minibatch_order(
    mask: NDArray[np.bool_], seeds: NDArray[np.uint64], steps: int, batch: int, label: str
) -> NDArray[np.int64]:
    """Training-item indices of every minibatch: int64 ``(n, steps, batch)``.

    Model k's subset (its items in ascending order) is shuffled by
    ``torch.randperm`` with the stream ``label`` of ``seeds[k]`` once per epoch,
    the epochs are concatenated, and minibatch t is positions ``[tB, (t+1)B)``
    (a minibatch may straddle two epochs).  Rows of an empty subset are all 0
    (the trainer must give them no data gradient).

    Args:
        mask: bool ``(n, N)`` subsets in the mask encoding.
        seeds: uint64 ``(n,)`` training seeds.
        label: the stream's name, e.g. ``"pacda.mlp.order"``.
    """
    need = steps * batch
    out = np.zeros((len(mask), need), dtype=np.int64)
    for i, (row, seed) in enumerate(zip(mask, seeds, strict=True)):
        members = np.flatnonzero(row)
        if not len(members):
            continue
        gen = seeded_generator(int(seed), label)
        parts, total = [], 0
        while total < need:
            perm = torch.randperm(len(members), generator=gen).numpy()
            parts.append(members[perm])
            total += len(members)
        out[i] = np.concatenate(parts)[:need]
    return out.reshape(len(mask), steps, batch)


def classifier_margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Correct-class margin: logit of the true class minus the largest other logit.

    Args:
        logits: ``(..., Z, C)`` floating.
        labels: int64 ``(Z,)`` true classes.
    Returns:
        ``(..., Z)``; positive iff the point is classified correctly.
    """
    index = labels.expand(*logits.shape[:-1]).unsqueeze(-1)
    correct = logits.gather(-1, index).squeeze(-1)
    others = logits.scatter(-1, index, float("-inf"))
    return correct - others.amax(dim=-1)
