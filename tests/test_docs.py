"""Every command in README.md and docs/ names a real console script (and subcommand), a real
launcher script, and real flags of it.

Console scripts come from setup.cfg's console_scripts (the source of truth in the tree, so a
tool added or moved there is checked without reinstalling). Their flags are whatever each
tool prints for ``--helpfull`` when started as ``<script> [subcommand] --helpfull``: nothing
is assumed about how the CLI is organised inside. To pay the import of JAX once instead of
once per tool, one helper process imports the entry modules and forks a child per tool;
where fork is unavailable, the helper fails, or importing an entry module defines flags
(then every tool would list them), each tool runs in its own process.

Scripts under experiments/ and tools/ define their flags at module level (absl DEFINE_* or
argparse add_argument); those are read from the script's source (and the sibling modules
it imports) without running it.

What is checked: shell lines of ```bash / ```sh / ```console blocks, and inline `code`
spans outside code blocks that start with a crbm-* tool, ``python <script>.py`` or a bare
``--flag`` (a bare flag must belong to some tool or launcher). ``--noX`` is accepted for a
boolean X, ``--<config>.anything`` for an ml_collections config flag, ``--search_*`` as a
pattern that must match at least one flag.
"""
import ast
import concurrent.futures
import configparser
import fnmatch
import functools
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
# Flags of other programs that the docs may mention on their own (pytest's, pip's).
OTHER_PROGRAMS_FLAGS = {"durations", "upgrade", "quiet", "target", "editable"}
PYTHON = re.compile(r"^python(\d(\.\d+)?)?$")
WRAPPERS = {"time", "timeout", "nice", "env", "exec"}
FLAG_NAME = re.compile(r"^[A-Za-z0-9_.*-]+$")
SUBCOMMAND = re.compile(r"^[a-z][a-z0-9_-]*$")


def doc_files():
  return [REPO / "README.md"] + sorted((REPO / "docs").rglob("*.md"))


def console_scripts(setup_cfg=REPO / "setup.cfg") -> dict:
  """{script: "module:function"} from setup.cfg's [options.entry_points]."""
  parser = configparser.ConfigParser()
  parser.read(setup_cfg, encoding="utf-8")
  text = parser.get("options.entry_points", "console_scripts", fallback="")
  scripts = {}
  for line in text.splitlines():
    if "=" in line:
      name, target = (s.strip() for s in line.split("=", 1))
      scripts[name] = target
  return scripts


# -- reading the commands out of Markdown ----------------------------------------------------


def markdown_commands(text: str):
  """Yields (line number, command text, source) for shell lines of fenced shell blocks
  (continuation lines joined, comments and prompts dropped) and inline code spans (which
  may wrap across lines) outside code blocks."""
  fence, language, pending, pending_line = None, "", "", 0
  prose, prose_line = [], 1

  def spans():
    text = "\n".join(prose)
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
      yield (prose_line + text.count("\n", 0, match.start()),
             " ".join(match.group(1).split()), "inline")

  for number, line in enumerate(text.splitlines(), 1):
    stripped = line.strip()
    opening = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
    if fence is None and opening:
      yield from spans()
      prose, prose_line = [], number + 1
      fence, language = opening.group(1), opening.group(2).lower()
      continue
    if fence is None:
      prose.append(line)
      continue
    if stripped.startswith(fence) and stripped.strip(fence[0]) == "":
      fence, prose_line = None, number + 1
      continue
    if language not in SHELL_LANGUAGES:
      continue
    if stripped.startswith("$ "):
      stripped = stripped[2:]
    if not pending and (not stripped or stripped.startswith("#")):
      continue
    if not pending:
      pending_line = number
    if stripped.endswith("\\"):
      pending += stripped[:-1] + " "
      continue
    yield pending_line, pending + stripped, "block"
    pending = ""
  yield from spans()


def looks_like_command(span: str) -> bool:
  """An inline span worth checking: it starts with a crbm-* tool, python, a --flag, an
  environment assignment or a wrapper such as timeout."""
  return bool(re.match(r"^(\S*/)?(crbm-|python|--|[A-Z_][A-Z0-9_]*=|timeout |time )", span))


