"""Every module imports, and setup.py and BUILD list the same modules."""

import ast
import importlib
import os
import re
import subprocess
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


def imported_files(path: str) -> set:
    """The project files (dqn_tf/x.py, tests/x.py) that the file at `path` imports,
    at its top or inside any function."""
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("dqn_tf", "tests"):
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    files = {"/".join(name.split(".")[:2]) + ".py" for name in names
             if name.split(".")[0] in ("dqn_tf", "tests") and name.count(".") >= 1}
    return {f for f in files if os.path.exists(os.path.join(ROOT, f))} - {path}


def imports_of(module: str, modules: set) -> set:
    """The dqn_tf modules `module` imports, at its top or inside any function."""
    found = {f[len("dqn_tf/"):-3] for f in imported_files(f"dqn_tf/{module}.py")
             if f.startswith("dqn_tf/")}
    return found & modules


def build_targets() -> dict:
    """BUILD's targets by name, each {"kind", "srcs", "deps", "data"}: BUILD is read as
    the Python subset it is written in, with glob() run against the source tree."""
    import glob as globbing
    targets = {}

    def rule(kind):
        def add(name, srcs=(), deps=(), data=(), **_):
            targets[name] = {"kind": kind, "srcs": list(srcs), "data": list(data),
                             "deps": [d.lstrip(":") for d in deps]}
        return add

    def glob(patterns):
        return sorted(os.path.relpath(f, ROOT) for p in patterns
                      for f in globbing.glob(os.path.join(ROOT, p)))

    exec(open(os.path.join(ROOT, "BUILD")).read(),  # noqa: S102 (our own BUILD file)
         {"py_library": rule("py_library"), "py_test": rule("py_test"),
          "package": lambda **_: None, "glob": glob})
    return targets


def glob_tests() -> list:
    return [f"tests/{f}" for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith("_test.py")]


def test_build_deps_cover_every_import():
    """`bazel test` runs each test in a sandbox that holds only its declared deps: a
    module or test that imports a project file its target does not reach fails there
    (and only there: pytest sees the whole tree)."""
    targets = build_targets()

    def reachable_files(name, seen=None):
        seen = set() if seen is None else seen
        if name not in seen:
            seen.add(name)
            for dep in targets[name]["deps"]:
                reachable_files(dep, seen)
        return {f for target in seen for f in targets[target]["srcs"]}

    # conftest's trained_cartpole fixture imports tests/main_test.py when a test asks for
    # it: the test files that use the fixture must reach main_test.py instead.
    lazy = {"tests/conftest.py": {"tests/main_test.py"}}
    for test_file in sorted(glob_tests()):
        tree = ast.parse(open(os.path.join(ROOT, test_file)).read())
        if any(isinstance(node, ast.FunctionDef) and "trained_cartpole" in
               [arg.arg for arg in node.args.args] for node in ast.walk(tree)):
            name = os.path.basename(test_file)[:-3]
            assert "tests/main_test.py" in reachable_files(name), name
    missing = {}
    for name, target in sorted(targets.items()):
        have = reachable_files(name)
        for src in target["srcs"]:
            if src.endswith(".py") and not src.endswith("__init__.py"):
                lacking = imported_files(src) - lazy.get(src, set()) - have
                if lacking:
                    missing[name] = sorted(lacking)
    assert not missing, f"BUILD targets lack deps for the files they import: {missing}"


def test_build_data_holds_the_flagfiles_each_test_names():
    """A test that trains from a preset (`--flagfile=flags/x.cfg`, `train_with_preset("x.cfg")`,
    a fixture of conftest's) finds it under `bazel test` only if its target lists it as
    data: the sweep test's CartPole flagfile once failed CI so. Every file of tests/ that a
    test target reaches through its deps counts."""
    targets = build_targets()
    presets = set(os.listdir(os.path.join(ROOT, "flags")))

    def reached(name, seen):
        if name not in seen:
            seen.add(name)
            for dep in targets[name]["deps"]:
                reached(dep, seen)
        return seen

    lacking = {}
    for name, target in sorted(targets.items()):
        if target["kind"] != "py_test":
            continue
        sources = {f for t in reached(name, set()) for f in targets[t]["srcs"]
                   if f.startswith("tests/")}
        named = {f"flags/{m}" for f in sources
                 for m in re.findall(r"\b(\w+\.cfg)\b", open(os.path.join(ROOT, f)).read())
                 if m in presets}
        if named - set(target["data"]):
            lacking[name] = sorted(named - set(target["data"]))
    assert not lacking, f"BUILD test targets lack the flagfiles they use as data: {lacking}"


