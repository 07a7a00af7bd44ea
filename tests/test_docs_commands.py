"""The commands README.md and BENCHMARKS.md show still run as shown.

Every `python train/run.py`, `python train/distill.py`, `python -m benchmarks...`, `python examples/...`,
`accelerate launch ...` and `torchrun ...` command in their ```bash blocks must name a script or module that
exists, and its entry point's own argument parser (captured from its `main`, so it is exactly the one a reader's
shell meets) must accept every flag by its full name, and every value. A YAML preset's keys count as flags, as
train/command_line.py turns them into flags. Inline code that starts with `python ` is checked for its entry point
and flag names. RELIABILITY.md's cited tests must exist.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest

from train.command_line import yaml_to_argv

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "BENCHMARKS.md")
SEPARATORS = {"&&", "||", ";", "|"}
PLACEHOLDER_CONFIG = "CONFIG.yaml"  # the README's stand-in for any preset
TRAIN_SCRIPTS = ("train/run.py", "train/distill.py")


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser an entry point built."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def captured_parser(main: Callable[..., object], *args: object) -> argparse.ArgumentParser:
    """The parser `main` builds: it runs up to its first parse, which is stopped."""
    def stop(parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        raise _Parsed(parser)

    with mock.patch.object(argparse.ArgumentParser, "parse_known_args", stop):
        try:
            main(*args)
        except _Parsed as parsed:
            return parsed.parser
    raise AssertionError(f"{main.__module__}.main() never parsed a command line")


@functools.cache
def script_parser(script: str) -> argparse.ArgumentParser:
    if script in TRAIN_SCRIPTS:
        module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
        return captured_parser(module.main, [])
    spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return captured_parser(module.main)


@functools.cache
def module_parser(name: str) -> argparse.ArgumentParser:
    return captured_parser(importlib.import_module(name).main)


@functools.cache
def launcher_parser(launcher: str) -> argparse.ArgumentParser:
    if launcher == "accelerate launch":
        from accelerate.commands.launch import launch_command_parser

        return launch_command_parser()
    from torch.distributed.run import get_args_parser

    return get_args_parser()


def documented_commands(text: str) -> list[list[str]]:
    """The command lines of a markdown text's ```bash blocks, as tokens: continuation lines joined, comments
    dropped, `&&` chains split."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return split_commands(line for block in blocks for line in block.replace("\\\n", " ").splitlines())