def split_segments(command: str, comments: bool):
  """Shell words of each simple command (split at | && || ; ( ) and $( ))."""
  lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  if not comments:
    lexer.commenters = ""
  words = list(lexer)
  segment = []
  for word in words:
    if word and set(word) <= set("|&;()<>"):
      if segment:
        yield segment
      segment = []
    elif word == "$":
      continue
    else:
      segment.append(word.strip("[]"))
  if segment:
    yield segment


def classify(words):
  """('tool', script, rest) | ('script', path, rest) | ('flags', None, words) | None."""
  while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or
                   os.path.basename(words[0]) in WRAPPERS or
                   (words[0].isdigit() or re.match(r"^\d+[smh]?$", words[0]))):
    words = words[1:]
  if not words:
    return None
  head = os.path.basename(words[0])
  if head.startswith("crbm-") and not words[0].startswith("."):
    return "tool", head, words[1:]
  if PYTHON.match(head) and len(words) > 1:
    if words[1] == "-m" and len(words) > 2:
      if words[2] == "crbm_jax.cli" and len(words) > 3:
        return "tool", f"crbm-{words[3]}", words[4:]
      if words[2] == "pytest":
        return "pytest", None, words[3:]
      return None
    if words[1].endswith(".py"):
      return "script", words[1], words[2:]
    return None
  if words[0].startswith("--"):
    return "flags", None, words
  return None


def flag_names(words):
  """The --flag names among words (without --, =value, placeholders such as --X=...)."""
  names = []
  for word in words:
    if word.startswith("--") and len(word) > 2:
      name = word[2:].split("=", 1)[0].rstrip(",.:;")
      if FLAG_NAME.match(name):
        names.append(name)
  return names


def subcommand_of(rest):
  """The first positional word when it looks like a subcommand (lower-case word)."""
  for word in rest:
    if word.startswith("-"):
      return None
    return word if SUBCOMMAND.match(word) else None
  return None


# -- what each program accepts --------------------------------------------------------------


def _markers() -> set:
  """The markers pyproject.toml registers for pytest."""
  text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
  return set(re.findall(r'^\s*"(\w+):', text, re.M))


class FlagSet:
  """Flags a program accepts: names, boolean names (--noX), config flags (--X.anything)."""

  def __init__(self, names=(), booleans=(), configs=()):
    self.names, self.booleans, self.configs = set(names), set(booleans), set(configs)

  def __or__(self, other):
    return FlagSet(self.names | other.names, self.booleans | other.booleans,
                   self.configs | other.configs)

  def accepts(self, name: str) -> bool:
    if "*" in name:
      return any(fnmatch.fnmatchcase(n, name) for n in self.names)
    if name in self.names:
      return True
    if name.startswith("no") and name[2:] in self.booleans:
      return True
    return any(name.startswith(c + ".") for c in self.configs)


HELP_FLAGS = ("help", "helpshort", "helpfull", "flagfile", "undefok")
HELP_FLAG = re.compile(r"^\s+(?:-\S+,)?--(\[no\])?([A-Za-z0-9_.-]+):")


def parse_helpfull(text: str):
  """(every flag listed, the flags of absl's own modules) from absl --helpfull output."""
  ours, absl_own, module = FlagSet(), FlagSet(), ""
  for line in text.splitlines():
    heading = re.match(r"^(\S+):$", line)
    if heading:
      module = heading.group(1)
      continue
    match = HELP_FLAG.match(line)
    if match:
      for flag_set in (ours, absl_own) if module.startswith("absl") else (ours,):
        flag_set.names.add(match.group(2))
        if match.group(1):
          flag_set.booleans.add(match.group(2))
  return ours, absl_own


