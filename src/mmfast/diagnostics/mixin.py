"""Diagnostic methods of a fitted mixed model (mixed into ``mmfast.api``'s LMM and GLMM):
Nakagawa-Schielzeth R² and DHARMa-style simulated residuals."""

from __future__ import annotations

__all__ = ["DiagnosticsMixin"]


class DiagnosticsMixin:
    """``r2_nakagawa`` and ``simulate_residuals`` as methods of the fitted model."""

    def r2_nakagawa(self, tolerance: float = 1e-5):
        """Nakagawa-Schielzeth marginal and conditional R² (performance's ``r2_nakagawa``);
        see :func:`mmfast.diagnostics.r2_nakagawa`.

        Returns
        -------
        R2Nakagawa
            ``marginal``, ``conditional`` and the variance components.

        Examples
        --------
        >>> m.r2_nakagawa().marginal  # doctest: +SKIP
        """
        from . import r2_nakagawa

        return r2_nakagawa(self, tolerance=tolerance)

    def simulate_residuals(
        self,
        n_sim: int = 250,
        seed=None,
        refit: bool = False,
        integer_response: bool | None = None,
        conditional: bool = False,
    ):
        """DHARMa-style scaled residuals with dispersion, zero-inflation and uniformity tests;
        see :func:`mmfast.diagnostics.simulate_residuals` for the parameters.

        Returns
        -------
        SimulatedResiduals

        Examples
        --------
        >>> m.simulate_residuals(n_sim=250, seed=1).test_dispersion()  # doctest: +SKIP
        """
        from . import simulate_residuals

        return simulate_residuals(
            self, n_sim=n_sim, seed=seed, refit=refit, integer_response=integer_response, conditional=conditional
        )
