"""The CI examples in examples/ci/ call provision the way the real command line accepts.

Every ``provision ...`` invocation in every ``run:`` (GitHub Actions) and ``script:`` (GitLab
CI) is cut out of the shell text (line continuations joined, split at ``&&``, ``||``, ``;``,
``|``, redirections dropped) and parsed by Click itself with the real command tree, the
command never run: an option that does not exist, a missing or extra argument, a bad choice
fails here. Shell variables become real paths first: ``$SPEC`` the example spec the file
names, any other variable a temporary file (or folder when a path continues after it).
Nothing here contacts a host or the network.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from provision import secrets, spec
from provision.cli import cli

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
README = CI / "README.md"
YAMLLINT_CONFIG = ROOT / "playbooks" / ".yamllint"

# Commands that talk to the hosts: each must bring the pipeline's own SSH trust.
HOST_COMMANDS = {"apply", "verify", "drift", "preflight"}
GITLAB_RESERVED = {
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
}
# Words that may stand before a command without being it.
SHELL_PREFIXES = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "exec", "command", "{", "}"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


class ShellParseError(Exception):
    """A script construct the extractor does not understand: fail rather than miss a call."""


# --------------------------------------------------------------------------- extraction


@dataclass
class Script:
    where: str  # e.g. "github-actions.yml: jobs.check.steps[3]"
    text: str
    env: dict[str, str] = field(default_factory=dict)  # literal variables the file defines


@dataclass
class Invocation:
    where: str
    argv: list[str]  # after "provision", variables not yet expanded
    env: dict[str, str]

    def __str__(self) -> str:
        return "provision " + " ".join(self.argv)


def _literal_env(mapping: Any) -> dict[str, str]:
    """The variables of an env:/variables: block whose value is plain text (no ${{ }})."""
    out: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if isinstance(value, dict):  # GitLab's long form {value: ..., description: ...}
            value = value.get("value")
        if isinstance(value, str | int) and "${{" not in str(value):
            out[str(key)] = str(value)
    return out


def _flatten(lines: Any) -> Iterator[str]:
    """GitLab script entries: a string or (after anchors) nested lists of strings."""
    if isinstance(lines, str):
        yield lines
    elif isinstance(lines, list):
        for item in lines:
            yield from _flatten(item)
    elif lines is not None:
        raise ShellParseError(f"script entry is neither text nor a list: {lines!r}")


def github_scripts(doc: dict[str, Any], name: str = GITHUB.name) -> list[Script]:
    out = []
    top = _literal_env(doc.get("env"))
    for job_id, job in (doc.get("jobs") or {}).items():
        job_env = {**top, **_literal_env(job.get("env"))}
        for i, step in enumerate(job.get("steps") or []):
            if "run" in step:
                env = {**job_env, **_literal_env(step.get("env"))}
                out.append(Script(f"{name}: jobs.{job_id}.steps[{i}]", str(step["run"]), env))
    return out


def gitlab_jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v
        for k, v in doc.items()
        if k not in GITLAB_RESERVED and not str(k).startswith(".") and isinstance(v, dict)
    }


def gitlab_scripts(doc: dict[str, Any], name: str = GITLAB.name) -> list[Script]:
    out = []
    top = _literal_env(doc.get("variables"))
    for section in ("before_script", "after_script"):  # global ones, if any
        for k, line in enumerate(_flatten(doc.get(section))):
            out.append(Script(f"{name}: {section}[{k}]", line, top))
    default = doc.get("default") or {}
    for section in ("before_script", "after_script"):
        for k, line in enumerate(_flatten(default.get(section))):
            out.append(Script(f"{name}: default.{section}[{k}]", line, top))
    for job_id, job in gitlab_jobs(doc).items():
        env = {**top, **_literal_env(job.get("variables"))}
        for section in ("before_script", "script", "after_script"):
            for k, line in enumerate(_flatten(job.get(section))):
                out.append(Script(f"{name}: {job_id}.{section}[{k}]", line, env))
    return out


def _join_continuations(text: str) -> list[str]:
    """Lines of a shell script with backslash-newline continuations joined."""
    lines: list[str] = []
    buf = ""
    for raw in text.split("\n"):
        stripped = raw.rstrip()
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        if trailing % 2 == 1:  # an odd number of backslashes: the newline is escaped
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    if buf:
        lines.append(buf)
    return lines


def _tokens(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def _logical_lines(text: str) -> Iterator[list[str]]:
    """Token lists of the script's lines; a quoted string may span lines."""
    pending = ""
    for line in _join_continuations(text):
        candidate = f"{pending}\n{line}" if pending else line
        try:
            tokens = _tokens(candidate)
        except ValueError:  # an open quote: the string goes on on the next line
            pending = candidate
            continue
        pending = ""
        yield tokens
    if pending:
        raise ShellParseError(f"unterminated quote in: {pending[:200]!r}")


