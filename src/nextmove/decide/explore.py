"""Control cohort and exploration: stable hash-based assignment, and choices with known propensities."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from nextmove.errors import ConfigError


def stable_uniform(keys: Sequence[str], seed: int, salt: str = "") -> np.ndarray:
    """A number in [0, 1) per key that depends only on (seed, salt, key): the same across runs and machines.

    Examples
    --------
    >>> a = stable_uniform(["acc-1", "acc-2"], seed=0)
    >>> bool((a == stable_uniform(["acc-2", "acc-1"], seed=0)[::-1]).all())
    True
    """
    prefix = f"{seed}:{salt}:".encode()
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(prefix + key.encode(), digest_size=8).digest() for key in keys])
    out: np.ndarray = np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64
    return out


def assign_control(account_ids: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """True for accounts in the control cohort: a stable ``fraction`` of them, by hash of id and seed.

    An account stays in (or out of) control across runs as long as the seed is unchanged, so
    the control cohort's outcomes can be followed for the whole horizon.
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"control_fraction must be in [0, 1), got {fraction}")
    mask: np.ndarray = stable_uniform(account_ids, seed, "control") < fraction
    return mask


def epsilon_propensities(best: np.ndarray, allowed: np.ndarray, epsilon: float) -> np.ndarray:
    """Probabilities of each option under epsilon-greedy: 1 − ε on the best, ε spread over all allowed.

    ``allowed`` is (accounts × options) with the do-nothing option included as a column; ``best``
    the index of the best option per account. Each row sums to 1.
    """
    n_allowed = allowed.sum(axis=1, keepdims=True)
    probs = np.where(allowed, epsilon / np.maximum(n_allowed, 1), 0.0)
    probs[np.arange(len(best)), best] += 1.0 - epsilon
    out: np.ndarray = probs / probs.sum(axis=1, keepdims=True)
    return out


def thompson_propensities(
    mean: np.ndarray, sd: np.ndarray, allowed: np.ndarray, rng: np.random.Generator, draws: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """One Thompson draw per account and the probability of each option being chosen that way.

    Values are drawn from independent normals (``mean``, ``sd``) per option; the chosen option
    is the argmax of one draw. The propensity of every option is estimated from ``draws``
    further draws (plus one pseudo-count spread over the allowed options, so no allowed option
    has probability 0, which inverse-propensity estimators could not use).

    Returns
    -------
    (choice, propensities)
        ``choice[i]`` the option drawn; ``propensities`` (accounts × options), rows summing to 1.
    """
    n, k = mean.shape
    masked_mean = np.where(allowed, mean, -np.inf)
    counts = np.zeros((n, k))
    rows = np.arange(n)
    masked32 = masked_mean.astype(np.float32)
    sd32 = np.asarray(sd, dtype=np.float32)
    for _ in range(draws):
        sample = masked32 + rng.standard_normal((n, k), dtype=np.float32) * sd32
        counts[rows, sample.argmax(axis=1)] += 1
    n_allowed = np.maximum(allowed.sum(axis=1, keepdims=True), 1)
    probs = (counts + np.where(allowed, 1.0 / n_allowed, 0.0)) / (draws + 1.0)
    choice_sample = masked_mean + rng.standard_normal((n, k)) * sd
    choice = choice_sample.argmax(axis=1)
    out: np.ndarray = probs / probs.sum(axis=1, keepdims=True)
    return choice, out
