"""Issue 15, layers: import-linter's ``layers`` contract (pyproject's [tool.importlinter]) holds
for the tree, covers every top-level module of mmfast, and is not vacuous (a reversed order is
reported broken).  The classes lmer/glmer/lm return are the fit classes with the upper layers'
methods mixed in, and refits keep that class."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import mmfast
from mmfast.model.glmm import GeneralizedLinearMixedModel as FitGLMM
from mmfast.model.lm import LinearModel as FitLM
from mmfast.model.lmm import LinearMixedModel as FitLMM

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mmfast.__file__).resolve().parent


def _contract(cid: str = "layers") -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == cid]
    return contract


def _lint(config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` (the venv's) on ``config``, analysing the mmfast this test imported."""
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), "import-linter is not installed (pip install -e '.[test]')"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    return subprocess.run(
        [str(exe), "--config", str(config), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layers_contract_is_kept():
    res = _lint(ROOT / "pyproject.toml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 kept, 0 broken" in res.stdout


@pytest.mark.parametrize("cid, folder", [("layers", PACKAGE), ("model-layers", PACKAGE / "model")])
def test_every_module_has_a_layer(cid, folder):
    """A new module or package cannot escape its container's layers."""
    names = [name.strip() for layer in _contract(cid)["layers"] for name in re.split(r"[|:]", layer)]
    listed = {n.strip("()") for n in names}
    optional = {n.strip("()") for n in names if n.startswith("(")}  # may be absent
    present = {
        p.stem if p.suffix == ".py" else p.name
        for p in folder.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert present - listed == set(), "modules outside the layers contract"
    assert listed - optional - present == set(), "layers naming no module"


def test_reversed_layers_are_reported(tmp_path):
    """The same contract with ``model`` moved above ``api`` must break: api imports model."""
    layers = [layer for layer in _contract()["layers"] if layer != "model"]
    layers.insert(layers.index("api"), "model")
    body = ",\n".join(f'    "{layer}"' for layer in layers)
    (tmp_path / "reversed.toml").write_text(
        '[tool.importlinter]\nroot_package = "mmfast"\n\n[[tool.importlinter.contracts]]\n'
        'name = "reversed"\ntype = "layers"\ncontainers = ["mmfast"]\n'
        f"layers = [\n{body}\n]\n"
    )
    res = _lint(tmp_path / "reversed.toml")
    assert res.returncode == 1
    assert "mmfast.api is not allowed to import mmfast.model" in res.stdout


def test_fit_classes_carry_no_upper_layer_methods():
    for cls in (FitLMM, FitGLMM, FitLM):
        for name in ("anova", "summary", "simulate", "bootstrap", "tidy", "to_dict", "params"):
            assert not hasattr(cls, name), f"{cls.__name__}.{name} is defined in the fit layer"


def test_user_classes_compose_the_fit_classes(sleepstudy, cbpp):
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert isinstance(m, FitLMM) and type(m) is mmfast.LinearMixedModel
    assert type(m.refit(m.frame.y + 1.0)) is mmfast.LinearMixedModel
    assert type(m.refit_ml()) is mmfast.LinearMixedModel
    assert type(m.refit_formula("Reaction ~ 1 + (Days | Subject)")) is mmfast.LinearMixedModel
    g = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    assert isinstance(g, FitGLMM) and type(g) is mmfast.GeneralizedLinearMixedModel
    again = g.refit(g.frame.y)
    assert type(again) is mmfast.GeneralizedLinearMixedModel
    np.testing.assert_allclose(again.loglik, g.loglik, rtol=1e-7)  # same response: same fit
    f = mmfast.lm("Reaction ~ Days", sleepstudy)
    assert isinstance(f, FitLM) and type(f.refit_formula("Reaction ~ 1")) is mmfast.LinearModel


def test_no_object_surgery_in_src():
    """Models are built by their constructors: no ``__new__`` calls, and another object's
    ``__dict__`` is copied in only by unpickling (``__setstate__``)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                f = node.func
                if f.attr == "__new__":
                    found.append(f"{path.name}:{node.lineno} __new__")
                if (
                    f.attr == "update"
                    and isinstance(f.value, ast.Attribute)
                    and f.value.attr == "__dict__"
                    and fn.name != "__setstate__"
                ):
                    found.append(f"{path.name}:{node.lineno} __dict__.update in {fn.name}")
    assert found == []


@pytest.fixture(scope="module")
def sleepstudy():
    return mmfast.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def cbpp():
    return mmfast.datasets.load("cbpp")