_CHILD = r"""
import importlib, json, os, sys
from absl import app, flags, logging  # absl's own flags, defined at import
specs, out_dir = json.loads(sys.argv[1]), sys.argv[2]
before = set(flags.FLAGS)
for _, target, _ in specs:
  importlib.import_module(target.split(":")[0])
if set(flags.FLAGS) - before:
  # Flags defined at import would be listed by every tool's --helpfull: the caller runs
  # each tool in a process of its own instead.
  sys.exit(4)
children = {}
for i, (script, target, sub) in enumerate(specs):
  sys.stdout.flush(); sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    out = os.open(os.path.join(out_dir, f"{i}.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1); os.dup2(out, 2)
    sys.argv = [script] + sub + ["--helpfull"]
    module, function = target.split(":")
    code = 0
    try:
      getattr(importlib.import_module(module), function)()
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 -- reported to the parent as text
      print(f"{type(e).__name__}: {e}")
      code = 3
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)
  children[pid] = i
status = {}
while children:
  pid, code = os.wait()
  if pid in children:
    status[children.pop(pid)] = os.waitstatus_to_exitcode(code)
results = []
for i, (script, target, sub) in enumerate(specs):
  with open(os.path.join(out_dir, f"{i}.txt"), encoding="utf-8", errors="replace") as f:
    results.append([script, sub, status[i], f.read()])
with open(os.path.join(out_dir, "helpfull.json"), "w", encoding="utf-8") as out:
  json.dump(results, out)
"""


def _helpfull_one(script, target, sub, env):
  module, function = target.split(":")
  code = (f"import sys; sys.argv = {[script] + list(sub) + ['--helpfull']!r}; "
          f"import {module} as m; m.{function}()")
  run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, timeout=300, check=False)
  return run.returncode, run.stdout + run.stderr


def tool_help(pairs, scripts, tmp_dir) -> dict:
  """{(script, subcommand or None): (exit status, --helpfull output)} for each pair whose
  script exists."""
  specs = [[s, scripts[s], [sub] if sub else []] for s, sub in sorted(pairs, key=str)
           if s in scripts]
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["PYTHONPATH"] = str(REPO)
  env.setdefault("JAX_PLATFORMS", "cpu")
  found = {}
  if specs and hasattr(os, "fork"):
    helper = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(specs), str(tmp_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              start_new_session=True)
    try:
      helper.wait(timeout=300)
    except subprocess.TimeoutExpired:
      os.killpg(helper.pid, signal.SIGKILL)  # the helper and its forked children
      helper.wait()
    try:
      out = pathlib.Path(tmp_dir) / "helpfull.json"
      for script, sub, status, text in json.loads(out.read_text(encoding="utf-8")):
        found[(script, sub[0] if sub else None)] = (status, text)
    except (OSError, ValueError):  # no result: each tool in its own process below
      found = {}
  missing = [spec for spec in specs if (spec[0], spec[2][0] if spec[2] else None) not in found]
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    results = pool.map(lambda spec: _helpfull_one(*spec, env), missing)
    for (script, _, sub), result in zip(missing, results):
      found[(script, sub[0] if sub else None)] = result
  return found


def _imported_siblings(tree, folder):
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.add(node.module.split(".")[0])
    elif isinstance(node, ast.Import):
      names.update(a.name.split(".")[0] for a in node.names)
  return [folder / f"{n}.py" for n in sorted(names) if (folder / f"{n}.py").is_file()]


@functools.lru_cache(maxsize=None)
def script_flags(path: pathlib.Path) -> FlagSet:
  """Flags a launcher script defines at module level: absl DEFINE_* calls (and
  ml_collections config flags) and argparse add_argument, in the script and the sibling
  modules it imports."""
  flag_set = FlagSet()
  todo, seen = [path], set()
  while todo:
    current = todo.pop()
    if current in seen:
      continue
    seen.add(current)
    tree = ast.parse(current.read_text(encoding="utf-8"))
    todo.extend(_imported_siblings(tree, current.parent))
    for node in ast.walk(tree):
      if not (isinstance(node, ast.Call) and node.args):
        continue
      func = node.func
      fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
      first = node.args[0]
      if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        continue
      if fname.startswith("DEFINE_"):
        flag_set.names.add(first.value)
        if fname in ("DEFINE_bool", "DEFINE_boolean"):
          flag_set.booleans.add(first.value)
        if fname.startswith("DEFINE_config"):
          flag_set.configs.add(first.value)
      elif fname == "add_argument":
        for arg in node.args:
          if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
            flag_set.names.add(arg.value[2:])
  return flag_set


