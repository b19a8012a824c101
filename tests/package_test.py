"""Every module imports, and setup.py and BUILD list the same modules."""

import ast
import importlib
import os
import re
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def setup_modules():
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.targets[0].id == "MODULES":
            return sorted(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no MODULES list")


def test_setup_build_and_package_agree():
    build = open(os.path.join(ROOT, "BUILD")).read()
    in_build = sorted(re.findall(r'srcs = \["dqn_tf/(\w+)\.py"\]', build))
    in_build.remove("__init__")
    assert setup_modules() == in_build
    on_disk = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "dqn_tf"))
                     if f.endswith(".py") and f != "__init__.py")
    assert on_disk == in_build
    tests = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "tests"))
                   if f.endswith("_test.py"))
    # One py_test per test file, named after it, running that file.
    py_tests = re.findall(r'py_test\(\s*name = "(\w+)",[^)]*?srcs = \["tests/(\w+)\.py"\]', build)
    assert all(name == src for name, src in py_tests), py_tests
    assert sorted(name for name, _ in py_tests) == tests


@pytest.mark.parametrize("module", setup_modules())
def test_every_module_imports(module):
    importlib.import_module(f"dqn_tf.{module}")


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider"]))
