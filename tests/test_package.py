"""The package surface: every name the README imports from fvae exists."""

import importlib
import importlib.util
import re

from tests.conftest import REPO


def test_every_import_in_the_readme_resolves():
    imports = re.findall(r"^from (fvae[\w.]*) import ([\w, ]+)$", (REPO / "README.md").read_text(), re.MULTILINE)
    assert len(imports) >= 4
    for module, names in imports:
        loaded = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}"), f"{module}.{name}"
