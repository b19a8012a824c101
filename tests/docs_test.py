"""Every command in README.md and docs/*.md is checked, and the short ones are run.

Commands are the lines of the ```bash, ```sh and ```console blocks (a trailing backslash joins
lines, `#` starts a comment, `&&` and `;` separate commands, `$ ` prompts are dropped), and
inline code that starts with `python -m dqn_tf.`, `python bench/`, `bench/` or `pip install`, or
is in ALLOWED.

- `python -m dqn_tf.<module> ...` in a block: the module exists, and absl parses the command's
  arguments as written, in one subprocess per module that defines the module's flags as
  `python -m` does and stops before its main: so every `--flag` is one the module defines,
  every value has the flag's type, and every `--flagfile` exists and parses. For dqn_tf.main
  the parsed flags must also build a valid Config (`config.from_flags`, the first thing main
  does: the game name, the presets' numbers). Inline (usage lines such as
  `python -m dqn_tf.plot RUN_DIR... [--reference ...]`): the module exists and defines each flag.
- `python bench/<script>.py ...`: the script exists, its `--help` succeeds and lists each option.
- `pip install -e <dir>[extras]`: the directory has a setup.py whose extras_require has each extra.
- Any other command must be in ALLOWED, with the reason it is not checked.
- Every `--flag` named in the prose's inline code is a flag of a documented dqn_tf module or a
  bench script.
- Every relative link and image points to a file that exists, and every `#anchor` to a
  heading there; README.md stays within 200 lines and links every docs/*.md file.

Run as written: the commands that ask for help (`python -m dqn_tf.main --helpfull`). No other
documented command qualifies: each installs packages, runs the whole suite, starts a server,
trains or sweeps (minutes to hours), or plays, exports or plots a trained run, and no trained
run is in the repository. The whole file takes about 25 s (6 processes that import TF).
"""

import ast
import functools
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

