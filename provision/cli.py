"""The `provision` command line: parses arguments and delegates.

Every failure reaches the user through ``main``, which maps the exception tree
of ``provision.errors`` to messages and exit codes in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from provision import errors, spec
from provision.advise import advise
from provision.errors import Problem, ProvisionError, SpecError, StrictWarnings
from provision.model import Network
from provision.plan import make_plan
from provision.resources import schemas_dir, starters_dir

F = TypeVar("F", bound=Callable[..., Any])

spec_argument = click.argument(
    "spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


def _report(exc: ProvisionError) -> None:
    if isinstance(exc, SpecError):
        for p in exc.problems:
            click.echo(_problem_line(exc.source, p), err=True)
        click.echo(f"{exc.source}: invalid: {len(exc.problems)} error(s)", err=True)
    else:
        click.echo(f"provision: {exc}", err=True)


class _Group(click.Group):
    """Maps the exception tree to messages and exit codes, once, for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProvisionError as exc:
            _report(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("provision: interrupted", err=True)
            ctx.exit(errors.EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="provision")
def cli() -> None:
    """Provision a Samba workgroup or a Samba AD domain from one network spec.

    \b
    Exit codes: 0 ok, 1 warnings under --strict, 2 invalid spec, 3 preflight failed,
    4 apply failed on some hosts, 5 interrupted, 6 verify failed, 7 lab error,
    8 environment error (missing tool, unreadable file).
    """


def _problem_line(source: str, p: Problem) -> str:
    where = f"{source}:{p.line}" if p.line else source
    tag = "" if p.severity == "error" else f"{p.severity}: "
    return f"{where}: {p.path}: {tag}{p.message}"


def _load(path: Path) -> Network:
    return spec.load_network(path)


def _summary(network: Network) -> str:
    shares = sum(len(h.shares) for h in network.hosts)
    extra = f", realm {network.domain.realm}" if network.domain else f", workgroup {network.workgroup}"
    return (
        f"{network.mode.value} network '{network.name}'{extra}: {len(network.hosts)} hosts, "
        f"{len(network.users)} users, {len(network.groups)} groups, {shares} shares"
    )


@cli.command()
@spec_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--strict", is_flag=True, help="Treat warnings (including topology advice) as errors (exit 1).")
def validate(spec_path: Path, fmt: str, strict: bool) -> None:
    """Check SPEC against the schemas and cross-host rules; report every problem."""
    result = spec.check(spec_path)
    warnings = list(result.warnings)
    if result.network is not None:
        warnings += [a for a in advise(result.network) if a.severity == "warning"]
    source = str(spec_path)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "source": source,
                    "valid": result.ok and not (strict and warnings),
                    "errors": [_problem_dict(p) for p in result.errors],
                    "warnings": [_problem_dict(p) for p in warnings],
                    "summary": _summary(result.network) if result.network else None,
                },
                indent=2,
            )
        )
    else:
        for p in result.errors + warnings:
            click.echo(_problem_line(source, p), err=bool(result.errors))
    if result.errors:
        if fmt == "text":
            click.echo(f"{source}: invalid: {len(result.errors)} error(s), {len(warnings)} warning(s)", err=True)
        click.get_current_context().exit(errors.EXIT_INVALID_SPEC)
    if strict and warnings:
        raise StrictWarnings(f"{source}: {len(warnings)} warning(s) under --strict")
    if fmt == "text":
        assert result.network is not None
        click.echo(f"{source}: valid: {_summary(result.network)}")


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {"path": p.path, "line": p.line, "message": p.message, "severity": p.severity}


