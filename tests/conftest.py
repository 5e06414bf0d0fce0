"""Shared fixtures: the reference cases of tests/reference, each fitted at most once per session."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_cases import case_data, case_fit_kwargs, load_reference  # noqa: E402


@dataclass
class CaseFit:
    """One reference case fitted by mmfast: the reference JSON, the data and the model."""

    case: str
    ref: dict
    data: object  # pandas.DataFrame, as passed to mmfast.lmer
    model: object
    warnings: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def fit_case():
    """``fit_case(case) -> CaseFit``: ``mmfast.lmer`` on a reference case, cached for the session.

    InstEval and big_nested take a while, so each case is fitted once; a fit that raised
    is not retried, every test of that case reports the same error.
    """
    import mmfast

    cache: dict[str, CaseFit | BaseException] = {}

    def get(case: str) -> CaseFit:
        if case not in cache:
            ref = load_reference(case)
            data = case_data(ref)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model = mmfast.lmer(ref["formula"], data, **case_fit_kwargs(ref))
                cache[case] = CaseFit(case, ref, data, model, [str(w.message) for w in caught])
            except Exception as exc:  # reported by every test that needs this fit
                cache[case] = exc
        result = cache[case]
        if isinstance(result, BaseException):
            raise RuntimeError(f"mmfast.lmer failed on reference case {case!r}: {result!r}") from result
        return result

    return get