def _simple_commands(tokens: list[str]) -> Iterator[list[str]]:
    """Split one line's tokens into simple commands; redirections and their targets dropped."""
    current: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok and set(tok) <= set("<>&|;()"):
            if "<<" in tok and tok not in ("<<<",):
                raise ShellParseError("here-documents are not understood by the checker")
            if set(tok) & set("<>"):  # a redirection: drop it, its target and a fd number
                if current and current[-1].isdigit():
                    current.pop()
                i += 2
                continue
            if current:
                yield current
            current = []
            i += 1
            continue
        if tok == "$" and i + 1 < len(tokens) and tokens[i + 1] == "(":  # $( ... ): a command inside
            if current:
                yield current
            current = []
            i += 1
            continue
        current.append(tok)
        i += 1
    if current:
        yield current


def _is_provision(word: str) -> bool:
    return word == "provision" or word.endswith("/provision")


def extract(script: Script) -> list[Invocation]:
    """Every provision invocation of one script; ShellParseError when one hides."""
    found = []
    for tokens in _logical_lines(script.text):
        for words in _simple_commands(tokens):
            k = 0
            while k < len(words) and (words[k] in SHELL_PREFIXES or ASSIGNMENT.match(words[k])):
                k += 1
            if k < len(words) and _is_provision(words[k]):
                found.append(Invocation(script.where, words[k + 1 :], script.env))
                rest = words[k + 1 :]
            else:
                rest = words[k:]
            hidden = [w for w in rest if _is_provision(w)]
            if hidden:
                raise ShellParseError(
                    f"{script.where}: 'provision' where the checker cannot parse it: {' '.join(words)[:200]}"
                )
    return found


# --------------------------------------------------------------------------- checking