@cli.command()
@spec_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(spec_path: Path, fmt: str) -> None:
    """Show what an apply would configure. No host is contacted."""
    p = make_plan(_load(spec_path)).to_dict()
    if fmt == "json":
        click.echo(json.dumps(p, indent=2))
        return
    click.echo(f"Network {p['network']} ({p['mode']}), subnets {', '.join(p['subnets'])}, {p['hosts']} hosts")
    if p["domain"]:
        d = p["domain"]
        click.echo(f"  domain: realm {d['realm']}, NetBIOS {d['netbios']}, DCs {', '.join(d['dcs'])}")
    else:
        click.echo(f"  workgroup: {p['workgroup']}")
    click.echo("Hosts by role:")
    for role, names in p["roles"].items():
        click.echo(f"  {role:<18} {names}")
    click.echo(f"Users ({len(p['users'])}):")
    for u in p["users"]:
        click.echo(f"  {u['name']:<18} groups: {', '.join(u['groups']) or '-'}")
    click.echo(f"Groups ({len(p['groups'])}): {', '.join(p['groups']) or '-'}")
    click.echo(f"Shares ({len(p['shares'])}):")
    for s in p["shares"]:
        access = ", ".join(s["users"] + ["@" + g for g in s["groups"]]) or "everyone authenticated"
        mode = "ro" if s["read_only"] else "rw"
        click.echo(f"  \\\\{s['host']}\\{s['share']:<14} {s['path']:<20} {mode}  {access}")
    for pr in p["printers"]:
        click.echo(f"  printer {pr['printer']} on {pr['host']}")
    r = p["rollout"]
    click.echo(f"Rollout: batch {r['batch']}, stop past {r['max_fail_percent']}% failed, {len(r['steps'])} step(s):")
    for i, step in enumerate(r["steps"], 1):
        click.echo(f"  {i:>3}. {step['role']:<18} {step['hosts']}")
    _echo_advice([Problem(a["path"], a["message"], severity=a["severity"]) for a in p["advice"]])


def _echo_advice(items: list[Problem]) -> None:
    if not items:
        click.echo("Advice: none; the topology fits the network's size.")
        return
    click.echo("Advice:")
    for a in items:
        click.echo(f"  {a.severity}: {a.message}")


@cli.command(name="advise")
@spec_argument
@click.option("--strict", is_flag=True, help="Exit 1 when there is a warning.")
def advise_cmd(spec_path: Path, strict: bool) -> None:
    """Topology advice: workgroup or domain, and how many domain controllers."""
    items = advise(_load(spec_path))
    _echo_advice(items)
    if strict and any(a.severity == "warning" for a in items):
        raise StrictWarnings("topology warnings under --strict")


@cli.command()
@click.option("--part", type=click.Choice(["bundle", *sorted(spec.load_schemas())]), default="bundle",
              show_default=True, help="One schema file, or all of them bundled into one document.")
def schema(part: str) -> None:
    """Print the JSON Schema of the spec (for editors and CI)."""
    schemas = spec.load_schemas()
    if part != "bundle":
        doc = schemas[part]
    else:
        doc = dict(schemas[spec.ROOT_SCHEMA])
        doc["$defs"] = {uri: s for uri, s in schemas.items() if uri != spec.ROOT_SCHEMA}
    click.echo(json.dumps(doc, indent=2))


@cli.command()
@click.option("--mode", type=click.Choice(["workgroup", "domain"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(mode: str, output: Path | None, force: bool) -> None:
    """Write a commented starter spec."""
    text = (starters_dir() / f"{mode}.yml").read_text()
    # Point editors at the schema this installation ships.
    text = text.replace("SCHEMA_PATH", (schemas_dir() / spec.ROOT_SCHEMA).as_uri(), 1)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; use --force to overwrite")
    output.write_text(text)
    click.echo(f"wrote {output}; edit it, then run: provision validate {output}")


def _register_optional() -> None:
    """Attach command groups that live in their own modules."""
    try:
        from provision.cli_lab import lab
    except ImportError:  # pragma: no cover - the lab is optional while it is built
        return
    cli.add_command(lab)


_register_optional()


def main() -> None:
    """Console entry point."""
    cli(prog_name="provision")


if __name__ == "__main__":  # pragma: no cover
    main()