# -- the check ------------------------------------------------------------------------------


class DocChecker:
  """Collects the commands of some Markdown texts, learns what the programs accept (one
  batch of --helpfull runs), and lists every problem as 'file:line: reason'."""

  def __init__(self, texts: dict, tmp_dir, scripts=None):
    self.scripts = console_scripts() if scripts is None else scripts
    self.commands = []
    for name, text in texts.items():
      for line, command, source in markdown_commands(text):
        if source == "inline" and not looks_like_command(command):
          continue
        try:
          segments = list(split_segments(command, comments=source == "block"))
        except ValueError as e:
          self.commands.append((name, line, command, ("unparsable", str(e), [])))
          continue
        for words in segments:
          kind = classify(words)
          if kind:
            self.commands.append((name, line, command, kind))
    pairs = {(s, subcommand_of(rest)) for _, _, _, (k, s, rest) in self.commands
             if k == "tool"}
    pairs |= {(s, None) for s in self.scripts}
    self.help = tool_help(pairs, self.scripts, tmp_dir)
    # The runner (crbm_jax/cli/runner.py) takes the help flags itself; absl's own modules'
    # flags are listed too where a tool's --helpfull prints them.
    self.absl_own = FlagSet(HELP_FLAGS)
    self.everything = FlagSet(HELP_FLAGS)
    for status, text in self.help.values():
      ours, absl_own = parse_helpfull(text)
      self.absl_own |= absl_own
      self.everything |= ours
    for folder in ("experiments", "tools"):
      for path in sorted((REPO / folder).glob("*.py")):
        self.everything |= script_flags(path)

  def tool_flags(self, script, sub):
    status, text = self.help[(script, sub)]
    ours, _ = parse_helpfull(text)
    return ours if ours.names else None, status, text

  def problems(self):
    found = []
    for name, line, command, (kind, target, rest) in self.commands:
      where = f"{name}:{line}: `{command.strip()}`"
      if kind == "unparsable":
        found.append(f"{where}: cannot split into shell words ({target})")
      elif kind == "tool":
        found.extend(f"{where}: {p}" for p in self._check_tool(target, rest))
      elif kind == "script":
        found.extend(f"{where}: {p}" for p in self._check_script(target, rest))
      elif kind == "pytest":
        for word in rest:
          path = word.split("::")[0]
          if path.startswith("tests/") and not (REPO / path).exists():
            found.append(f"{where}: {path} does not exist")
        for flag, expr in zip(rest, rest[1:]):
          if flag == "-m":
            found.extend(f"{where}: marker {m!r} is not registered in pyproject.toml"
                         for m in re.findall(r"[A-Za-z_]\w*", expr)
                         if m not in ("and", "or", "not") and m not in _markers())
      elif kind == "flags":
        for flag in flag_names(rest[:1]):
          if not (self.everything.accepts(flag) or flag in OTHER_PROGRAMS_FLAGS):
            found.append(f"{where}: --{flag} is a flag of no tool or launcher")
    return found

  def _check_tool(self, script, rest):
    if script not in self.scripts:
      return [f"{script} is not a console script (setup.cfg has "
              f"{', '.join(sorted(self.scripts))})"]
    flags = flag_names(rest)
    sub = subcommand_of(rest)
    if not flags and sub is None:
      return []
    accepted, status, text = self.tool_flags(script, sub)
    if accepted is None:
      first = next((l for l in text.splitlines() if l.strip()), "")
      what = f"{script} {sub}" if sub else script
      return [f"`{what} --helpfull` lists no flags (exit {status}: {first.strip()[:200]})"]
    accepted = accepted | self.absl_own
    return [f"{script}{' ' + sub if sub else ''} has no flag --{f}" for f in flags
            if not accepted.accepts(f)]

  def _check_script(self, target, rest):
    path = (REPO / target).resolve()
    if not path.is_file():
      return [f"{target} does not exist"]
    accepted = script_flags(path) | self.absl_own
    return [f"{target} has no flag --{f}" for f in flag_names(rest)
            if not accepted.accepts(f)]


