"""The package's shape: no import cycle (counting every import the code can make), few layers
of wings, short modules, one job per wing, and no name shared with an experiments/ script.

An import is anything that loads a module: `import` and `from ... import` at any depth (in
a function too), `importlib.import_module("...")` and `__import__("...")` with a literal or
an f-string's literal prefix, and the parent packages that loading a submodule runs first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

MAX_LAYERS = 6
# A generous ceiling, not a budget: a module this long has likely taken on a second job, but a
# researcher's new likelihood or model should never have to move code to fit (it was 250).
MAX_LINES = 400
WINGS = ("data", "models", "compute", "analysis", "run")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _loaded_names(node: ast.AST, importer: str, is_package: bool) -> set[str]:
    """Module names one AST node loads (before parent packages are added)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # Relative: from the importer's package.
            package = importer.split(".") if is_package else importer.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        # `from pkg import name` loads pkg, and pkg.name when that is a module.
        return {base} | {f"{base}.{alias.name}" for alias in node.names}
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called in ("import_module", "__import__"):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return {arg.value}
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                return {str(arg.values[0].value).rstrip(".")}  # f"pkg.{name}": at least pkg.
    return set()


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: modules of `package` it loads}, for every module under root/package."""
    paths = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        loaded = set()
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _loaded_names(node, name, is_package):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:i])
                    # Loading a.b.c runs a and a.b first, unless the importer is inside them
                    # (a package's own modules load while it initializes).
                    if prefix in paths and not (name == prefix or name.startswith(prefix + ".")):
                        loaded.add(prefix)
        graph[name] = loaded - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that can reach itself (as a path of module names)."""
    found = []

    def path_back(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    for module in sorted(graph):
        loop = path_back(module)
        if loop:
            found.append(loop)
    return found


def room(module: str) -> str:
    """The wing a module belongs to (fvae.models.vae -> fvae.models), or the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each room's floor: 1 + the highest floor of the rooms it imports (the root package's
    own __init__, which only re-exports, stands apart)."""
    rooms: dict[str, set[str]] = {}
    for module, loaded in graph.items():
        if module.count(".") == 0:
            continue
        rooms.setdefault(room(module), set()).update(room(m) for m in loaded if m.count(".") > 0)
    floors: dict[str, int] = {}

    def floor(r: str, stack=()) -> int:
        if r not in floors:
            assert r not in stack, f"rooms import each other: {' -> '.join((*stack, r))}"
            floors[r] = 1 + max((floor(o, (*stack, r)) for o in rooms[r] - {r}), default=0)
        return floors[r]

    for r in rooms:
        floor(r)
    return floors


def test_the_checker_sees_function_level_and_importlib_imports(tmp_path):
    # The shape of the cycle the old tree hid: a package __init__ importing a module that
    # loads the package's submodules back through importlib and function-level imports.
    pkg = tmp_path / "pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "architectures.py").write_text(
        "import importlib\n\ndef build(kind):\n    from pkg.models.mlp import Dense\n"
        "    return importlib.import_module(f'pkg.models.{kind}')\n")
    (pkg / "models" / "__init__.py").write_text("from pkg.architectures import build\n")
    (pkg / "models" / "mlp.py").write_text("Dense = 1\n")
    graph = import_graph(tmp_path, "pkg")
    assert "pkg.models" in graph["pkg.architectures"]
    assert [" -> ".join(c) for c in cycles(graph)] == ["pkg.architectures -> pkg.models -> pkg.architectures",
                                                        "pkg.models -> pkg.architectures -> pkg.models"]
    # Only the importlib string: still seen.
    (pkg / "architectures.py").write_text("import importlib\nimportlib.import_module('pkg.models.mlp')\n")
    assert cycles(import_graph(tmp_path, "pkg"))
    # Relative imports resolve against the importer's package.
    (pkg / "architectures.py").write_text("from .models import mlp\n")
    assert import_graph(tmp_path, "pkg")["pkg.architectures"] == {"pkg.models", "pkg.models.mlp"}


def test_fvae_has_no_import_cycle_and_never_reads_experiments():
    graph = import_graph(REPO, "fvae")
    assert len(graph) > 20
    assert not cycles(graph), cycles(graph)
    for path in (REPO / "fvae").rglob("*.py"):
        tree = ast.parse(path.read_text())
        loaded = set().union(*(_loaded_names(n, module_name(path, REPO), path.name == "__init__.py")
                               for n in ast.walk(tree)))
        assert not any(m.split(".")[0] in ("experiments", "tests") for m in loaded), path


