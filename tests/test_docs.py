"""The documentation: the site builds with warnings as errors (offline), the code on its pages
runs, and every public callable has numpydoc Parameters/Returns/Examples sections.

The site build executes the lecture notebook (docs/lecture.py) and renders the API reference
from the docstrings, so a docstring that names a parameter the signature does not have, or a
lecture cell that raises, fails here.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import mmfast

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
needs_source = pytest.mark.skipif(
    not (ROOT / "mkdocs.yml").exists(), reason="documentation sources are not in an installed wheel"
)


# --- the site ----------------------------------------------------------------------------------
@needs_source
def test_site_builds_strict_and_offline(tmp_path):
    """``mkdocs build --strict`` into a temp dir; any fetch through a proxy-aware client fails
    (the proxy is a closed port), so the build must not need the network."""
    env = dict(
        os.environ,
        NO_MKDOCS_2_WARNING="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        PYTHONPATH=os.pathsep.join([str(Path(mmfast.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert re.search(r"^\s+cache: false", (ROOT / "mkdocs.yml").read_text(), flags=re.M), (
        "the lecture page must be executed on every build, not read from mkdocs-jupyter's cache"
    )
    lecture = (site / "lecture" / "index.html").read_text()
    # outputs only an executed notebook has: the printed summaries of the lecture's fits
    assert "Number of obs: 1200, groups:  midx, 24" in lecture
    assert "Number of obs: 512, groups:  mouseID, 8" in lecture
    assert "Traceback (most recent call last)" not in lecture  # and allow_errors: false
    api = (site / "api" / "fitting" / "index.html").read_text()
    for section in ("Parameters", "Returns", "Examples"):
        assert section in api
    assert "maxeval" in api and "ftol_abs" in api  # lmer's optimizer controls
    for page in (
        "index.html",
        "install/index.html",
        "r-to-mmfast/index.html",
        "how-it-is-fast/index.html",
        "api/lmm/index.html",
        "errors/index.html",
    ):
        html = (site / page).read_text()
        assert "fonts.googleapis.com" not in html, page


# --- code on the pages -------------------------------------------------------------------------
def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _cheat_sheet_steps(text: str) -> list[tuple[str, str]]:
    """(label, code) in page order: each section's python block, then every mmfast cell of its
    tables (the second column; each `code span` in it is one statement)."""
    steps = []
    blocks = iter(_python_blocks(text))
    in_block = False
    for line in text.splitlines():
        if line.startswith("```python"):
            steps.append(("setup block", next(blocks)))
            in_block = True
        elif line.startswith("```"):
            in_block = False
        elif not in_block and line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 2, line
            for code in re.findall(r"`([^`]+)`", cells[1]):
                steps.append((cells[0], code.replace("\\|", "|")))
    return steps


@needs_source
def test_cheat_sheet_snippets_run():
    """Every mmfast call on the R-to-mmfast page exists and runs, in page order."""
    steps = _cheat_sheet_steps((DOCS / "r-to-mmfast.md").read_text())
    assert len(steps) > 60
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, code in steps:
            try:
                exec(compile(code, f"<r-to-mmfast: {label}>", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - name the cell that failed
                pytest.fail(f"cheat-sheet cell for {label!r} failed: {code}\n{type(exc).__name__}: {exc}")
    assert isinstance(namespace["m"], mmfast.LinearMixedModel)
    assert isinstance(namespace["g"], mmfast.GeneralizedLinearMixedModel)


@needs_source
@pytest.mark.parametrize("page", ["index.md", "install.md"])
def test_page_examples_run(page, capsys):
    blocks = _python_blocks((DOCS / page).read_text())
    assert blocks
    for code in blocks:
        exec(compile(code, f"<{page}>", "exec"), {})
    assert "REML criterion at convergence: 1743.6" in capsys.readouterr().out


@needs_source
def test_readme_first_screen_installs_and_fits(capsys):
    """The README opens with installation and a first fit whose printed numbers are lme4's
    (sleepstudy, REML: criterion 1743.6, Days 10.47 with SE 1.546)."""
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("## The lecture")]
    for needed in (
        "libsuitesparse-dev",
        "libopenblas0-pthread",
        "pip install .",
        "make wheel",
        "make demo",
        "make test",
        "3.10",
    ):
        assert needed in head, needed
    first = head[head.index("## Fit a first model") :]
    code = _python_blocks(first)[0]
    assert len(code.strip().splitlines()) <= 5
    exec(compile(code, "<README>", "exec"), {})
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out
    assert re.search(r"Days\s+10\.467\s+1\.546", out)  # R prints 10.467


# --- docstrings --------------------------------------------------------------------------------
SECTIONS = ("Parameters\n----------", "Returns\n-------", "Examples\n--------")
MODEL_METHODS = {
    mmfast.LinearMixedModel: (
        "summary",
        "anova",
        "drop1",
        "contest",
        "confint",
        "profile",
        "icc",
        "predict",
        "simulate",
        "bootstrap",
        "refit",
        "refit_ml",
    ),
    mmfast.GeneralizedLinearMixedModel: (
        "summary",
        "anova",
        "drop1",
        "predict",
        "odds_ratios",
        "simulate",
        "bootstrap",
        "refit",
    ),
    mmfast.LinearModel: ("summary", "anova"),
}


def _public_functions():
    return [n for n in mmfast.__all__ if inspect.isfunction(getattr(mmfast, n))]


@pytest.mark.parametrize("name", _public_functions())
def test_public_function_docstring_sections(name):
    doc = inspect.getdoc(getattr(mmfast, name)) or ""
    missing = [s.split("\n")[0] for s in SECTIONS if s not in doc]
    assert not missing, f"mmfast.{name} lacks numpydoc sections {missing}"


@pytest.mark.parametrize(
    "cls,method", [(c, m) for c, ms in MODEL_METHODS.items() for m in ms], ids=lambda v: getattr(v, "__name__", v)
)
def test_model_method_docstring_sections(cls, method):
    func = getattr(cls, method)
    doc = inspect.getdoc(func) or ""
    takes = [p for p in inspect.signature(func).parameters if p != "self"]
    wanted = SECTIONS[:2] if takes else SECTIONS[1:2]  # no Parameters for a method without any
    missing = [s.split("\n")[0] for s in wanted if s not in doc]
    assert not missing, f"{cls.__name__}.{method} lacks numpydoc sections {missing}"


def _documented(doc: str) -> list[str]:
    """Names under a numpydoc Parameters heading (``a, b : int`` gives both)."""
    section = doc.split("Parameters\n----------\n", 1)[1]
    section = re.split(r"\n[A-Z][a-z]+\n-{4,}\n", section, maxsplit=1)[0]
    entries = [line.split(" : ")[0] for line in section.splitlines() if line[:1].strip()]
    return [n.strip().lstrip("*") for e in entries for n in e.split(",")]


@pytest.mark.parametrize("name", _public_functions())
def test_documented_parameters_exist(name):
    """Each documented parameter is one the function takes (lmer's ``maxeval`` and the other
    optimizer controls arrive through ``**optctrl`` and are in its accepted keywords)."""
    func = getattr(mmfast, name)
    params = inspect.signature(func).parameters
    accepted = set(params) | set(getattr(func, "accepted_keywords", ()))
    documented = _documented(inspect.getdoc(func))
    assert documented, name
    unknown = [n for n in documented if n not in accepted]
    assert not unknown, f"mmfast.{name} documents {unknown}, which it does not take"
    undocumented = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL,) and n not in documented]
    assert not undocumented, f"mmfast.{name} does not document {undocumented}"


def _example_targets():
    out = [(f"mmfast.{n}", getattr(mmfast, n)) for n in _public_functions()]
    out += [(f"{c.__name__}.{m}", getattr(c, m)) for c, ms in MODEL_METHODS.items() for m in ms]
    return out


@pytest.mark.parametrize("name,func", _example_targets(), ids=lambda v: v if isinstance(v, str) else "")
def test_docstring_examples_give_their_output(name, func):
    """The Examples sections are doctests: the numbers they show are what the code returns."""
    import doctest

    tests = doctest.DocTestFinder(recurse=False).find(func, name, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in tests:
            runner.run(t)
    assert runner.failures == 0, f"{name}: {runner.failures} docstring example(s) failed (see output)"