# One worker parses every module's flags once (a process per module), for all the tests.
pytestmark = pytest.mark.xdist_group("docs")
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DOCS = ["README.md"] + sorted(os.path.join("docs", f)
                              for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
HELP_FLAGS = ("--help", "--helpfull", "--helpshort", "-h")
README_MAX_LINES = 200

# Commands that are neither checked nor run, each with the reason.
ALLOWED = {
    "python -m pytest": "the whole test suite (about 5 minutes); it checks itself",
    "tensorboard --logdir runs": "TensorBoard's server, which runs until stopped",
}

# Defines a dqn_tf module's flags as `python -m dqn_tf.<module>` does (absl's app.run is
# replaced, so main never runs), then parses each argv of stdin's JSON list as app.run would.
# Prints one JSON line: the module's flags (name -> boolean?) and an error or null per argv.
PARSE_SCRIPT = r"""
import json, runpy, sys
from absl import app, flags
module, argvs = sys.argv[1], json.loads(sys.stdin.read())
app.run = lambda *args, **kwargs: None
runpy.run_module(module, run_name="__main__", alter_sys=True)
app.define_help_flags()
FLAGS = flags.FLAGS
errors = []
for argv in argvs:
    FLAGS.unparse_flags()
    try:
        rest = FLAGS([module] + argv)
        if module == "dqn_tf.main":
            if len(rest) > 1:
                raise ValueError("unexpected arguments: " + " ".join(rest[1:]))
            from dqn_tf import config
            config.from_flags()
        errors.append(None)
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}".splitlines()[0])
names = {name: bool(flag.boolean) for name, flag in FLAGS._flags().items()}
print(json.dumps({"flags": names, "errors": errors}))
"""


def read(path: str) -> str:
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def split_blocks(text: str):
    """(prose with code blocks blanked, [(language, first line number, lines)])."""
    prose, blocks, block = [], [], None
    for number, line in enumerate(text.split("\n"), 1):
        fence = re.match(r"\s*```\s*(\S*)", line)
        if fence and block is None:
            block = (fence.group(1).lower(), number + 1, [])
            prose.append("")
        elif fence:
            blocks.append(block)
            block = None
            prose.append("")
        elif block is not None:
            block[2].append(line)
            prose.append("")
        else:
            prose.append(line)
    assert block is None, "a code block is never closed"
    return "\n".join(prose), blocks


def inline_code(prose: str) -> list:
    """The inline code spans of the prose, with their line numbers."""
    return [(prose.count("\n", 0, m.start()) + 1, m.group(1).strip())
            for m in re.finditer(r"`([^`\n]+)`", prose)]


def is_command(code: str) -> bool:
    """Whether a piece of inline code is a command (see the module docstring)."""
    return bool(re.match(r"(python -m dqn_tf\.|python bench/|bench/\S+\.py|pip install)", code)
                or code in ALLOWED)


def split_commands(line: str) -> list:
    """A shell line -> one token list per command (`&&`, `;`), comments and env settings off."""
    tokens = shlex.split(line, comments=True)
    commands, current = [], []
    for token in tokens + ["&&"]:
        if token in ("&&", ";"):
            while current and re.match(r"[A-Za-z_]\w*=", current[0]):
                current.pop(0)  # FOO=bar python ...: only the command matters here.
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    return commands


@functools.lru_cache(maxsize=None)
def documented_commands():
    """[(where, tokens, inline?)] for every command in the documentation."""
    found = []
    for path in DOCS:
        prose, blocks = split_blocks(read(path))
        for language, first, block_lines in blocks:
            if language not in SHELL_LANGUAGES:
                continue
            joined, start = "", first
            for number, line in enumerate(block_lines, first):
                if language == "console":
                    if not joined and not line.startswith("$ "):
                        continue  # Output, not a command.
                    line = line[2:] if not joined else line
                if not joined:
                    start = number
                if line.rstrip().endswith("\\"):
                    joined += line.rstrip()[:-1] + " "
                    continue
                for tokens in split_commands(joined + line):
                    found.append((f"{path}:{start}", tokens, False))
                joined = ""
            assert not joined, f"{path}:{start}: the block ends with a backslash"
        for number, code in inline_code(prose):
            if is_command(code):
                for tokens in split_commands(code):
                    found.append((f"{path}:{number}", tokens, True))
    return found


def dqn_tf_module(tokens):
    """'dqn_tf.main' for `python -m dqn_tf.main ...`, else None."""
    if tokens[:2] == ["python", "-m"] and len(tokens) > 2 and tokens[2].startswith("dqn_tf."):
        return tokens[2]
    return None


def bench_script(tokens):
    """'bench/benchmark.py' for `python bench/benchmark.py ...` or `bench/benchmark.py ...`."""
    for candidate in (tokens[1:2] if tokens[0] == "python" else []) + tokens[:1]:
        if candidate.startswith("bench/") and candidate.endswith(".py"):
            return candidate
    return None


def flag_names(tokens) -> list:
    """The flag names a command passes: `--name`, `--name=value`, `--noname`."""
    return [m.group(1) for token in tokens
            for m in [re.match(r"--([A-Za-z_][\w-]*)", token)] if m]


def known(name: str, flags: dict) -> bool:
    """Whether `--name` sets one of `flags` (name -> boolean?); `--nofoo` negates foo."""
    return name in flags or (name.startswith("no") and flags.get(name[2:], False))


@pytest.fixture(scope="module")
def parsed():
    """Per dqn_tf module in the documentation: its flags, and each block command's parse
    error (None when absl and, for main, Config accept it as written)."""
    argvs = {}
    for where, tokens, inline in documented_commands():
        module = dqn_tf_module(tokens)
        if module:
            argvs.setdefault(module, [])
            if not inline and not set(tokens) & set(HELP_FLAGS):
                argvs[module].append((where, tokens[3:]))
    out = {}
    for module, commands in sorted(argvs.items()):
        if not os.path.exists(os.path.join(ROOT, *module.split(".")) + ".py"):
            continue  # test_every_command_is_checked_or_allowed names it.
        proc = subprocess.run([sys.executable, "-c", PARSE_SCRIPT, module], cwd=ROOT,
                              input=json.dumps([argv for _, argv in commands]),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{module}: {proc.stderr[-2000:]}"
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        out[module] = dict(flags=result["flags"],
                           errors=[(where, " ".join(["python -m", module] + argv), error)
                                   for (where, argv), error in zip(commands, result["errors"])])
    return out


@functools.lru_cache(maxsize=None)
def bench_help(script: str):
    """(exit code, the options `python <script> --help` lists)."""
    proc = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, set(re.findall(r"--([A-Za-z_][\w-]*)", proc.stdout))


def setup_extras() -> set:
    tree = ast.parse(read("setup.py"))
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    [extras] = [ast.literal_eval(k.value) for k in call.keywords if k.arg == "extras_require"]
    return set(extras)


def test_every_command_is_checked_or_allowed():
    commands = documented_commands()
    assert any(dqn_tf_module(tokens) == "dqn_tf.main" for _, tokens, _ in commands)
    problems = []
    for where, tokens, _ in commands:
        module, text = dqn_tf_module(tokens), " ".join(tokens)
        if module:
            if not os.path.exists(os.path.join(ROOT, *module.split(".")) + ".py"):
                problems.append(f"{where}: no module {module}: {text}")
        elif bench_script(tokens) or tokens[:2] == ["pip", "install"]:
            pass  # test_bench_scripts_and_their_options, test_pip_extras_exist.
        elif text not in ALLOWED:
            problems.append(f"{where}: `{text}` is neither checked nor in ALLOWED (with a reason)")
    stale = set(ALLOWED) - {" ".join(tokens) for _, tokens, _ in commands}
    problems += [f"ALLOWED holds `{text}`, which no document has any more" for text in stale]
    assert not problems, "\n".join(problems)


def test_pip_extras_exist():
    extras, problems = setup_extras(), []
    for where, tokens, _ in documented_commands():
        if tokens[:2] != ["pip", "install"]:
            continue
        targets = [t for t in tokens[2:] if not t.startswith("-")]
        assert targets and "-e" in tokens, f"{where}: expected `pip install -e <dir>`"
        for target in targets:
            directory, _, names = target.partition("[")
            if not os.path.exists(os.path.join(ROOT, directory, "setup.py")):
                problems.append(f"{where}: {directory} has no setup.py")
            missing = {n.strip() for n in names.rstrip("]").split(",") if n.strip()} - extras
            if missing:
                problems.append(f"{where}: setup.py has no extra {', '.join(sorted(missing))}")
    assert not problems, "\n".join(problems)


def test_dqn_tf_commands_parse_as_written(parsed):
    problems = []
    for where, tokens, _ in documented_commands():
        for token in tokens:
            if token.startswith("--flagfile="):
                path = token.split("=", 1)[1]
                if not os.path.exists(os.path.join(ROOT, path)):
                    problems.append(f"{where}: no flagfile {path}")
    for module in parsed.values():
        problems += [f"{where}: {command}: {error}"
                     for where, command, error in module["errors"] if error]
    assert sum(len(m["errors"]) for m in parsed.values()) >= 10  # The extraction finds them.
    assert not problems, "\n".join(problems)


def test_inline_commands_pass_only_flags_their_module_defines(parsed):
    problems = []
    for where, tokens, inline in documented_commands():
        module = dqn_tf_module(tokens)
        if inline and module in parsed:
            problems += [f"{where}: {module} has no flag --{name}"
                         for name in flag_names(tokens) if not known(name, parsed[module]["flags"])]
    assert not problems, "\n".join(problems)


def test_bench_scripts_and_their_options():
    problems = []
    for where, tokens, _ in documented_commands():
        script = bench_script(tokens)
        if not script:
            continue
        if not os.path.exists(os.path.join(ROOT, script)):
            problems.append(f"{where}: no script {script}")
            continue
        code, options = bench_help(script)
        if code != 0:
            problems.append(f"{where}: `python {script} --help` exits with {code}")
        problems += [f"{where}: {script} has no option --{name}"
                     for name in flag_names(tokens) if name not in options]
    assert not problems, "\n".join(problems)


def test_flags_named_in_the_prose_exist(parsed):
    flags = {}
    for module in parsed.values():
        flags.update(module["flags"])
    options = set()
    for _, tokens, _ in documented_commands():
        if bench_script(tokens) and os.path.exists(os.path.join(ROOT, bench_script(tokens))):
            options |= bench_help(bench_script(tokens))[1]
    problems = []
    for path in DOCS:
        prose, _ = split_blocks(read(path))
        for number, code in inline_code(prose):
            if is_command(code):
                continue  # Commands: the tests above.
            problems += [f"{path}:{number}: `{code}`: no dqn_tf module or bench script has "
                         f"--{name}" for name in re.findall(r"(?<![\w-])--([A-Za-z_][\w-]*)", code)
                         if not known(name, flags) and name not in options]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where,command", sorted(
    {(where, " ".join(tokens)) for where, tokens, inline in documented_commands()
     if dqn_tf_module(tokens) and not inline and set(tokens) & set(HELP_FLAGS)}))