def test_no_import_circle_in_the_package():
    modules = set(setup_modules())
    graph = {m: imports_of(m, modules) for m in modules}
    assert graph["run"] >= {"training", "distributed"} and "training" in graph["distributed"]
    done, path = set(), []

    def visit(module):  # Depth-first; a module met again on the path closes a circle.
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(
                path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def setup_requirements():
    """(install_requires, extras_require) of setup.py, as packaging Requirements."""
    from packaging.requirements import Requirement
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords
              if k.arg in ("install_requires", "extras_require")}
    return ([Requirement(r) for r in kwargs["install_requires"]],
            {name: [Requirement(r) for r in reqs]
             for name, reqs in kwargs["extras_require"].items()})


def test_requirements_admit_only_what_works():
    base, extras = setup_requirements()
    by_name = {r.name: r for r in base}
    # ale-py 0.11's vector env counts the 108k cap in agent steps and ignores seed 0.
    assert not by_name["ale-py"].specifier.contains("0.11.9")
    assert by_name["ale-py"].specifier.contains("0.12.1")
    # dqn_tf.optimizers uses Keras internals: a range, tested at both ends.
    keras = by_name["keras"].specifier
    assert keras.contains("3.12.0") and keras.contains("3.15.1")
    assert not keras.contains("3.16.0") and not keras.contains("4.0.0")


def test_the_test_extra_installs_what_pytest_ini_and_the_tests_use():
    """A fresh `pip install -e ".[test]"` must run `python -m pytest` as pytest.ini says."""
    import configparser
    _, extras = setup_requirements()
    test_extra = {r.name for r in extras["test"]}
    ini = configparser.ConfigParser()
    ini.read(os.path.join(ROOT, "pytest.ini"))
    if "-n" in ini["pytest"]["addopts"].split():
        assert "pytest-xdist" in test_extra
    assert {"pytest", "ray", "rliable", "ai-edge-litert", "ruff"} <= test_extra


def test_no_name_is_undefined_shadowed_or_unused():
    """Pyflakes' checks (ruff's F rules) over the package and the tests: a function named
    like a module it imports once shadowed that module in dqn_tf.sweep, which only the
    slow sweep tests reached."""
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F",
                           "--no-cache", "--output-format", "concise", "dqn_tf", "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


def test_one_tensorflow_distribution_with_or_without_the_gpu_extra():
    """tensorflow-cpu and tensorflow[and-cuda] would both own site-packages/tensorflow."""
    base, extras = setup_requirements()
    distributions = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"}
    assert "and-cuda" in extras
    for extra in [[]] + list(extras.values()):
        names = {r.name for r in base + extra if r.name in distributions}
        assert names == {"tensorflow"}, names
    [cuda] = [r for r in extras["and-cuda"] if r.name == "tensorflow"]
    assert cuda.extras == {"and-cuda"} and cuda.specifier == {
        r for r in base if r.name == "tensorflow"}.pop().specifier


def test_startup_noise_is_dropped_and_real_warnings_are_kept():
    from dqn_tf import tensorflow_startup
    text = "\n".join([
        "WARNING: All log messages before absl::InitializeLog() is called are written to "
        "STDERR",
        "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.",
        "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        "W0000 00:00:1.0 1 some_op.cc:1] a real warning"])
    assert tensorflow_startup.startup_lines_to_keep(text, no_gpu_wanted=True) == [
        "W0000 00:00:1.0 1 some_op.cc:1] a real warning"]
    kept = tensorflow_startup.startup_lines_to_keep(text, no_gpu_wanted=False)  # A GPU machine.
    assert len(kept) == 2 and "failed call to cuInit" in kept[0]
    assert kept[1].endswith("a real warning")


@pytest.mark.slow
def test_a_normal_run_prints_no_error_looking_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dqn_tf.main", "--flagfile=flags/smoke.cfg", "--env=Pong",
         "--num_steps=3000", "--min_replay_size=2500", "--eval_every=0",
         f"--output_dir={tmp_path}/run"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    c_logs = [line for line in lines if re.match(r"[IWEF]\d{4} ", line)]
    assert not c_logs and not any("InitializeLog" in line for line in lines), lines[:5]
    bar = [line for line in lines if "step/s" in line]
    assert bar and not any("nan" in line for line in bar)  # The bar is the only output.
    assert any("warm-up" in line for line in bar)  # No loss before learning...
    assert re.search(r"loss=\d+\.\d{4}", bar[-1])  # ...and one after.
    # Playing the exported model: no ALE banner, no TF line either, only games.
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.evaluate", "--episodes=1",
                           f"--saved_model={tmp_path}/run/saved_model/final"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and all("game" in line for line in lines), lines[:5]


@pytest.mark.parametrize("module", setup_modules())
def test_every_module_imports(module):
    importlib.import_module(f"dqn_tf.{module}")


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