def inline_commands(text: str) -> list[list[str]]:
    """The inline code of a markdown text that starts with `python ` (outside code blocks), as tokens; synopses with
    `<...>` or `[...]` placeholders are left out. Prose often names a command without its arguments."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return split_commands(span for span in re.findall(r"`(python [^`]+)`", prose) if not re.search(r"[<\[]", span))


def split_commands(lines) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for line in lines:
        for token in shlex.split(line, comments=True):
            if token in SEPARATORS:
                commands.append([])
            else:
                commands[-1].append(token)
        commands.append([])
    return [command for command in commands if command]


def entry_points(tokens: list[str]) -> list[tuple[str, list[str]]]:
    """(entry point, its arguments) for each program of ours or launcher a command runs; others (pip, pytest) none."""
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # ACCELERATE_USE_CPU=true ...
        tokens = tokens[1:]
    if tokens[:2] == ["accelerate", "launch"] or tokens[:1] == ["torchrun"]:
        launcher = "torchrun" if tokens[0] == "torchrun" else "accelerate launch"
        start = len(launcher.split())
        script = next(i for i, token in enumerate(tokens) if token.endswith(".py"))
        return [(launcher, tokens[start:script + 1]), (tokens[script], tokens[script + 1:])]
    if tokens[0] not in ("python", "python3") or len(tokens) < 2:
        return []
    if tokens[1] == "-m":
        if not tokens[2].startswith("benchmarks"):
            return []
        argv = tokens[3:]
        if "--" in argv:  # a probe that hands what follows `--` to train/run.py (benchmarks.probes.joint_variants)
            split = argv.index("--")
            return [(tokens[2], argv[:split]), ("train/run.py", argv[split + 1:])]
        return [(tokens[2], argv)]
    return [(tokens[1], tokens[2:])]


def parser_of(entry: str) -> argparse.ArgumentParser:
    """The argument parser of a documented entry point; AssertionError when the script or module does not exist."""
    if entry in ("accelerate launch", "torchrun"):
        return launcher_parser(entry)
    if entry.endswith(".py"):
        assert (ROOT / entry).is_file(), f"{entry}: no such script"
        return script_parser(entry)
    assert importlib.util.find_spec(entry) is not None, f"python -m {entry}: no such module"
    return module_parser(entry)


def with_preset(entry: str, argv: list[str]) -> list[str]:
    """train/run.py and train/distill.py read a leading YAML preset as flags, as their command line does."""
    if entry not in TRAIN_SCRIPTS or not argv or not argv[0].endswith((".yaml", ".yml")):
        return argv
    if argv[0] == PLACEHOLDER_CONFIG:
        return argv[1:]
    assert (ROOT / argv[0]).is_file(), f"{entry} {argv[0]}: no such config file"
    return yaml_to_argv(str(ROOT / argv[0])) + argv[1:]


def problems(tokens: list[str], complete: bool = True) -> list[str]:
    """What a documented command gets wrong: a missing script, module or YAML file, a flag its parser does not
    define by that full name (argparse would take an abbreviation), or, for a command shown in full (`complete`), a
    value its parser refuses."""
    found = []
    for entry, argv in entry_points(tokens):
        try:
            parser = parser_of(entry)
            argv = with_preset(entry, argv)
        except AssertionError as err:
            found.append(str(err))
            continue
        for path in (arg for arg in argv if arg.endswith((".yaml", ".yml")) and arg != PLACEHOLDER_CONFIG):
            if not (ROOT / path).is_file():
                found.append(f"{entry}: {path} does not exist")
        flags = [arg.split("=")[0] for arg in argv if arg.startswith("--") and arg != "--"]
        unknown = [flag for flag in flags if flag not in parser._option_string_actions]
        found += [f"{entry}: unknown flag {flag}" for flag in unknown]
        if complete and not unknown:
            found += refused(entry, parser, argv)
    return found


def refused(entry: str, parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The parser's own complaint about `argv` (a value of the wrong type, a choice it does not offer), if any."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            return [f"{entry} {shlex.join(argv)}: {stderr.getvalue().strip().splitlines()[-1]}"]
    if entry == "benchmarks.run":  # the check benchmarks/run.py makes after parsing
        from benchmarks.reuse_baselines import check_not_overwritten

        try:
            check_not_overwritten(args.baselines_from, args.results_dir / f"{args.tier}.json")
        except ValueError as err:
            return [f"{entry}: {err}"]
    return []


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_exists_and_its_parser_accepts_its_flags(doc, monkeypatch):
    monkeypatch.chdir(ROOT)  # the documented commands run from the repository root
    text = (ROOT / doc).read_text()
    commands, mentions = documented_commands(text), inline_commands(text)
    entries = {entry for command in commands for entry, _ in entry_points(command)}
    assert {"train/run.py", "train/distill.py", "benchmarks.run", "benchmarks.report"} <= entries, entries
    assert any(entry.startswith("benchmarks.probes.") for entry in entries), entries
    found = [problem for command in commands for problem in problems(command)]
    found += [problem for command in mentions for problem in problems(command, complete=False)]
    assert not found, "\n".join(found)


def test_the_readme_commands_cover_the_examples_and_the_launchers():
    text = (ROOT / "README.md").read_text()
    entries = {entry for command in documented_commands(text) + inline_commands(text)
               for entry, _ in entry_points(command)}
    assert {"accelerate launch", "torchrun", "examples/generate.py", "examples/stream.py"} <= entries, entries


@pytest.mark.parametrize("command, problem", [
    ("python train/run.py train/configs/quickstart.yaml --no_such_flag 1", "unknown flag --no_such_flag"),
    ("python train/run.py train/configs/quickstart.yaml --gamma_warmup_rat 0.2", "unknown flag --gamma_warmup_rat"),
    ("python train/distill.py train/configs/distill-cpu.yaml --teacher runs/x --stages 3", "unknown flag --stages"),
    ("python train/run.py train/configs/no-such-preset.yaml", "no such config file"),
    ("python -m benchmarks.run --tier no-such-tier", "invalid choice"),
    ("python -m benchmarks.run --tier cpu-long --baselines_from benchmarks/results/cpu-long.json",
     "writes its result to"),
    ("python -m benchmarks.probes.no_such_probe", "no such module"),
    ("python -m benchmarks.probes.joint_variants batch_standardised -- train/configs/quickstart.yaml --no_such_flag 1",
     "train/run.py: unknown flag --no_such_flag"),
    ("python -m benchmarks.probes.joint_variants decoder_noise_ramp --sigma_join 3 -- train/configs/quickstart.yaml",
     "unknown flag --sigma_join"),
    ("python examples/generate.py my-ldlm --temperature 0.5", "unknown flag --temperature"),
    ("python examples/no_such_example.py", "no such script"),
    ("accelerate launch --config_file train/accelerate/ddp.yaml --no_such_launcher_flag train/run.py "
     "train/configs/owt-paper.yaml", "unknown flag --no_such_launcher_flag"),
    ("accelerate launch --config_file train/accelerate/missing.yaml train/run.py train/configs/owt-paper.yaml",
     "missing.yaml does not exist"),
    ("torchrun --nnodes 2 train/run.py train/configs/owt-paper.yaml --ema_decay 0 --no_such_flag 1",
     "unknown flag --no_such_flag"),
])
def test_a_removed_flag_or_entry_point_is_reported(command, problem, monkeypatch):
    monkeypatch.chdir(ROOT)
    [tokens] = documented_commands(f"```bash\n{command}\n```")
    assert any(problem in found for found in problems(tokens)), problems(tokens)


def test_the_tests_reliability_cites_exist():
    tests = {path.name: path.read_text() for path in (ROOT / "tests").rglob("test_*.py")}
    cited = re.findall(r"(test_\w+\.py)(?:::(\w+))?", (ROOT / "RELIABILITY.md").read_text())
    assert cited
    missing = [f"{file}::{name}" if name else file for file, name in cited
               if file not in tests or (name and not re.search(rf"def {name}\b", tests[file]))]
    assert not missing, f"RELIABILITY.md cites tests that do not exist: {missing}"