def test_help_commands_run_as_written(where, command, parsed):
    tokens = shlex.split(command)
    proc = subprocess.run([sys.executable] + tokens[1:], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    # absl's help flags print the help and exit with 1.
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    listed = set(re.findall(r"^\s+(?:-\S+,)?--(?:\[no\])?(\w+):", proc.stdout, re.MULTILINE))
    module = dqn_tf_module(tokens)
    defined = {name for name in parsed[module]["flags"] if len(name) > 1}  # Not -v, -?.
    missing = defined - listed
    assert len(listed) > 10 and not missing, f"{where}: {command} does not list {sorted(missing)}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # A link: its text.
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: str) -> set:
    prose, _ = split_blocks(read(path))
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.MULTILINE):
        anchor = github_anchor(heading)
        out.add(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
        seen[anchor] = seen.get(anchor, 0) + 1
    return out


def test_links_and_images_resolve():
    problems = []
    for path in DOCS:
        prose, _ = split_blocks(read(path))
        prose = re.sub(r"`[^`\n]*`", "", prose)  # [x](y) inside inline code is not a link.
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue  # An external address: not checked offline.
            file, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(os.path.join(ROOT, resolved)):
                problems.append(f"{path}: link to {target}: no file {resolved}")
            elif anchor and (not resolved.endswith(".md") or anchor not in anchors(resolved)):
                problems.append(f"{path}: link to {target}: no heading #{anchor} in {resolved}")
    assert not problems, "\n".join(problems)


def test_readme_is_short_and_links_every_doc():
    readme = read("README.md")
    assert readme.count("\n") + (not readme.endswith("\n")) <= README_MAX_LINES, (
        f"README.md has more than {README_MAX_LINES} lines: move a section to docs/")
    linked = {os.path.normpath(t.partition("#")[0])
              for t in re.findall(r"\]\(([^)\s]+)\)", readme)}
    unlinked = [path for path in DOCS[1:] if path not in linked]
    assert not unlinked, f"README.md does not link {', '.join(unlinked)}"


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))


def test_the_module_map_names_every_module():
    """docs/design.md's table of modules, against the package's files."""
    modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "dqn_tf"))
               if f.endswith(".py") and f != "__init__.py"}
    text = open(os.path.join(ROOT, "docs", "design.md")).read()
    table = text.split("## Implementation notes", 1)[0]
    named = {name for line in table.splitlines() if line.startswith("| `")
             for name in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert modules == named, (sorted(modules - named), sorted(named - modules))
