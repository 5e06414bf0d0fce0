"""One lock per fitted model for the computations that move its kernel away from θ̂.

Profiles, variance-parameter derivatives and criteria at other θ evaluate the model's own
(stateful) kernel and put it back at θ̂ when done; the per-model inference cache holds
objects (a ``Profile``) that are filled in as they are used.  Both are shared by every thread
holding the model, so these computations run under the model's lock: concurrent calls give
the serial answers (one after the other).  Results that only read the fit need no lock.
"""

from __future__ import annotations

import threading

__all__ = ["model_lock", "objective_at"]

_CREATE = threading.Lock()


def model_lock(model) -> threading.RLock:
    """The model's re-entrant lock (made on first use; not pickled, see ``__getstate__``)."""
    lock = model.__dict__.get("_inference_lock")
    if lock is None:
        with _CREATE:
            lock = model.__dict__.setdefault("_inference_lock", threading.RLock())
    return lock


def objective_at(model, theta, reml: bool) -> float:
    """The model's criterion at θ, its kernel left at θ̂ afterwards."""
    with model_lock(model):
        try:
            return float(model.objective(theta, reml=reml))
        finally:
            if getattr(model, "fitted_", False):
                model._profile(model.theta)