class Expander:
    """Shell variables as real paths: known literals from the file, else temporary files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def _file(self, name: str) -> str:
        path = self.tmp / "vars" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(f"placeholder for ${name}\n")
        return str(path)

    def _dir(self, name: str) -> str:
        path = self.tmp / "dirs" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def expand(self, word: str, env: dict[str, str]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name in env:
                return env[name]
            if word[m.end() : m.end() + 1] == "/":
                return self._dir(name)
            return self._file(name)

        return VARIABLE.sub(one, word)


def _command(argv: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """(subcommand path, command, its own arguments); UsageError for an unknown command."""
    cmd: click.Command = cli
    path: list[str] = []
    rest = list(argv)
    while isinstance(cmd, click.Group):
        if not rest or rest[0].startswith("-"):
            raise click.UsageError(f"'provision {' '.join(path)}' needs a subcommand: {sorted(cmd.commands)}")
        name = rest.pop(0)
        sub = cmd.commands.get(name)
        if sub is None:
            raise click.UsageError(f"no command 'provision {' '.join([*path, name])}'")
        cmd, path = sub, [*path, name]
    return path, cmd, rest


def _static_check(cmd: click.Command, args: list[str]) -> None:
    """Options against the command's own params, positionals against its arguments."""
    options = {o: p for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
    positional = 0
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            positional += len(args) - i - 1
            break
        if tok.startswith("-") and tok != "-":
            name = tok.split("=", 1)[0] if tok.startswith("--") else tok[:2]
            param = options.get(name)
            if param is None:
                raise click.NoSuchOption(name)
            inline = "=" in tok if tok.startswith("--") else len(tok) > 2
            if param.is_flag or param.count:
                if inline:
                    raise click.BadOptionUsage(name, f"{name} is a flag and takes no value")
            elif not inline:
                i += 1  # its value
                if i >= len(args):
                    raise click.BadOptionUsage(name, f"{name} needs a value")
        else:
            positional += 1
        i += 1
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    unlimited = any(p.nargs < 0 for p in arguments)
    most = sum(max(p.nargs, 0) for p in arguments)
    least = sum(max(p.nargs, 1 if p.required else 0) for p in arguments if p.required)
    if positional < least or (positional > most and not unlimited):
        raise click.UsageError(f"{positional} positional argument(s); the command takes {least} to {most}")


def check_invocation(inv: Invocation, expander: Expander) -> list[str]:
    """Parse one invocation with Click (never run); the subcommand path on success, else raises."""
    argv = [expander.expand(w, inv.env) for w in inv.argv]
    path, cmd, args = _command(argv)
    _static_check(cmd, args)
    root = click.Context(cli, info_name="provision", **cli.context_settings)
    ctx = cmd.make_context(" ".join(["provision", *path]), list(args), parent=root)
    ctx.close()
    spec = ctx.params.get("spec_path")
    if spec is not None and not Path(spec).is_file():  # provision itself exits 8 on it, not click
        raise click.BadParameter(f"SPEC {spec} does not exist")
    return path


def checked(inv: Invocation, expander: Expander) -> list[str] | str:
    """The subcommand path, or the error text when Click refuses the invocation."""
    try:
        return check_invocation(inv, expander)
    except click.exceptions.ClickException as exc:
        return f"{type(exc).__name__}: {exc.format_message()}"
    except (click.exceptions.Exit, click.exceptions.Abort) as exc:  # --help, --version
        return f"{type(exc).__name__}: exits without running"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def github() -> dict[str, Any]:
    return yaml.safe_load(GITHUB.read_text())


@pytest.fixture(scope="module")
def gitlab() -> dict[str, Any]:
    return yaml.safe_load(GITLAB.read_text())


@pytest.fixture
def expander(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Expander:
    monkeypatch.chdir(ROOT)  # the files name the spec relative to the repository root
    return Expander(tmp_path)


def _all_invocations(github: dict[str, Any], gitlab: dict[str, Any]) -> list[Invocation]:
    return [inv for s in github_scripts(github) + gitlab_scripts(gitlab) for inv in extract(s)]


def _sub(inv: Invocation) -> str:
    return inv.argv[0] if inv.argv else ""


def _opts(inv: Invocation) -> set[str]:
    return {w.split("=", 1)[0] for w in inv.argv if w.startswith("-")}


def _spec_path(env: dict[str, str]) -> Path:
    return ROOT / env["SPEC"]


# --------------------------------------------------------------------------- structure


def test_github_structure(github: dict[str, Any]) -> None:
    on = github.get("on", github.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert isinstance(on, dict)
    assert {"pull_request", "push", "schedule"} <= set(on)
    assert on["push"]["branches"] == ["main"]
    assert on["schedule"] and all("cron" in s for s in on["schedule"])
    spec_file = github["env"]["SPEC"]
    assert spec_file in on["pull_request"]["paths"]
    assert (ROOT / spec_file).is_file()
    assert github["permissions"] == {"contents": "read"}
    jobs = github["jobs"]
    for job_id, job in jobs.items():
        assert "runs-on" in job and job.get("steps"), job_id
        assert "write" not in str(job.get("permissions", "")), job_id
    assert jobs["deploy"]["environment"] == "production"
    rollouts = [jobs["deploy"]["concurrency"], jobs["drift"]["concurrency"]]
    assert rollouts[0]["group"] == rollouts[1]["group"]
    assert all(c["cancel-in-progress"] is False for c in rollouts)


def test_gitlab_structure(gitlab: dict[str, Any]) -> None:
    stages = gitlab["stages"]
    jobs = gitlab_jobs(gitlab)
    assert set(jobs) == {"validate", "check", "apply", "verify", "drift"}
    for job_id, job in jobs.items():
        assert job["stage"] in stages, job_id
        assert job.get("script"), job_id
    rules = {job_id: " ".join(str(r.get("if", "")) for r in job["rules"]) for job_id, job in jobs.items()}
    for job_id in ("validate", "check"):
        assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in rules[job_id]
    for job_id in ("apply", "verify"):
        assert '$CI_COMMIT_BRANCH == "main"' in rules[job_id]
    assert '$CI_PIPELINE_SOURCE == "schedule"' in rules["drift"]
    groups = {jobs[j].get("resource_group") for j in ("apply", "verify", "drift")}
    assert len(groups) == 1 and None not in groups
    assert (ROOT / gitlab["variables"]["SPEC"]).is_file()


def test_junit_reports_are_collected(github: dict[str, Any], gitlab: dict[str, Any]) -> None:
    """Every --junit file a job writes is what that job hands to the CI's test reports."""
    for job_id, job in github["jobs"].items():
        steps = job["steps"]
        written = set()
        for step in steps:
            for inv in extract(Script(job_id, str(step.get("run", "")))):
                if "--junit" in inv.argv:
                    written.add(inv.argv[inv.argv.index("--junit") + 1])
        reported = " ".join(
            str(s["with"].get("report_paths", ""))
            for s in steps
            if str(s.get("uses", "")).startswith("mikepenz/action-junit-report@")
        )
        kept = " ".join(
            str(s["with"].get("path", ""))
            for s in steps
            if str(s.get("uses", "")).startswith("actions/upload-artifact@")
        )
        for name in written:
            assert name in reported.split() and name in kept.split(), (job_id, name)
        for s in steps:
            if "uses" in s and not s["uses"].startswith("actions/checkout@") and "setup-python" not in s["uses"]:
                assert s.get("if") == "always()", (job_id, s.get("name"))
    for job_id, job in gitlab_jobs(gitlab).items():
        written = {
            inv.argv[inv.argv.index("--junit") + 1]
            for line in _flatten(job["script"])
            for inv in extract(Script(job_id, line))
            if "--junit" in inv.argv
        }
        if written:
            assert job["artifacts"]["when"] == "always"
            assert {job["artifacts"]["reports"]["junit"]} == written, job_id


# --------------------------------------------------------------------------- the invocations


def test_every_invocation_parses(github: dict[str, Any], gitlab: dict[str, Any], expander: Expander) -> None:
    invocations = _all_invocations(github, gitlab)
    problems = []
    for inv in invocations:
        result = checked(inv, expander)
        if isinstance(result, str):
            problems.append(f"{inv.where}: {inv}: {result}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_the_three_flows_are_there(path: Path, expander: Expander) -> None:
    doc = yaml.safe_load(path.read_text())
    scripts = github_scripts(doc) if path == GITHUB else gitlab_scripts(doc)
    invocations = [inv for s in scripts for inv in extract(s)]
    kinds = set()
    for inv in invocations:
        cmd = checked(inv, expander)
        assert isinstance(cmd, list), cmd
        kinds.add(" ".join(cmd) + (" --check" if "--check" in inv.argv else ""))
    assert kinds == {"validate", "apply --check", "apply", "verify", "drift"}


def test_untrusted_and_trusted_runs(github: dict[str, Any], gitlab: dict[str, Any]) -> None:
    """Pull-request dry runs send no secret; every host command brings the pipeline's SSH trust."""
    for inv in _all_invocations(github, gitlab):
        opts = _opts(inv)
        assert "--accept-new-host-keys" not in opts, inv
        assert "--skip-preflight" not in opts, inv
        if _sub(inv) == "validate":
            assert inv.argv[inv.argv.index("--format") + 1] == "json", inv
        if _sub(inv) in HOST_COMMANDS:
            assert {"--known-hosts", "--identity", "--junit"} <= opts, inv
        if _sub(inv) == "apply" and "--check" in opts:
            assert {"--no-secrets", "--diff"} <= opts, inv


def test_github_secrets_only_in_step_env(github: dict[str, Any]) -> None:
    """No ${{ }} in a run: script (text injection, secrets in argv); secrets only in step env:."""
    network = spec.load_network(_spec_path(github["env"]))
    env_names = secrets.env_names(network)
    assert env_names  # the example spec has {env:} references to map
    for job_id, job in github["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in str(step.get("run", "")), (job_id, step.get("name"))
            assert "secrets." not in str(step.get("with", "")), (job_id, step.get("name"))
        outside_steps = {k: v for k, v in job.items() if k != "steps"}
        assert "secrets." not in str(outside_steps), job_id
    for job_id in ("deploy", "drift"):
        runs = [s for s in github["jobs"][job_id]["steps"] if "run" in s]
        step = next(s for s in runs if {_sub(i) for i in extract(Script(job_id, s["run"]))} & {"apply", "drift"})
        for name in env_names:
            assert step["env"][name] == "${{ secrets." + name + " }}", (job_id, name)
    check_env = str([s.get("env") for s in github["jobs"]["check"]["steps"]])
    for name in env_names:
        assert name not in check_env  # the dry run of an unreviewed spec gets no password


def test_secret_files_of_the_spec_are_written(github: dict[str, Any], gitlab: dict[str, Any]) -> None:
    """The spec's {file:} secrets are written by the jobs that resolve secrets, under umask 077."""
    network = spec.load_network(_spec_path(github["env"]))
    refs = [u.password for u in network.users] + ([network.domain.admin_password] if network.domain else [])
    files = [r.file for r in refs if r.file]
    assert files
    for job_id in ("deploy", "drift"):
        text = "\n".join(str(s.get("run", "")) for s in github["jobs"][job_id]["steps"])
        for f in files:
            assert f"> {f}" in text and "umask 077" in text, (job_id, f)
    for job_id in ("apply", "drift"):
        text = "\n".join(_flatten(gitlab[job_id]["script"]))
        for f in files:
            assert f"> {f}" in text and "umask 077" in text, (job_id, f)
    for job_id in ("validate", "check"):
        assert "CAMPUS_ADMIN_PW" not in "\n".join(_flatten(gitlab[job_id]["script"]))


def test_rollout_state_is_kept_and_apart(github: dict[str, Any], gitlab: dict[str, Any]) -> None:
    """The rollout's jobs keep the network CA in a persistent XDG_STATE_HOME on their own runner;
    the pull-request dry run runs elsewhere."""
    jobs = github["jobs"]
    for job_id in ("deploy", "drift"):
        assert jobs[job_id]["env"]["XDG_STATE_HOME"].startswith("/"), job_id
        assert jobs[job_id]["runs-on"] == jobs["deploy"]["runs-on"]
    assert "XDG_STATE_HOME" not in str(jobs["check"])
    assert jobs["check"]["runs-on"] != jobs["deploy"]["runs-on"]
    for job_id in ("apply", "verify", "drift"):
        assert gitlab[job_id]["variables"]["XDG_STATE_HOME"].startswith("/"), job_id
        assert gitlab[job_id]["tags"] == gitlab["apply"]["tags"]
    assert "variables" not in gitlab["check"]
    assert gitlab["check"]["tags"] != gitlab["apply"]["tags"]


def test_readme_names_every_secret(github: dict[str, Any], gitlab: dict[str, Any]) -> None:
    text = README.read_text()
    used = set(re.findall(r"secrets\.([A-Z_][A-Z0-9_]*)", GITHUB.read_text()))
    network = spec.load_network(_spec_path(github["env"]))
    gitlab_vars = {"CHECK_SSH_KEY", "DEPLOY_SSH_KEY", "PROVISION_KNOWN_HOSTS", "CAMPUS_ADMIN_PW"}
    assert gitlab_vars <= set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", GITLAB.read_text()))
    for name in used | secrets.env_names(network) | gitlab_vars:
        assert f"`{name}`" in text, name
    for word in ("--no-secrets", "--known-hosts", "--identity", "pr-check", "production-audit", "resource_group"):
        assert word in text, word


# --------------------------------------------------------------------------- the checker itself


BAD = [
    'provision apply --no-such-flag "$SPEC"',
    'provision apply "$SPEC" --checkk',
    'provision aply "$SPEC"',
    "provision apply",
    'provision apply "$SPEC" "$SPEC"',
    'provision apply "$SPEC" --check=yes',
    'provision validate --format yaml "$SPEC"',
    'provision validate "$SPEC" --format',
    "provision apply inventories/no-such-spec.yml",
    'provision nodes "$SPEC"',
    'provision verify "$SPEC" --check',
    'provision drift "$SPEC" --help',
]


@pytest.mark.parametrize("line", BAD)
def test_checker_catches_a_bad_invocation(line: str, expander: Expander) -> None:
    text = f"set -e\numask 077 && {line} > out.txt 2>&1 || status=$?"
    script = Script("self-check", text, {"SPEC": "inventories/campus.yml"})
    [inv] = extract(script)
    assert isinstance(checked(inv, expander), str), f"not caught: {line}"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("--check --no-secrets --diff", "--check --no-secret --diff"),
        ("--junit apply.xml", "--junit-xml apply.xml"),
        ('provision verify "$SPEC"', 'provision verfy "$SPEC"'),
        ('provision drift "$SPEC"', 'provision drift "$SPEC" "$SPEC"'),
    ],
)
@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_checker_catches_a_broken_example(path: Path, old: str, new: str, expander: Expander) -> None:
    """The real files with one call broken (in memory): the checker finds it."""
    text = path.read_text()
    assert old in text
    doc = yaml.safe_load(text.replace(old, new, 1))
    scripts = github_scripts(doc) if path == GITHUB else gitlab_scripts(doc)
    results = [checked(inv, expander) for s in scripts for inv in extract(s)]
    assert sum(isinstance(r, str) for r in results) == 1, results


def test_checker_accepts_good_invocations(expander: Expander) -> None:
    text = (
        "# a comment: provision is mentioned here and ignored\n"
        'echo start; provision validate --format=json "$SPEC" > v.json && cat v.json\n'
        'OUT=x.xml provision apply "${SPEC}" --check --no-secrets --diff \\\n'
        '    --junit "$RUNNER_TEMP/apply-check.xml" --known-hosts "$KNOWN_HOSTS_FILE" \\\n'
        '    --identity "$SSH_KEY_FILE" -e rollout_note=ci | tee log.txt\n'
        'if ! /opt/venv/bin/provision verify "$SPEC" --limit dc1,fs-sci; then exit 6; fi\n'
        'result=$(provision nodes check "$SPEC" --identity "$SSH_KEY_FILE")\n'
        'provision policy --help >/dev/null 2>&1 || true\n'
    )
    invocations = extract(Script("self-check", text, {"SPEC": "inventories/campus.yml"}))
    results = [checked(inv, expander) for inv in invocations]
    assert results[:4] == [["validate"], ["apply"], ["verify"], ["nodes", "check"]], results
    assert isinstance(results[4], str)  # a group with no subcommand (and --help) is refused
    assert len(results) == 5


@pytest.mark.parametrize(
    "text",
    [
        "timeout 600 provision apply inventories/campus.yml",
        "xargs -n1 provision validate < specs.txt",
        "cat <<EOF\nprovision apply x\nEOF",
        "provision apply 'inventories/campus.yml",
    ],
)
def test_checker_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ShellParseError):
        extract(Script("self-check", text))


# --------------------------------------------------------------------------- lint


def test_yamllint_clean() -> None:
    yamllint = Path(sys.executable).parent / "yamllint"
    if not yamllint.exists():
        found = shutil.which("yamllint")
        if found is None:
            pytest.skip("yamllint is not installed")
        yamllint = Path(found)
    res = subprocess.run(
        [str(yamllint), "--strict", "-c", str(YAMLLINT_CONFIG), str(GITHUB), str(GITLAB)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
