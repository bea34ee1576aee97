"""Models over xlt's features: regressor, intervals, curves, explanations, evaluation; one facade."""
from predictor.facade import TransferPredictor

__all__ = ["TransferPredictor"]
