"""Persistent, crash-safe result store keyed by (subset, seed); see ``docs/store.md``."""

from prover.store.config import STORE_FORMAT, StoreConfig
from prover.store.keys import digest_hex, result_keys, unpack_subsets, weight_digests
from prover.store.result_store import Lookup, ResultStore

__all__ = [
    "STORE_FORMAT",
    "Lookup",
    "ResultStore",
    "StoreConfig",
    "digest_hex",
    "result_keys",
    "unpack_subsets",
    "weight_digests",
]
