"""Shared fixtures: the real trained model (trained once if missing), the real predictor facade."""
from __future__ import annotations

import fcntl

import pytest

from predictor import artifacts


@pytest.fixture(scope="session")
def model_dir():
    """models/current, trained from training_data/ if missing (`make test` builds it first; this is the fallback).

    A file lock keeps two xdist workers from training at once.
    """
    artifacts.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with open(artifacts.MODELS_DIR / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = artifacts.MODELS_DIR / artifacts.CURRENT
        if not (current / artifacts.MANIFEST).exists():
            from predictor.train import train
            train()
        fcntl.flock(lock, fcntl.LOCK_UN)
    return current.resolve()


@pytest.fixture(scope="session")
def predictor(model_dir):
    from predictor import TransferPredictor
    return TransferPredictor.load(model_dir)
