"""Docs that match the code: the README's Commands section lists every flag of the parser, the
shipped-spaces table is the dry runs' counts, and nothing points at a path outside the repository."""
import argparse
import re
from pathlib import Path

from korth_bench import spaces
from korth_bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".sh", ".txt", ".json", ".cfg", ""}
SKIPPED_TOP = {".git", ".venv", "build", "dist", "data", ".device-data", ".whl"}  # not the project's text
SKIPPED_ANY = {"__pycache__", ".pytest_cache", ".hypothesis", "out", "node_modules"}
OUTSIDE = re.compile(r"papers\.md|DESIGN\.md|\.\./shared")


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def subcommands(parser: argparse.ArgumentParser, prefix=()):
    """(words of the command, its parser) for every command and nested action (data pack)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, (*prefix, name))
                if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield (*prefix, name), sub


def flags(parser: argparse.ArgumentParser):
    return [option for action in parser._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"]


def test_the_commands_section_lists_every_command_and_flag_of_the_parser():
    block = section((ROOT / "README.md").read_text(), "Commands").split("```bash\n", 1)[1]
    lines = block.split("```", 1)[0].splitlines()
    parser = build_parser()
    for option in flags(parser):  # --version
        assert f"korth-bench {option}" in lines, option
    for words, sub in subcommands(parser):
        command = "korth-bench " + " ".join(words)
        line = next((l for l in lines if l == command or l.startswith(command + " ")), None)
        assert line is not None, f"README Commands lacks {command!r}"
        missing = [f for f in flags(sub) if not re.search(rf"\[{re.escape(f)}[ \]]", line)]
        assert not missing, f"README Commands: {command} lacks {missing}"


def test_the_shipped_spaces_table_is_the_dry_runs():
    expected = [f"| `{name}.yaml` | {spaces.load(name).num_trials} | {spaces.load(name).description} |"
                for name in spaces.names()]
    text = section((ROOT / "docs" / "search_spaces.md").read_text(), "The shipped spaces")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == expected, "docs/search_spaces.md, the shipped spaces:\n" + "\n".join(expected)


def test_nothing_refers_to_a_path_outside_the_repository():
    found = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if (relative.parts[0] in SKIPPED_TOP or set(relative.parts) & SKIPPED_ANY
                or not path.is_file() or path.suffix not in TEXT_SUFFIXES
                or relative.parts[0] == "results" and path.suffix != ".md"):  # run outputs
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path != Path(__file__):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


COMMAND = re.compile(r"korth-bench((?:\s+[a-z][a-z-]*)*)((?:\s+\S+)*)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def written_commands(text: str):
    """Every shell command in the code blocks and inline code spans of a Markdown text, with
    backslash continuations joined and ``&&``, ``&``, ``|``, ``;`` ending a command."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    pieces = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    pieces += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    for piece in pieces:
        for command in re.split(r"&&|\|\||[|;&]|#", piece):
            if re.search(r"(^|[\s/])korth-bench(\s|$)", command) and not re.search(
                    r"korth-bench( [a-z]+)*: (error|note)", command):  # an output line
                yield command.strip()


def test_every_flag_written_in_the_docs_is_one_its_command_takes():
    parser = build_parser()
    commands = {words: sub for words, sub in subcommands(parser)}
    wrong = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for command in written_commands(path.read_text()):
            words = command.split("korth-bench", 1)[1].split()
            taken = next((w for w in sorted(commands, key=len, reverse=True)
                          if tuple(words[:len(w)]) == w), ())
            accepted = set(flags(commands[taken] if taken else parser)) | {"--help"}
            wrong += [f"{path.relative_to(ROOT)}: `{command}`: {' '.join(('korth-bench',) + taken)} "
                      f"takes no {flag}" for flag in FLAG.findall(" ".join(words[len(taken):]))
                      if flag not in accepted]
    assert not wrong, "\n".join(wrong)
