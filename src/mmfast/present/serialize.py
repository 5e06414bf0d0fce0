"""A fitted model's results as plain Python / JSON, and its notebook display.

:class:`SerializeMixin` gives every fitted model (LMMs and GLMMs) ``to_dict()``,
``to_json()`` and ``_repr_html_()``; :func:`results_dict` is what ``mmfast fit --json``
writes.  The output is strict JSON: NumPy scalars and arrays become numbers and lists,
NaN and infinities become ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SerializeMixin", "results_dict", "jsonable"]


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON-able Python: dicts (string keys), lists, str, int, float, bool, None.

    NumPy and pandas values are converted; NaN/±Inf become None; DataFrames become lists of
    row records (index as the first field), Series become dicts; anything else becomes ``str``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, pd.DataFrame):
        return table_records(obj)
    if isinstance(obj, pd.Series):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def table_records(df: pd.DataFrame, index: str | None = None) -> list[dict]:
    """A table as a list of row dicts; a named or non-default index becomes the first field."""
    keep_index = index is not None or df.index.name is not None or not isinstance(df.index, pd.RangeIndex)
    rows = []
    for key, row in zip(df.index, df.itertuples(index=False, name=None)):
        rec = {index or df.index.name or "term": jsonable(key)} if keep_index else {}
        rec.update({str(c): jsonable(v) for c, v in zip(df.columns, row)})
        rows.append(rec)
    return rows


def _ranef_dict(tables: Mapping[str, pd.DataFrame]) -> dict:
    """{factor: {level: {column: value}}} from ``ranef``-style tables."""
    return {
        str(g): {
            str(lev): {str(c): jsonable(v) for c, v in row.items()} for lev, row in df.to_dict(orient="index").items()
        }
        for g, df in tables.items()
    }


def results_dict(m: Any, ranef: bool = True, condsd: bool = False, ddf: str | None = None) -> dict:
    """The fitted model's results as JSON-able Python (what ``mmfast fit --json`` writes).

    Keys: ``formula``, ``family``, ``link``, ``nobs``, ``reml``, ``fixef`` ({name: estimate}),
    ``coef_names`` and ``vcov`` (rows/columns in that order), ``coefficients`` (the summary
    table as records; with ``ddf``, e.g. ``"satterthwaite"``, its df and p-values), ``theta``,
    ``sigma``, ``varcorr`` (records of lme4's
    ``as.data.frame(VarCorr(m))``), ``loglik``, ``deviance``, ``aic``, ``bic``, ``npar``,
    ``ngroups``, ``converged``, ``singular``, ``optinfo``, ``mmfast_version`` and, with
    ``ranef=True``, ``ranef`` ({factor: {level: {column: mode}}}); ``condsd=True`` adds
    ``ranef_condsd`` in the same layout.  Mirrors what lme4's ``fixef``, ``vcov``,
    ``VarCorr``, ``logLik``, ``AIC``, ``BIC``, ``ngrps``, ``ranef`` and ``getME(m, "theta")``
    return, gathered in one object.
    """
    from .._version import __version__

    family = m.family
    vc = m.varcorr
    try:
        summ = m.summary(ddf=ddf) if ddf else m.summary()
        coefficients = table_records(summ.coefficients, index="term")
    except Exception:  # noqa: BLE001 - the summary is a convenience; never lose the rest
        if ddf:
            raise
        coefficients = None
    out: dict[str, Any] = {
        "formula": m.frame.parsed.formula,
        "family": str(getattr(family, "name", family)),
        "link": getattr(m, "link", "identity"),
        "nobs": int(m.nobs),
        "reml": bool(getattr(m, "reml", False)),
        "fixef": jsonable(m.fixef),
        "coef_names": [str(n) for n in m.fixef.index],
        "vcov": jsonable(m.vcov.to_numpy()),
        "coefficients": coefficients,
        "theta": jsonable(np.asarray(m.theta)),
        "sigma": jsonable(m.sigma),
        "varcorr": table_records(vc),
        "loglik": jsonable(m.loglik),
        "deviance": jsonable(getattr(m, "deviance", -2.0 * m.loglik)),
        "aic": jsonable(m.aic),
        "bic": jsonable(m.bic),
        "npar": int(m.npar),
        "ngroups": jsonable(m.ngroups),
        "converged": bool(getattr(m, "converged", True)),
        "singular": bool(m.singular),
        "optinfo": jsonable(getattr(m, "optinfo", {})),
        "mmfast_version": __version__,
    }
    if getattr(m, "n_agq", None) is not None:
        out["n_agq"] = int(m.n_agq)
    if ranef:
        out["ranef"] = _ranef_dict(m.ranef)
    if condsd:
        out["ranef_condsd"] = _ranef_dict(m.ranef_condsd)
    return out


class SerializeMixin:
    """``to_dict``, ``to_json`` and the notebook (HTML) display of a fitted model."""

    def to_dict(self, ranef: bool = True, condsd: bool = False, ddf: str | None = None) -> dict:
        """The results as JSON-able Python (see :func:`results_dict` for the keys).

        The model's tables (``fixef``, ``vcov``, ``varcorr``, ``ranef``, ``summary().coefficients``)
        are pandas objects; this flattens them for storage.  Mirrors no single R function: it is
        ``fixef``, ``vcov``, ``VarCorr``, ``logLik``, ... of lme4 in one dict.
        """
        return results_dict(self, ranef=ranef, condsd=condsd, ddf=ddf)

    def to_json(
        self,
        path: str | Path | None = None,
        *,
        indent: int | None = 2,
        ranef: bool = True,
        condsd: bool = False,
        ddf: str | None = None,
    ) -> str:
        """The results as a strict JSON string (NaN written as null); also written to ``path``.

        Like ``jsonlite::toJSON`` on the list of lme4's accessors.
        """
        text = json.dumps(self.to_dict(ranef=ranef, condsd=condsd, ddf=ddf), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def _repr_html_(self) -> str:
        """Notebook display: the model's summary as HTML (lme4's printed ``summary(m)``)."""
        return self.summary()._repr_html_()
