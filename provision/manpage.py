"""A section 1 man page built from the Click help, so the two never say different things.

``render`` walks the group and every command and subcommand; the output depends only on
the help texts and the package version (no date from the clock), so the committed
``provision/man/provision.1`` can be compared with a fresh rendering in the tests.
Regenerate it with ``make man`` (``python -m provision.manpage -o provision/man/provision.1``).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

import click

Section = tuple[str, Sequence[tuple[str, str]]]  # title, (term, text) pairs

BREAK = "\\:"  # roff: the line may break here, without a hyphen
_EXIT_CODES = "Exit codes:"
# "0 ok, 1 warnings under --strict, 2 invalid spec, ...": split before each "N ".
_EXIT_ITEM = re.compile(r",\s*(?=\d+\s)")


def escape(text: str) -> str:
    """Text as roff reads it literally: backslashes, minus signs, non-ASCII and quotes escaped.

    ``-`` becomes ``\\-`` (a real minus, so options copied from the page work); characters
    beyond ASCII become ``\\[uXXXX]`` so groff needs no input encoding.
    """
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")
        elif ch == '"':
            out.append("\\(dq")
        elif ord(ch) > 126 or (ord(ch) < 32 and ch != "\t"):
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    return "".join(out)


def _line(text: str) -> str:
    """A text line that roff cannot take for a request (a leading dot or apostrophe)."""
    return "\\&" + text if text.startswith((".", "'")) else text


def _paragraphs(help_text: str) -> list[tuple[bool, list[str]]]:
    """(verbatim, lines) of each paragraph, as Click reads a help text (``\\b`` keeps one as is)."""
    text = inspect.cleandoc(help_text.split("\f", 1)[0])
    out: list[tuple[bool, list[str]]] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        verbatim = bool(lines) and lines[0].strip() == "\b"
        if verbatim:
            lines = lines[1:]
        if any(line.strip() for line in lines):
            out.append((verbatim, lines))
    return out


def _body(paragraphs: Sequence[tuple[bool, list[str]]]) -> Iterator[str]:
    for i, (verbatim, lines) in enumerate(paragraphs):
        if i:
            yield ".PP"
        if verbatim:
            yield ".nf"
            yield from (_line(escape(line)) for line in lines)
            yield ".fi"
        else:
            yield _line(escape(" ".join(line.strip() for line in lines)))


def _is_exit_codes(paragraph: tuple[bool, list[str]]) -> bool:
    return " ".join(paragraph[1]).strip().startswith(_EXIT_CODES)


def _exit_items(paragraph: tuple[bool, list[str]]) -> list[tuple[str, str]]:
    text = " ".join(line.strip() for line in paragraph[1]).strip()[len(_EXIT_CODES) :].strip().rstrip(".")
    items = []
    for part in _EXIT_ITEM.split(text):
        code, _, meaning = part.strip().partition(" ")
        items.append((code, meaning))
    return items


def _tag(record: str) -> str:
    """``-e, --extra-var KEY=VALUE``: option names bold, the metavar italic."""
    words = []
    for word in record.split(" "):
        if word.startswith("-"):
            name, comma = (word[:-1], ",") if word.endswith(",") else (word, "")
            words.append(f"\\fB{escape(name)}\\fR{comma}")
        elif word:  # a long choice list may break after each "|" (\\: is a break point)
            words.append(f"\\fI{escape(word).replace('|', '|' + BREAK)}\\fR")
    return " ".join(words)


def _options(command: click.Command, ctx: click.Context, with_help: bool) -> Iterator[str]:
    help_option = command.get_help_option(ctx)
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        if not with_help and param is help_option:  # said once, under OPTIONS
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        yield ".TP"
        yield _line(_tag(record[0]))
        yield _line(escape(" ".join(record[1].split())) if record[1] else "")


def _synopsis(command: click.Command, ctx: click.Context) -> str:
    return " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])


def _commands(group: click.Group, ctx: click.Context) -> Iterator[str]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx)
        yield f'.SS "{escape(_synopsis(command, sub))}"'
        if command.deprecated:
            yield "(deprecated)"
            yield ".PP"
        yield from _body(_paragraphs(command.help or command.short_help or ""))
        yield from _options(command, sub, with_help=False)
        if isinstance(command, click.Group):
            yield from _commands(command, sub)


def _version(prog: str) -> str:
    try:
        return metadata.version(prog)
    except metadata.PackageNotFoundError:
        return "unknown"


def default_sections() -> list[Section]:
    """ENVIRONMENT and FILES of provision, named from the constants the code uses."""
    from provision.lab.core import RUNNER_ENV
    from provision.lab.paths import CACHE_DIR, IDENTITY_FILE, KNOWN_HOSTS, STATE_DIR
    from provision.secrets import SECRETS_BASE

    environment = [
        (
            "XDG_STATE_HOME",
            "Where a run keeps its state: $XDG_STATE_HOME/provision/NAME (default ~/.local/state)"
            " holds the hosts that failed last (for --retry-failed) and the network's own CA.",
        ),
        (
            "XDG_CACHE_HOME",
            "Where Ansible's fact cache and the execution nodes' wheelhouse are kept (default ~/.cache/provision).",
        ),
        ("SSH_AUTH_SOCK", "The ssh-agent whose keys log in when the spec sets no ssh.identity_file."),
        (
            RUNNER_ENV,
            "nspawn or unshare: force how the lab runs its hosts (default: systemd-nspawn,"
            " falling back to unshare + chroot where it cannot boot containers).",
        ),
        (
            "{env: VAR}",
            "Secret references of the spec are read from the environment at run time; they never"
            " reach the environment Ansible records.",
        ),
    ]
    files = [
        (
            "~/.ssh/known_hosts",
            "The host keys checked against, unless the spec sets ssh.known_hosts_file (or --known-hosts is given).",
        ),
        (
            f"{SECRETS_BASE}/provision-secrets-*",
            "The secrets of a running apply: a 0600 file in a 0700 folder"
            " on a RAM filesystem, removed when the run ends.",
        ),
        (str(STATE_DIR), f"The lab's hosts and state; its key {IDENTITY_FILE} and {KNOWN_HOSTS}."),
        (str(CACHE_DIR), "The lab's image and apt repository, built once."),
    ]
    return [("ENVIRONMENT", environment), ("FILES", files)]


def render(
    group: click.Group,
    prog: str = "provision",
    sections: Sequence[Section] | None = None,
    see_also: Sequence[str] = ("ansible-playbook(1)", "ssh(1)", "systemd-nspawn(1)", "mmdebstrap(1)"),
) -> str:
    """The roff source of ``prog``'s man page (section 1) from the Click help of ``group``.

    An ``Exit codes: 0 ok, 1 ...`` paragraph of the group's help becomes EXIT STATUS.
    ``sections`` default to provision's ENVIRONMENT and FILES.
    """
    ctx = click.Context(group, info_name=prog, **group.context_settings)
    paragraphs = _paragraphs(group.help or "")
    exits = [p for p in paragraphs if _is_exit_codes(p)]
    description = [p for p in paragraphs if not _is_exit_codes(p)]
    summary = " ".join(description[0][1]).strip().rstrip(".") if description else prog
    summary = summary[:1].lower() + summary[1:]
    version = _version(prog)
    out = [
        f'.\\" Generated by provision.manpage from the command help of {prog} {version}; do not edit.',
        '.\\" Regenerate with: make man',
        f'.TH {prog.upper()} 1 "" "{escape(prog)} {escape(version)}" "User Commands"',
        ".nh",  # no hyphenation: paths and option names stay whole
        ".ad l",
        ".SH NAME",
        f"{escape(prog)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        f".B {escape(prog)}",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        *_body(description),
        ".SH OPTIONS",
        *_options(group, ctx, with_help=True),
        ".SH COMMANDS",
        *_commands(group, ctx),
    ]
    if exits:
        out.append(".SH EXIT STATUS")
        for code, meaning in _exit_items(exits[0]):
            out += [".TP", f"\\fB{escape(code)}\\fR", _line(escape(meaning))]
    for title, entries in default_sections() if sections is None else sections:
        out.append(f".SH {title}")
        for term, text in entries:
            out += [".TP", f"\\fB{escape(term)}\\fR", _line(escape(text))]
    if see_also:
        out.append(".SH SEE ALSO")
        refs = [re.fullmatch(r"(.+)\((\w+)\)", ref) for ref in see_also]
        out += [
            f".BR {escape(m.group(1))} ({m.group(2)}){',' if i < len(refs) - 1 else ''}"
            for i, m in enumerate(refs)
            if m is not None
        ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m provision.manpage [-o FILE]``: write the page (stdout by default)."""
    from provision.cli import cli  # only here: no library module imports the CLI

    args = list(sys.argv[1:] if argv is None else argv)
    text = render(cli)
    if args[:1] in (["-o"], ["--output"]) and len(args) == 2:
        target = Path(args[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    elif not args:
        sys.stdout.write(text)
    else:
        sys.stderr.write("usage: python -m provision.manpage [-o FILE]\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