MISTAKES = textwrap.dedent("""\
    ```bash
    crbm-fitt --tags t.tsv --workdir w
    crbm-fit --tags t.tsv --serch_configs 8 --workdir w
    crbm-autotag trian --workdir w
    crbm-autotag predict --workdir w --topp 3
    python experiments/bench_grid.py --protocoll
    python experiments/no_such_launcher.py
    python -m pytest tests/test_no_such_file.py
    python -m pytest -m "not slo"
    ```
    Prose: `crbm-smooth --methd sample` and `--serch_seconds`, `crbm-convrt`.
    """)
CORRECT = textwrap.dedent("""\
    ```bash
    crbm-fit --tags t.tsv --workdir w --nosearch --search_configs 8 \\
        --helpfull   # comment --not_a_flag
    crbm-autotag predict --workdir w --top 3 | head
    python experiments/table2_pseudolikelihood.py --workdir=/tmp/t2 \\
        --config=crbm_jax/configs/table2.py:full --config.search=both
    python tools/calibrate_simulation.py --search
    python -m pytest -m "extended and not slow"
    ```
    Prose: `crbm-smooth --method mean_field`, `--search_*`, `--noprogress`.
    """)


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
  texts = {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in doc_files()}
  texts["<mistakes>"] = MISTAKES
  texts["<correct>"] = CORRECT
  return DocChecker(texts, tmp_path_factory.mktemp("helpfull"))


def test_every_console_script_prints_its_flags(checker):
  for script in checker.scripts:
    status, text = checker.help[(script, None)]
    ours, absl_own = parse_helpfull(text)
    # A tool with subcommands lists no flags of its own without one; every script is an
    # absl program, so --helpfull works for each (or it prints a usage line).
    assert ours.names or "usage" in text.lower(), (script, status, text[-2000:])
  assert all(checker.absl_own.accepts(f) for f in HELP_FLAGS)


def test_docs_name_real_scripts_and_flags(checker):
  problems = [p for p in checker.problems() if not p.startswith("<")]
  assert not problems, "\n".join(problems)


def test_the_check_catches_misspelt_scripts_and_flags(checker):
  problems = [p for p in checker.problems() if p.startswith("<mistakes>")]
  expected = ["crbm-fitt is not a console script", "crbm-fit has no flag --serch_configs",
              "`crbm-autotag trian --helpfull` lists no flags",
              "crbm-autotag predict has no flag --topp",
              "experiments/bench_grid.py has no flag --protocoll",
              "experiments/no_such_launcher.py does not exist",
              "tests/test_no_such_file.py does not exist",
              "marker 'slo' is not registered in pyproject.toml",
              "crbm-smooth has no flag --methd",
              "--serch_seconds is a flag of no tool or launcher",
              "crbm-convrt is not a console script"]
  for text in expected:
    assert any(text in p for p in problems), (text, problems)
  assert len(problems) == len(expected), problems
  assert not [p for p in checker.problems() if p.startswith("<correct>")]


def test_markdown_reading():
  text = ("```bash\ncrbm-fit --a 1 \\\n  --b 2  # --c\n# crbm-x: output\n```\n"
          "`crbm-y --d`, the\n`crbm-z\n--e` and `80's`\n")
  commands = list(markdown_commands(text))
  assert [(line, source) for line, _, source in commands] == [
      (2, "block"), (6, "inline"), (7, "inline"), (8, "inline")]
  assert [looks_like_command(c) for _, c, _ in commands] == [True, True, True, False]
  words = [w for _, c, s in commands[:3] for w in split_segments(c, comments=s == "block")]
  assert words == [["crbm-fit", "--a", "1", "--b", "2"], ["crbm-y", "--d"], ["crbm-z", "--e"]]
  assert flag_names(["--x=1", "--", "-m", "--search_*", "--y.z=2"]) == ["x", "search_*",
                                                                        "y.z"]
  assert subcommand_of(["train", "--x"]) == "train" and subcommand_of(["a.tsv"]) is None
