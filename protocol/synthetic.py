"""Synthetic model-output functions with a planted p-biased Fourier spectrum.

These are the exact reference every statistical test uses.  For each of Z
outputs the seed-averaged output is

    fbar_z(x) = sum_{T in terms_z} c_T phi_T(x),   phi_T(x) = prod_{i in T} (x_i - mu)/sigma,

with, for each degree k, ``m_k`` distinct random sets T of size k and
coefficients ``c_T = +-sqrt(B_k / m_k)``; the characters are orthonormal under
B_p, so the degree-k weight of ``fbar_z`` is exactly ``B_k``.  The observed
output adds bounded, mean-zero *seed noise* that depends on the training seed:

    f_z(x; r) = fbar_z(x) + a * (2 U_z(x, r) - 1),   U uniform on [0, 1),

so ``E_r f = fbar`` and the noise variance is ``a^2 / 3``.  Every output obeys
``|f| <= b`` with the provable bound

    b = sum_T |c_T| ((1 + |mu|)/sigma)^{|T|} + a.

Exact quantities (docs/design.md §1): ``B_k``; ``E f^2 = sum_k B_k + a^2/3``;
``B_{>=2}(f) = E f^2 - B_0 - B_1``; optimal attribution
``theta_i = fhat_{i}/sigma``, ``theta_0 = fhat_{} - mu sum_i theta_i``; and for any
attribution ``a = (theta_0, theta)``

    err(a) = (fhat_{} - theta_0 - mu sum_i theta_i)^2 + sum_i (fhat_{i} - sigma theta_i)^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.hypercube import bias_moments, check_p

__all__ = ["PlantedSpectrum", "SyntheticFunction"]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, kw_only=True)
class PlantedSpectrum:
    """Declarative description of a synthetic task.

    Attributes:
        n_items: N, number of training items (coordinates of x).
        p: inclusion probability of B_p.
        degree_weights: ``(B_0, B_1, ..., B_D)`` of the seed-averaged output.
        terms_per_degree: ``(m_0, ..., m_D)``; ``m_0`` must be 1 when ``B_0 > 0``,
            ``m_k <= C(N, k)``.  A degree with zero weight may have zero terms.
        noise: half-width ``a`` of the uniform seed noise (variance ``a^2/3``).
        n_outputs: Z, number of scalar outputs (independent draws of the terms).
        structure_seed: seeds the choice of sets T and signs (not the noise).
    """

    n_items: int
    p: float
    degree_weights: tuple[float, ...]
    terms_per_degree: tuple[int, ...]
    noise: float = 0.0
    n_outputs: int = 1
    structure_seed: int = 0

    def __post_init__(self) -> None:
        check_p(self.p)
        if self.n_items < 1:
            raise InvalidArgument(f"n_items must be >= 1, got {self.n_items}")
        if self.n_outputs < 1:
            raise InvalidArgument(f"n_outputs must be >= 1, got {self.n_outputs}")
        if len(self.degree_weights) != len(self.terms_per_degree):
            raise InvalidArgument(
                "degree_weights and terms_per_degree must have the same length, got "
                f"{len(self.degree_weights)} and {len(self.terms_per_degree)}"
            )
        for k, (w, m) in enumerate(zip(self.degree_weights, self.terms_per_degree, strict=True)):
            if not (w >= 0.0 and math.isfinite(w)):
                raise InvalidArgument(f"degree_weights[{k}] must be finite and >= 0, got {w}")
            if m < 0 or m > math.comb(self.n_items, k):
                raise InvalidArgument(
                    f"terms_per_degree[{k}] must lie in [0, C({self.n_items}, {k})], got {m}"
                )
            if w > 0 and m == 0:
                raise InvalidArgument(f"degree {k} has weight {w} but no terms")
        if self.terms_per_degree and self.terms_per_degree[0] > 1:
            raise InvalidArgument("terms_per_degree[0] must be 0 or 1 (one empty set)")
        if not (self.noise >= 0.0 and math.isfinite(self.noise)):
            raise InvalidArgument(f"noise must be finite and >= 0, got {self.noise}")


@dataclass(frozen=True)
class _Output:
    """Terms of one output, grouped by degree: ``sets[k]`` is (m_k, k) int64."""

    sets: tuple[NDArray[np.int64], ...]
    coefs: tuple[NDArray[np.float64], ...]


@dataclass(frozen=True)
class SyntheticFunction:
    """A Z-output function with planted spectrum; see the module docstring."""

    spec: PlantedSpectrum
    _outputs: tuple[_Output, ...] = field(repr=False)

    @classmethod
    def from_spec(cls, spec: PlantedSpectrum) -> SyntheticFunction:
        rng = np.random.default_rng(np.random.SeedSequence(spec.structure_seed))
        outputs = []
        for _ in range(spec.n_outputs):
            sets: list[NDArray[np.int64]] = []
            coefs: list[NDArray[np.float64]] = []
            for k, (w, m) in enumerate(
                zip(spec.degree_weights, spec.terms_per_degree, strict=True)
            ):
                chosen = _distinct_subsets(rng, spec.n_items, k, m)
                signs = rng.choice(np.array([-1.0, 1.0]), size=m)
                sets.append(chosen)
                coefs.append(signs * math.sqrt(w / m) if m else np.zeros(0))
            outputs.append(_Output(tuple(sets), tuple(coefs)))
        return cls(spec, tuple(outputs))

    # ------------------------------------------------------------------ shape
    @property
    def n_items(self) -> int:
        return self.spec.n_items

    @property
    def n_outputs(self) -> int:
        return self.spec.n_outputs

    @property
    def p(self) -> float:
        return self.spec.p

    @property
    def bound(self) -> float:
        """Provable bound b with ``|f_z(x; r)| <= b`` for every z, x, r."""
        mu, sigma = bias_moments(self.p)
        char_max = (1.0 + abs(mu)) / sigma
        best = 0.0
        for out in self._outputs:
            total = sum(float(np.abs(c).sum()) * char_max**k for k, c in enumerate(out.coefs))
            best = max(best, total)
        return best + self.spec.noise

    # ------------------------------------------------------------ evaluation
    def mean_output(self, x: NDArray[np.int8]) -> NDArray[np.float64]:
        """Seed-averaged outputs ``fbar(x)``.

        Args:
            x: pm-encoded subsets, shape ``(n, N)``.
        Returns:
            float64 array of shape ``(n, Z)``.
        """
        x = self._check_x(x)
        mu, sigma = bias_moments(self.p)
        z = (x.astype(np.float64) - mu) / sigma
        out = np.zeros((x.shape[0], self.n_outputs))
        for j, o in enumerate(self._outputs):
            for k, (sets, c) in enumerate(zip(o.sets, o.coefs, strict=True)):
                if not len(c):
                    continue
                chars = np.ones((x.shape[0], len(c))) if k == 0 else z[:, sets].prod(axis=2)
                out[:, j] += chars @ c
        return out

    def evaluate(self, x: NDArray[np.int8], seeds: NDArray[np.uint64]) -> NDArray[np.float64]:
        """Observed outputs ``f(x; r)`` for subsets ``x`` (n, N) and 64-bit seeds (n,).

        The noise ``U_z(x, r)`` is a SplitMix64 hash of the seed, a hash of x and
        the output index, so the same (x, r) always gives the same value.
        """
        x = self._check_x(x)
        seeds = np.asarray(seeds, dtype=np.uint64)
        if seeds.shape != (x.shape[0],):
            raise InvalidArgument(f"seeds must have shape ({x.shape[0]},), got {seeds.shape}")
        fbar = self.mean_output(x)
        a = self.spec.noise
        if a == 0.0:
            return fbar
        u = _uniforms(x, seeds, self.n_outputs)
        return fbar + a * (2.0 * u - 1.0)

    # ----------------------------------------------------------- exact maths
    def degree_weights(self) -> NDArray[np.float64]:
        """Exact ``B_k`` of ``fbar`` for every output: shape ``(Z, D+1)``."""
        return np.array(
            [[float(np.sum(c**2)) for c in o.coefs] for o in self._outputs], dtype=np.float64
        )

    def noise_variance(self) -> float:
        """``E_r Var(f | x) = a^2 / 3``."""
        return self.spec.noise**2 / 3.0

    def second_moment(self) -> NDArray[np.float64]:
        """Exact ``E[f^2]`` per output (includes the seed noise): shape ``(Z,)``."""
        return np.asarray(self.degree_weights().sum(axis=1) + self.noise_variance())

    def variance(self) -> NDArray[np.float64]:
        """Exact ``Var(f) = E f^2 - B_0`` per output: shape ``(Z,)``."""
        return self.second_moment() - self.degree_weights()[:, 0]

    def residual_weight(self) -> NDArray[np.float64]:
        """Exact ``B_{>=2}(f) = E f^2 - B_0 - B_1``: the optimal linear MSE, shape ``(Z,)``."""
        w = self.degree_weights()
        return self.second_moment() - w[:, 0] - (w[:, 1] if w.shape[1] > 1 else 0.0)

    def low_degree_coefficients(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(fhat_{}, fhat_{i})``: shapes ``(Z,)`` and ``(Z, N)``."""
        f0 = np.zeros(self.n_outputs)
        f1 = np.zeros((self.n_outputs, self.n_items))
        for j, o in enumerate(self._outputs):
            if len(o.coefs) > 0 and len(o.coefs[0]):
                f0[j] = o.coefs[0][0]
            if len(o.coefs) > 1 and len(o.coefs[1]):
                f1[j, o.sets[1][:, 0]] = o.coefs[1]
        return f0, f1

    def optimal_attribution(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Exact optimal linear datamodel Phi(S): ``(theta0 (Z,), theta (Z, N))``, pm encoding."""
        mu, sigma = bias_moments(self.p)
        f0, f1 = self.low_degree_coefficients()
        theta = f1 / sigma
        return f0 - mu * theta.sum(axis=1), theta

    def err(self, theta0: NDArray[np.float64], theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Exact ``err(a) = mse(g_a) - B_{>=2}`` per output: shape ``(Z,)``."""
        mu, sigma = bias_moments(self.p)
        theta0 = np.asarray(theta0, dtype=np.float64).reshape(self.n_outputs)
        theta = np.asarray(theta, dtype=np.float64).reshape(self.n_outputs, self.n_items)
        f0, f1 = self.low_degree_coefficients()
        g0 = theta0 + mu * theta.sum(axis=1)
        return np.asarray((f0 - g0) ** 2 + ((f1 - sigma * theta) ** 2).sum(axis=1))

    def _check_x(self, x: NDArray[np.int8]) -> NDArray[np.int8]:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_items:
            raise InvalidArgument(f"x must have shape (n, {self.n_items}), got {x.shape}")
        return x.astype(np.int8, copy=False)


def _distinct_subsets(
    rng: np.random.Generator, n_items: int, size: int, count: int
) -> NDArray[np.int64]:
    """``count`` distinct sorted subsets of ``range(n_items)`` of the given size."""
    if count == 0:
        return np.zeros((0, size), dtype=np.int64)
    if size == 0:
        return np.zeros((1, 0), dtype=np.int64)
    seen: set[tuple[int, ...]] = set()
    total = math.comb(n_items, size)
    if count > total // 2:  # dense: enumerate and pick
        from itertools import combinations

        every = np.array(list(combinations(range(n_items), size)), dtype=np.int64)
        pick = rng.choice(len(every), size=count, replace=False)
        return every[np.sort(pick)]
    rows: list[tuple[int, ...]] = []
    while len(rows) < count:
        s = tuple(sorted(int(i) for i in rng.choice(n_items, size=size, replace=False)))
        if s not in seen:
            seen.add(s)
            rows.append(s)
    return np.array(rows, dtype=np.int64)


def _splitmix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def _uniforms(
    x: NDArray[np.int8], seeds: NDArray[np.uint64], n_outputs: int
) -> NDArray[np.float64]:
    """Uniforms on [0, 1) keyed by (x, seed, output): shape ``(n, Z)``."""
    _n, n_items = x.shape
    keys = _splitmix64(np.arange(1, n_items + 1, dtype=np.uint64))
    with np.errstate(over="ignore"):
        xh = ((x > 0).astype(np.uint64) * keys[None, :]).sum(axis=1, dtype=np.uint64)
        base = _splitmix64(seeds ^ _splitmix64(xh))
        z = base[:, None] ^ _splitmix64(np.arange(n_outputs, dtype=np.uint64) + np.uint64(7))[None]
    bits = _splitmix64(z) >> np.uint64(11)
    return bits.astype(np.float64) / float(2**53)