def test_wings_stand_on_at_most_six_floors_and_every_module_is_short():
    floors = layers(import_graph(REPO, "fvae"))
    assert max(floors.values()) <= MAX_LAYERS, floors
    assert {f"fvae.{w}" for w in WINGS} <= set(floors)
    long = {str(p.relative_to(REPO)): n for p in (REPO / "fvae").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("wing", WINGS)
def test_each_wing_says_its_job(wing):
    doc = ast.get_docstring(ast.parse((REPO / "fvae" / wing / "__init__.py").read_text()))
    assert doc and len(doc) > 80, f"fvae/{wing}/__init__.py needs a docstring saying what the wing is for"


def test_no_module_shares_a_name_with_a_script_or_another_module():
    scripts = {p.stem for p in (REPO / "experiments").glob("*.py")} - {"__init__"}
    modules = [p.stem for p in (REPO / "fvae").rglob("*.py") if p.stem != "__init__"]
    wings = [p.name for p in (REPO / "fvae").iterdir() if (p / "__init__.py").is_file()]
    names = modules + wings
    assert not scripts & set(names), scripts & set(names)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# Direct file writes allowed outside fvae/files.py: each is not a whole file written at once.
DIRECT_WRITES_ALLOWED = {
    ("fvae/run/rundir.py", "open"),  # The run's lock file (its holder's pid, rewritten in place).
    ("fvae/data/sources.py", "open"),  # The data's gzip files unpacked into a scratch folder.
    ("fvae/run/checkpoints.py", "rename"),  # Orbax's checkpoint folders, set aside when damaged.
}
# Methods that write whatever their receiver; and module functions that write (np.save, ...).
WRITE_METHODS = {"write_text", "write_bytes", "rename"}
WRITE_FUNCTIONS = {("np", "save"), ("os", "replace"), ("os", "rename"), ("json", "dump"), ("shutil", "copyfile")}


def _direct_writes(path: Path) -> list[tuple[str, int]]:
    """(what, line) of every call in `path` that writes a file other than through fvae.files:
    Path.write_text/write_bytes/rename, savefig to a path, np.save, os.replace, json.dump,
    shutil.copyfile, and open() in a writing mode."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = func.value.id if isinstance(func.value, ast.Name) else ""
            if (receiver, func.attr) in WRITE_FUNCTIONS or (func.attr in WRITE_METHODS and receiver != "files"):
                found.append((func.attr, node.lineno))
            elif func.attr == "savefig" and not (node.args and isinstance(node.args[0], ast.Name)
                                                 and node.args[0].id == "buffer"):  # A figure drawn to a file.
                found.append((func.attr, node.lineno))
        elif isinstance(func, ast.Name) and func.id == "open":
            modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
            modes += [k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)]
            if any(set(str(m)) & set("wax+") for m in modes):
                found.append(("open", node.lineno))
    return found


def test_files_are_written_only_through_fvae_files():
    """One writer: a crash never leaves half a file, because every file fvae and its scripts
    write goes through fvae.files (atomic rename, or a flushed appended line), except the few listed above."""
    wrong = [f"{path.relative_to(REPO)}:{line} {what}"
             for root in ("fvae", "experiments") for path in sorted((REPO / root).rglob("*.py"))
             if path != REPO / "fvae" / "files.py"
             for what, line in _direct_writes(path)
             if (str(path.relative_to(REPO)), what) not in DIRECT_WRITES_ALLOWED]
    assert not wrong, f"files written around fvae.files: {wrong}"


def test_a_new_component_can_be_a_module_of_its_own(tmp_path):
    """A likelihood, prior or architecture in its own module imports its base class from
    fvae.models.registry, which imports no registry module: so the registry module can import
    the new one without a cycle. Checked with a likelihood module outside the package, imported
    first in a fresh interpreter, then registered beside the others."""
    import os
    import subprocess
    import sys

    imported = {alias.name if isinstance(node, ast.Import) else node.module
                for node in ast.walk(ast.parse((REPO / "fvae" / "models" / "registry.py").read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in getattr(node, "names", [])}
    assert not {m for m in imported if m and m.startswith("fvae")}, imported
    (tmp_path / "laplace_likelihood.py").write_text(
        "import dataclasses\nimport jax.numpy as jnp\nfrom fvae.models.registry import Likelihood\n\n"
        "@dataclasses.dataclass(frozen=True)\nclass Laplace(Likelihood):\n    name = 'laplace'\n"
        "    params_per_pixel = 2\n\n    def log_prob(self, params, x):\n"
        "        mean, log_scale = params[..., 0], params[..., 1]\n"
        "        return (-jnp.abs(x - mean) * jnp.exp(-log_scale) - log_scale - jnp.log(2.0)).sum(-1)\n")
    check = ("import laplace_likelihood\nfrom fvae.models import likelihoods\n"
             "from fvae.models.registry import registry\n"
             "table = registry(*likelihoods.LIKELIHOODS.values(), laplace_likelihood.Laplace)\n"
             "assert issubclass(table['laplace'], likelihoods.Likelihood)\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
