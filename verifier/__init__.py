"""pacda Verifier (protocol driver, spot-check retraining, CLI): not yet built.

The statistics it runs live in :mod:`protocol` (plan, estimators, decision).
"""
