"""The README and the contract are kept honest: every command they name exists, every command
line in the README has real subcommands and options, every environment variable the README names
is one the settings read (listed in .env.example), and its configuration table lists exactly those
variables with their defaults."""

import argparse
import re
from pathlib import Path

from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"
DOCS = [README, ROOT.parent / "shared" / "ARCHITECTURE.md"]
# Named by the contract ahead of the issue that builds it; remove an entry when it lands.
PLANNED: dict[str, str] = {}


def test_every_documented_command_exists():
    named = set()
    for doc in DOCS:
        if doc.exists():
            named |= set(re.findall(r"manage\.py (\w+)", doc.read_text()))
    assert {"ingest", "search", "ask", "audit", "users"} <= named  # the scan found them
    assert named - set(get_commands()) - set(PLANNED) == set()


def test_every_setting_the_readme_names_exists():
    listed = set(_env_example())
    readme = README.read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", readme))
    named -= {"POSTGRES_PASSWORD", "WEB_PORT", "WEB_WORKERS"}  # docker-compose's own variables
    named = {n for n in named if "__" not in n}  # Qdrant's own (QDRANT__CLUSTER__ENABLED...)
    named -= set(_env_example().values())  # a default value (LOG_LEVEL's `INFO`), not a name
    assert {"DATA_DIR", "QDRANT_URL", "DEEPSEEK_API_KEY"} <= named
    assert named - listed == set()


def _section(text: str, title: str) -> str:
    """The body of the `## title` section: up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def _env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M))


def test_the_two_commands_open_the_readme():
    lines = README.read_text().splitlines()
    assert lines[2].split("#")[0].strip() == "make run"
    assert lines[3].split("#")[0].strip() == "make test"


def test_configuration_table_lists_exactly_the_variables_of_env_example():
    rows = re.findall(
        r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|",
        _section(README.read_text(), "Configuration"),
        re.M,
    )
    names = [name for name, _ in rows]
    listed = _env_example()
    assert len(names) == len(set(names)), "a variable is in the table twice"
    assert sorted(set(listed) - set(names)) == [], "in .env.example, missing from the table"
    assert sorted(set(names) - set(listed)) == [], "in the table, not in .env.example"
    for name, default in rows:  # a value .env.example gives is the default the table shows
        if listed[name]:
            assert f"`{listed[name]}`" in default, f"{name}: .env.example says {listed[name]!r}"


def _command_lines(text: str) -> list[str]:
    """Every command line in the README's code (fenced or indented): `… python manage.py CMD …`."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif (fenced or line.startswith("    ")) and "python manage.py " in line:
            command = line.split("python manage.py ", 1)[1]
            lines.append(re.split(r"\s+#\s", command)[0].strip())  # without its comment
    return lines


def _subcommands(parser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_readme_command_line_names_real_commands_and_options():
    """`manage.py CMD [SUBCOMMAND] … --option` in a README command line: each part exists."""
    lines = _command_lines(README.read_text())
    assert len(lines) >= 15, lines  # the scan found the command line section
    commands = get_commands()
    checked = set()
    for line in lines:
        words = line.split()
        name = words[0]
        assert name in commands, f"no command {name!r}: {line}"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        if subcommands := _subcommands(parser):
            assert len(words) > 1 and words[1] in subcommands, f"no {name} {words[1:2]}: {line}"
            parser = subcommands[words[1]]
        options = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", line))
        unknown = options - set(parser._option_string_actions)
        assert unknown == set(), f"{line}: not an option of {name}: {sorted(unknown)}"
        checked |= {(name, option) for option in options}
    assert ("ingest", "--sync") in checked and ("search", "--batch") in checked
