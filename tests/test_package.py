"""The package surface and its documentation: every name a README or docs code block imports
exists, and the results docs say what results/ holds."""

import ast
import importlib
import importlib.util
import json
import re
import subprocess
import sys

from tests.conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def imported_names(block: str) -> list[tuple[str, str | None]]:
    """(module, name) for every `from M import N` and (module, None) for every `import M`."""
    found = []
    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
    return found


def test_every_import_in_the_readme_and_docs_resolves():
    checked = 0
    for document in DOCUMENTS:
        for block in python_blocks(document.read_text()):
            for module, name in imported_names(block):
                if module.split(".")[0] != "fvae":
                    continue
                loaded = importlib.import_module(module)
                assert name is None or hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}"), (
                    f"{document.name}: from {module} import {name}")
                checked += 1
    assert checked >= 10, checked


def test_the_checker_fails_on_a_name_that_does_not_exist():
    names = imported_names("from fvae.compute import train_step, no_such_function\nimport fvae.models\n")
    assert names == [("fvae.compute", "train_step"), ("fvae.compute", "no_such_function"), ("fvae.models", None)]
    assert not hasattr(importlib.import_module("fvae.compute"), "no_such_function")


def test_results_docs_are_what_the_script_writes():
    result = subprocess.run([sys.executable, "-m", "experiments.results_doc", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_results_check_fails_when_a_number_changes(tmp_path, monkeypatch):
    from experiments import results_doc

    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text().replace("**228.15**", "**228.16**"))
    monkeypatch.setattr(results_doc, "README", readme)
    monkeypatch.setattr(results_doc, "DOC", REPO / "docs" / "results.md")
    assert results_doc.main(["--check"]) == 1


def test_benchmark_tables_in_the_docs_are_read_from_their_reports():
    """A marked block gets the report's own numbers, whatever stood there; the text around it stays."""
    from experiments import results_doc

    path = "benchmarks/gpu_h200/benchmark.json"
    report = json.loads((REPO / path).read_text())
    doc = (f"before\n<!-- benchmark table: written by experiments/results_doc.py from {path} -->\n"
           f"| stale | 1 |\n{results_doc.BENCH_END}\nafter\n")
    written = results_doc.with_benchmark_tables(doc)
    assert written.startswith("before\n") and written.endswith(f"{results_doc.BENCH_END}\nafter\n")
    assert "| stale | 1 |" not in written
    first, iwae = report["results"][0], report["iwae"][0]
    assert f"| {first['config']} | {first['batch_size']} |" in written
    assert f"{first['fast_images_per_second']:,.0f}" in written
    assert f"| {1000 / iwae['images_per_second']:.2f} |" in written
    assert results_doc.with_benchmark_tables(written) == written


def test_every_reliability_promise_names_tests_that_exist():
    """docs/reliability.md ends each promise with the tests that show it: each named test exists,
    every promise names one, and every test of tests/test_reliability.py is named somewhere."""
    doc = (REPO / "docs" / "reliability.md").read_text()
    promises = [p for p in re.split(r"\n- ", doc.split("## One error line")[0])[1:]]
    assert len(promises) >= 10 and all("*Tested by*" in p for p in promises)
    named = re.findall(r"`(test_\w+)::(test_\w+)`", doc)
    for module, test in named:
        assert re.search(rf"^def {test}\(", (REPO / "tests" / f"{module}.py").read_text(), re.M), (module, test)
    reliability = re.findall(r"^def (test_\w+)\(", (REPO / "tests" / "test_reliability.py").read_text(), re.M)
    assert [t for t in reliability if t not in doc] == []


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_importing_fvae_and_its_jitted_functions_loads_no_run_machinery():
    """`import fvae` and `from fvae import train_step` stay light: neither fvae.run (run
    directories, the trainer) nor Orbax nor TensorFlow is loaded; fvae.load_model still works."""
    code = ("import sys, fvae\nfrom fvae import train_step\nheavy = [m for m in sys.modules if m == 'fvae.run' or "
            "m.startswith(('orbax', 'tensorflow'))]\nprint(heavy)\nprint(callable(fvae.load_model))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "True"], out.stdout
