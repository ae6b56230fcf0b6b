"""Runs a command-line module on the mock Fashion-MNIST of tests.helpers, in a subprocess:

    python -m tests.mock_cli experiments.train --config ... --workdir ...
"""

import runpy
import sys

from tests.helpers import mock_fashion_mnist

if __name__ == "__main__":
    module = sys.argv.pop(1)
    with mock_fashion_mnist():
        runpy.run_module(module, run_name="__main__", alter_sys=True)
