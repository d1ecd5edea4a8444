"""The `provision` command line: parses arguments and delegates.

Every failure reaches the user through ``main``, which maps the exception tree
of ``provision.errors`` to messages and exit codes in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from provision import errors, policy, spec
from provision.advise import advise
from provision.cli_lab import lab
from provision.errors import NotConfirmed, Problem, ProvisionError, SpecError, StrictWarnings
from provision.model import Network
from provision.plan import make_plan
from provision.resources import schemas_dir, starters_dir

F = TypeVar("F", bound=Callable[..., Any])


def format_option(f: F) -> F:
    """--format: text for people, or one JSON document on stdout (progress stays on stderr)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: one JSON document on stdout, with a version field (see the README).",
    )(f)


def report_options(f: F) -> F:
    """--report-json, --junit and --format, the same for every command that reports to CI."""
    f = click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report.")(f)
    f = click.option("--report-json", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON report.")(f)
    return format_option(f)


def _out(fmt: str, text: str) -> None:
    """People's text: on stdout, or on stderr when stdout carries the JSON document."""
    click.echo(text, err=fmt == "json")


def _complete_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion after --limit: the host names (and roles) of the spec on the line."""
    from click.shell_completion import CompletionItem

    # While the line is incomplete click may leave SPEC unparsed, in ctx.args.
    path = ctx.params.get("spec_path") or next((a for a in ctx.args if not a.startswith("-")), None)
    if not path:
        return []
    try:
        network = spec.load_network(Path(path))
    except (ProvisionError, OSError):  # completion stays quiet: no spec, no candidates
        return []
    head, _, last = incomplete.rpartition(",")
    prefix = f"{head}," if head else ""
    bang = "!" if last.startswith("!") else ""
    last = last.removeprefix("!")
    words = [h.name for h in network.hosts] + [f"role:{r.value}" for r in network.hosts_by_role()]
    return [CompletionItem(prefix + bang + w) for w in words if w.startswith(last)]


def output_dir_option(help_text: str, required: bool = False) -> Callable[[F], F]:
    """-o/--output DIR, where a command writes its folder."""
    return click.option(
        "-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=required, help=help_text
    )


def limit_option(f: F) -> F:
    """--limit, the same patterns for every command (provision.selection)."""
    return click.option(
        "--limit",
        metavar="PATTERNS",
        shell_complete=_complete_hosts,
        help="Only these hosts: comma-separated names, ranges (ws[001:050]), globs (ws0*), "
        "roles (role:file_server); !PATTERN leaves hosts out.",
    )(f)


def _emit(
    kind: str, body: dict[str, Any], fmt: str, report_json: Path | None, junit: Path | None, tree: Callable[[], Any]
) -> None:
    """A command's document: on stdout with --format json, in --report-json's file, and as JUnit."""
    from provision import report

    if fmt == "json":
        click.echo(report.dumps(kind, body))
    if report_json:
        report.write_json(report_json, kind, body)
    if junit:
        report.write_junit(junit, tree())


def _remember_connection(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[f"provision.{param.name}"] = str(value.expanduser().absolute())


def connection_options(f: F) -> F:
    """--known-hosts and --identity: the operator's SSH trust, over the spec's (for unreviewed specs);
    --vagrant: the hosts are the Vagrant machines of a directory."""
    f = click.option(
        "--vagrant",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember_connection,
        help="Reach the hosts as the Vagrant machines of this directory say (vagrant ssh-config); "
        "host keys are recorded on first contact in DIR/known_hosts and checked from then on.",
    )(f)
    f = click.option(
        "--identity",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember_connection,
        help="SSH private key to use instead of the spec's ssh.identity_file.",
    )(f)
    return click.option(
        "--known-hosts",
        "known_hosts",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember_connection,
        help="known_hosts file to check host keys against instead of the spec's ssh.known_hosts_file "
        "(keep it under the pipeline's control when the spec comes from a pull request).",
    )(f)


def example(*lines: str) -> str:
    """A help epilog of example command lines (kept as written: not rewrapped)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


# Not exists=True: a missing spec is an environment error (exit 8, as the README says), which
# spec.load_network reports; click would call it a usage error (exit 2, "invalid spec").
spec_argument = click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))


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
@click.version_option(package_name="provision", prog_name="provision")
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
    return _connected(spec.load_network(path))


def _connected(network: Network) -> Network:
    """The network reached as the command line says (--vagrant, --known-hosts, --identity)."""
    meta = click.get_current_context().meta
    known_hosts, identity = meta.get("provision.known_hosts"), meta.get("provision.identity")
    if meta.get("provision.vagrant"):
        from provision import vagrant

        network = vagrant.connections(network, Path(meta["provision.vagrant"]))
    if known_hosts or identity:
        network = network.with_connection(known_hosts_file=known_hosts, identity_file=identity)
    return network


def _load_with_warnings(path: Path) -> tuple[Network, list[Problem]]:
    """The network (as ``_load`` gives it) and the spec's validation warnings."""
    result = spec.check(path)
    if result.errors or result.network is None:
        raise SpecError(result.source, result.errors)
    return _connected(result.network), list(result.warnings)


def _first_contact() -> bool:
    """Under --vagrant, new host keys are recorded on first contact (in DIR/known_hosts); changed ones never."""
    return bool(click.get_current_context().meta.get("provision.vagrant"))


def _summary(network: Network) -> str:
    shares = sum(len(h.shares) for h in network.hosts)
    extra = f", realm {network.domain.realm}" if network.domain else f", workgroup {network.workgroup}"
    return (
        f"{network.mode.value} network '{network.name}'{extra}: {len(network.hosts)} hosts, "
        f"{len(network.users)} users, {len(network.groups)} groups, {shares} shares"
    )


@cli.command(
    epilog=example(
        "provision validate site.yml", "provision validate site.yml --strict --format json > validation.json"
    )
)
@spec_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--strict", is_flag=True, help="Treat warnings (including topology advice) as errors (exit 1).")
def validate(spec_path: Path, fmt: str, strict: bool) -> None:
    """Check SPEC against the schemas and cross-host rules; report every problem."""
    try:
        result = spec.check(spec_path)
    except SpecError as exc:  # unparsable YAML: still answer in the format asked for
        result = spec.Result(exc.source, errors=exc.problems)
    warnings = list(result.warnings)
    if result.network is not None:
        warnings += [a for a in advise(result.network) if a.severity == "warning"]
    source = str(spec_path)
    if fmt == "json":
        from provision import report

        body = {
            "source": source,
            "valid": result.ok and not (strict and warnings),
            "errors": [_problem_dict(p) for p in result.errors],
            "warnings": [_problem_dict(p) for p in warnings],
            "summary": _summary(result.network) if result.network else None,
        }
        click.echo(report.dumps("validate", body))
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


@cli.command(
    epilog=example(
        "provision plan site.yml",
        "provision plan site.yml --format json | jq '.changes[] | select(.action == \"remove\")'",
        "provision plan office-domain.yml --from-workgroup office.yml",
    )
)
@spec_argument
@click.option(
    "--from-workgroup",
    "workgroup_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The workgroup spec SPEC was grown from (provision grow): show what migrating it does to every "
    "user, group, share, printer and host.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(spec_path: Path, workgroup_path: Path | None, fmt: str) -> None:
    """Show what an apply would configure, and what it adds, changes and removes since the last
    apply of the network recorded on this controller. No host is contacted."""
    from provision import report, state

    network, warnings = _load_with_warnings(spec_path)
    if workgroup_path is not None:
        from provision import migrate

        moved = migrate.plan(_load(workgroup_path), network)
        _out(fmt, moved.text())
        if fmt == "json":
            click.echo(report.dumps("migration", moved.to_dict()))
        return
    p = make_plan(network, warnings, state.load(network), state.recorded_at(network))
    if fmt == "json":
        click.echo(report.dumps("plan", p.to_dict()))
        return
    click.echo(report.plan_text(p))
    click.echo(report.changes_text(p.changes, network.name, p.recorded))


def _echo_advice(items: list[Problem]) -> None:
    from provision import report

    click.echo("\n".join(report.advice_lines(items)))


@cli.command(
    name="show",
    epilog=example("provision show site.yml fs1", "provision show site.yml ws001 --format json | jq .firewall"),
)
@spec_argument
@click.argument("host")
@format_option
def show_cmd(spec_path: Path, host: str, fmt: str) -> None:
    """Everything SPEC means for HOST: role, address, groups, shares with effective access,
    printers, who may log in and sudo, services, firewall ports, system requirements and the
    variables Ansible gets (secrets as references). No host is contacted."""
    from provision import report, show

    network = _load(spec_path)
    found = show.view(network, host)
    if fmt == "json":
        click.echo(report.dumps("show", found.to_dict()))
    else:
        click.echo(show.render(found))


@cli.command(
    name="doctor",
    epilog=example("provision doctor site.yml", "provision doctor inventories/lab-domain.yml --lab"),
)
@spec_argument
@connection_options
@click.option("--lab", is_flag=True, help="Also check what 'provision lab up' needs (root, nspawn, mmdebstrap, ...).")
@click.option("--no-secrets", is_flag=True, help="Skip the secret references (as apply --check --no-secrets does).")
@format_option
def doctor_cmd(spec_path: Path, lab: bool, no_secrets: bool, fmt: str) -> None:
    """Check this machine for SPEC before any host is contacted: every secret reference, the SSH
    key and known_hosts, ansible-core and ansible-runner against the tested versions, ssh and
    ansible-playbook; --lab adds what the lab needs. One line per check.
    Exit 2: a secret reference does not resolve; 8: anything else failed."""
    from dataclasses import asdict

    from provision import doctor, report

    checks = doctor.run(_load(spec_path), lab=lab, with_secrets=not no_secrets)
    rows = [(c.host, c.name, c.status.upper() if c.status == "fail" else c.status, c.detail) for c in checks]
    _out(fmt, report.table(("where", "check", "result", "detail"), rows))
    passed, warned, failed = doctor.summary(checks)
    _out(fmt, f"doctor: {passed} ok, {warned} warning(s), {failed} failed")
    if fmt == "json":
        click.echo(report.dumps("doctor", {"ok": failed == 0, "checks": [asdict(c) for c in checks]}))
    problem = doctor.failure(checks)
    if problem is not None:
        raise problem


@cli.group(name="policy", epilog=example("provision policy test site.yml alice ws001"))
def policy_group() -> None:
    """Ask the spec's login and sudo policy questions offline (no host is contacted)."""


@policy_group.command(
    name="test",
    epilog=example(
        "provision policy test site.yml alice ws001", "provision policy test site.yml bob dc1 --format json"
    ),
)
@spec_argument
@click.argument("user")
@click.argument("host")
@format_option
def policy_test(spec_path: Path, user: str, host: str, fmt: str) -> None:
    """May USER log in on HOST, and run what with sudo, by which rule. Exit 0: may log in; 1: refused."""
    found = policy.answer(_load(spec_path), user, host)
    if fmt == "json":
        from provision import report

        click.echo(report.dumps("policy test", found))
    else:
        login = found["login"]
        click.echo(f"{user} on {found['host']} ({found['role']}): login {'allowed' if login['allowed'] else 'refused'}")
        click.echo(f"  {login['reason']}")
        for grant in found["sudo"]:
            extra = ", no password" if grant["nopasswd"] else ""
            click.echo(
                f"  sudo: {', '.join(grant['commands'])}{extra} by policies.sudo[{grant['rule']}] ({grant['reason']})"
            )
        if login["allowed"] and not found["sudo"]:
            click.echo("  sudo: nothing")
    if not found["login"]["allowed"]:
        click.get_current_context().exit(1)


@cli.command(name="advise", epilog=example("provision advise site.yml", "provision advise site.yml --strict"))
@spec_argument
@click.option("--strict", is_flag=True, help="Exit 1 when there is a warning.")
@format_option
def advise_cmd(spec_path: Path, strict: bool, fmt: str) -> None:
    """Topology advice: workgroup or domain, and how many domain controllers."""
    items = advise(_load(spec_path))
    if fmt == "json":
        from provision import report

        click.echo(report.dumps("advise", {"advice": [_problem_dict(a) for a in items]}))
    else:
        _echo_advice(items)
    if strict and any(a.severity == "warning" for a in items):
        raise StrictWarnings("topology warnings under --strict")


@cli.command(epilog=example("provision schema > provision.schema.json", "provision schema --part host.schema.json"))
@click.option(
    "--part",
    type=click.Choice(["bundle", *sorted(spec.load_schemas())]),
    default="bundle",
    show_default=True,
    help="One schema file, or all of them bundled into one document.",
)
def schema(part: str) -> None:
    """Print the JSON Schema of the spec (for editors and CI)."""
    schemas = spec.load_schemas()
    if part != "bundle":
        doc = schemas[part]
    else:
        doc = dict(schemas[spec.ROOT_SCHEMA])
        doc["$defs"] = {uri: s for uri, s in schemas.items() if uri != spec.ROOT_SCHEMA}
    click.echo(json.dumps(doc, indent=2))


@cli.command(epilog=example("provision init --mode domain -o site.yml", "provision init --mode workgroup > office.yml"))
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
        raise ProvisionError(f"{output} exists; use --force to overwrite")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    except OSError as exc:
        raise ProvisionError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}; edit it, then run: provision validate {output}")


def _new_hosts(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """--dc and --file-server: NAME=ADDRESS, strictly (the spec's rules judge the name and address)."""
    from provision import grow

    try:
        if isinstance(value, tuple):
            return tuple(grow.parse_new_host(v) for v in value)
        return None if value is None else grow.parse_new_host(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@cli.command(
    name="grow",
    epilog=example(
        "provision grow office.yml --to domain --realm AD.OFFICE.TEST --dc dc1=10.20.0.2 --dc dc2=10.20.0.3 "
        "-o office-domain.yml",
        "provision grow office.yml --to domain --realm AD.OFFICE.TEST --dc dc1=10.20.0.2 --dc dc2=10.20.0.3 "
        "--file-server fs1=10.20.0.5 --client winbind -o office-domain.yml",
    ),
)
@spec_argument
@click.option("--to", "to", type=click.Choice(["domain"]), required=True, help="What the workgroup grows into.")
@click.option(
    "--realm", metavar="REALM", required=True, help="The domain's Kerberos realm (upper case), e.g. AD.OFFICE.TEST."
)
@click.option(
    "--dc",
    "dcs",
    metavar="NAME=ADDRESS",
    multiple=True,
    required=True,
    callback=_new_hosts,
    help="A new domain controller (repeat it: two are recommended); the first provisions the domain.",
)
@click.option(
    "-o",
    "--output",
    metavar="NEW-SPEC",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the domain spec here (refused when the file exists, unless --force).",
)
@click.option(
    "--netbios",
    metavar="NAME",
    help="The domain's NetBIOS name (default: the workgroup's name, so users keep seeing it).",
)
@click.option(
    "--admin-password-env",
    metavar="VAR",
    help="Environment variable holding the domain Administrator password (default: DOMAIN_ADMIN_PASSWORD).",
)
@click.option(
    "--admin-password-file",
    metavar="PATH",
    help="File holding the domain Administrator password, as the spec names it (relative: to the new spec's folder).",
)
@click.option(
    "--client",
    type=click.Choice(["sssd", "winbind"]),
    default="sssd",
    show_default=True,
    help="How the workstations the peers become sign users on.",
)
@click.option(
    "--file-server",
    metavar="NAME=ADDRESS",
    callback=_new_hosts,
    help="A new file server that takes every peer's shares, printers and home shares (the same names and "
    "paths); every peer becomes a workstation. Default: a peer that serves something becomes a file server.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing NEW-SPEC.")
@format_option
def grow_cmd(
    spec_path: Path,
    to: str,
    realm: str,
    dcs: tuple[Any, ...],
    output: Path,
    netbios: str | None,
    admin_password_env: str | None,
    admin_password_file: str | None,
    client: str,
    file_server: Any,
    force: bool,
    fmt: str,
) -> None:
    """Write a domain spec grown from the workgroup SPEC: the same users and groups (now in the
    directory), the --dc hosts as new domain controllers, the peers as workstations, and their
    shares on file servers (the peers that serve them, or --file-server). Every choice is printed;
    nothing is written unless the new spec validates. No host is contacted. The migration itself
    (provision apply NEW-SPEC --from-workgroup SPEC) carries passwords and files over."""
    from provision import grow, report

    if admin_password_env and admin_password_file:
        raise click.UsageError("give --admin-password-env or --admin-password-file, not both")
    ref = (
        {"file": admin_password_file}
        if admin_password_file
        else {"env": admin_password_env or grow.DEFAULT_ADMIN_PASSWORD_ENV}
    )
    options = grow.Options(
        realm=realm,
        dcs=dcs,
        netbios=netbios,
        admin_password=ref,
        client=client,
        file_server=file_server,
    )
    grown = grow.grow(spec_path, output, options, force=force)
    for choice in grown.choices:
        _out(fmt, choice.line())
    for p in grown.warnings:
        _out(fmt, _problem_line(str(output), p))
    grow.write(grown, force=force)
    if fmt == "json":
        click.echo(report.dumps("grow", grown.to_dict()))
    _out(fmt, f"wrote {output}: {grown.summary()}")
    _out(
        fmt,
        f"next: provision plan {output} --from-workgroup {spec_path}, then migrate with "
        f"provision apply {output} --from-workgroup {spec_path}",
    )


@cli.command(
    name="inventory",
    epilog=example("provision inventory site.yml -o inv/", "provision inventory site.yml --limit 'role:file_server'"),
)
@spec_argument
@connection_options
@output_dir_option("Write an inventory directory (hosts.yml, group_vars/, ansible.cfg) here.")
@limit_option
def inventory_cmd(spec_path: Path, out_dir: Path | None, limit: str | None) -> None:
    """Render the Ansible inventory (usable with plain ansible-playbook; every string !unsafe)."""
    from provision import inventory

    network = _load(spec_path)
    hosts = _targets(network, limit)
    if out_dir is None:
        click.echo(inventory.dump_unsafe(inventory.build_inventory(network, hosts)), nl=False)
        return
    from provision import certificates, paths

    folder = paths.tls_dir(network)
    tls = certificates.material(network, hosts, folder, keys=False)
    for path in inventory.write_inventory(network, out_dir, hosts, tls):
        click.echo(f"wrote {path}")
    if tls.chains:
        click.echo(
            f"the services' private keys are in {folder}/hosts/ (network CA) or the spec's key files: "
            "pass them in secrets.yml as provision_tls_secret_keys: {host: PEM}"
        )
    click.echo(
        f"run: ANSIBLE_CONFIG={out_dir}/ansible.cfg ansible-playbook -i {out_dir} playbooks/site.yml -e @secrets.yml"
    )


@cli.command(
    name="vagrant",
    epilog=example(
        "provision vagrant site.yml -o vm/ && (cd vm && vagrant up)", "provision apply site.yml --vagrant vm/"
    ),
)
@spec_argument
@output_dir_option("Directory for the Vagrantfile.", required=True)
@click.option("--box", default=None, help="Vagrant box of every machine (default: Debian 12, debian/bookworm64).")
@click.option("--force", is_flag=True, help="Overwrite an existing Vagrantfile.")
def vagrant_cmd(spec_path: Path, out_dir: Path, box: str | None, force: bool) -> None:
    """Write a Vagrantfile with one VM per host of SPEC (VirtualBox and libvirt; no provisioner).

    Refused when a subnet of SPEC overlaps a network already configured on this machine.
    Then: cd DIR && vagrant up; provision apply SPEC --vagrant DIR.
    """
    from provision import vagrant

    network = spec.load_network(spec_path)
    path = vagrant.write(network, out_dir, box=box or vagrant.DEFAULT_BOX, force=force)
    click.echo(f"wrote {path}: {len(network.hosts)} machine(s)")
    click.echo(f"next: cd {out_dir} && vagrant up && cd - && provision apply {spec_path} --vagrant {out_dir}")


def _targets(network: Network, limit: str | None, retry_failed: bool = False) -> list[Any]:
    """The hosts of --limit (patterns: see provision.selection), or of the last run's failures."""
    from provision import runner, selection

    chosen = selection.select(network, limit)
    if retry_failed:
        failed = set(runner.last_failed(network))
        if not failed:
            raise ProvisionError("the last run had no failed or unreachable hosts; nothing to retry")
        chosen = [h for h in chosen if h.name in failed]
    return chosen


def _preflight(network: Network, hosts: list[Any], accept_new: bool, fmt: str = "text") -> Any:
    from provision import preflight, report

    def progress(done: int, total: int, rep: Any) -> None:
        if done == total or done % max(1, total // 20) == 0:
            click.echo(f"  preflight {done}/{total} hosts checked", err=True)

    accept_new = accept_new or _first_contact()
    result = preflight.preflight(network, hosts, accept_new_host_keys=accept_new, progress=progress)
    rows = []
    for r in result.reports:
        by = {c.name: c for c in r.checks}
        problems = "; ".join(f"{c.name}: {c.detail}" for c in r.checks if c.status != "pass")
        cells = [
            by[n].status if n in by else "-"
            for n in ("reachable", "host key", "auth", "sudo", "python3", "os", "clock", "memory", "cpus", "disk")
        ]
        rows.append((r.host, r.address, *cells, problems))
    headers = (
        "host",
        "address",
        "reach",
        "hostkey",
        "auth",
        "sudo",
        "python",
        "os",
        "clock",
        "mem",
        "cpus",
        "disk",
        "problems",
    )
    _out(fmt, report.table(headers, rows))
    ready = len(result.reports) - len(result.failed_hosts())
    _out(fmt, f"preflight: {ready}/{len(result.reports)} hosts ready in {result.seconds:.1f} s")
    return result


@cli.command(
    name="preflight",
    epilog=example(
        "provision preflight site.yml", "provision preflight site.yml --limit 'ws[001:050]' --accept-new-host-keys"
    ),
)
@spec_argument
@connection_options
@limit_option
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and record keys of hosts not yet in known_hosts (changed keys still fail).",
)
@report_options
def preflight_cmd(
    spec_path: Path,
    limit: str | None,
    accept_new_host_keys: bool,
    report_json: Path | None,
    junit: Path | None,
    fmt: str,
) -> None:
    """SSH checks of every host: reachable, host key, auth, sudo, python3, the spec's OS, clock,
    memory, CPUs and free disk for its role (see plan), port 53 on DCs.

    The spec's execution nodes are checked too: the same, plus a RAM filesystem to work in
    and ansible-runner and ansible-core in the controller's versions.
    """
    from provision import nodes, report
    from provision.errors import PreflightError

    network = _load(spec_path)
    result = _preflight(network, _targets(network, limit), accept_new_host_keys, fmt)
    node_reports = nodes.preflight(network, accept_new_host_keys=accept_new_host_keys or _first_contact())
    if node_reports:
        _out(fmt, _node_table(node_reports))
    checks = result.checks() + [c for r in node_reports for c in r.checks]
    ok = result.ok and all(r.ok for r in node_reports)
    body = {"ok": ok, "checks": [c.__dict__ for c in checks]}
    _emit("preflight", body, fmt, report_json, junit, lambda: report.checks_junit(checks, "provision preflight"))
    if not ok:
        failed = result.failed_hosts() + [r.host for r in node_reports if not r.ok]
        raise PreflightError(f"preflight failed on: {', '.join(failed)}")


def lock_options(f: F) -> F:
    """--wait-lock and --force-unlock: one run at a time per network (provision.lock)."""
    f = click.option(
        "--no-anchor-lock",
        is_flag=True,
        help="Take only this controller's lock, not the one on the first DC or peer (when that host "
        "cannot be reached, e.g. while it is rebuilt; another controller could then interleave).",
    )(f)
    f = click.option(
        "--force-unlock",
        is_flag=True,
        help="Break the network's run lock left by a run that died (refused while that run is alive).",
    )(f)
    return click.option(
        "--wait-lock",
        type=click.FloatRange(min=0),
        default=0,
        show_default=True,
        metavar="SECONDS",
        help="Wait this long for another run of the network to end (0: fail at once, naming it).",
    )(f)


def _command_line() -> str:
    """What this run is, for the lock's holder record: the command and its non-default options."""
    ctx = click.get_current_context()
    parts = [ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value in (None, False, (), "", 0, param.default) or param.name in ("fmt",):
            continue
        if not isinstance(param, click.Option):
            parts.append(str(value))
        elif value is True:
            parts.append(param.opts[0])
        else:
            values = value if isinstance(value, tuple) else (value,)
            parts += [f"{param.opts[0]} {item}" for item in values]
    return " ".join(parts)[:200]


@contextmanager
def _locked(network: Network, wait: float, force: bool, anchor: bool = True) -> Iterator[None]:
    """The network's run lock around a run; its notes and problems as warnings."""
    from provision import lock

    problems: list[str] = []
    if not anchor:
        click.echo("warning: --no-anchor-lock: only this controller's run lock is taken", err=True)
    try:
        with lock.network_lock(network, _command_line(), wait=wait, force_unlock=force, remote=anchor) as info:
            for note in info.notes():
                click.echo(f"warning: {note}", err=True)
            problems = info.problems
            yield
    finally:
        for p in problems:
            click.echo(f"warning: {p}", err=True)


def _confirm_removals(network: Network, yes: bool, fmt: str) -> None:
    """When the apply would remove anything since the last apply: show the plan, then go on only
    with --yes or a "yes" typed at a terminal. Nothing has been contacted yet."""
    from provision import changes, report, state

    before = state.load(network)
    if before is None:
        return
    found = changes.diff(before, network)
    removals = found.removals()
    if not removals:
        return
    _out(fmt, report.changes_text(found, network.name, state.recorded_at(network)))
    _confirm(f"this apply removes {len(removals)} object(s) the last apply made (listed above)", "Apply?", yes)


def _confirm(what: str, question: str, yes: bool) -> None:
    """Go on only with --yes or a "yes" typed at a terminal (NotConfirmed otherwise)."""
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise NotConfirmed(f"{what}; no terminal to ask: rerun with --yes to go ahead (nothing was changed)")
    if not click.confirm(f"{what}. {question}", default=False, err=True):
        raise NotConfirmed("not confirmed; nothing was changed")


def _extra_vars(items: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.UsageError(f"-e expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value) if value else ""
    return out


class _LiveProgress:
    """One status line per play, redrawn in place on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.play = ""

    def __call__(self, p: Any) -> None:
        if p.play != self.play:
            if self.tty and self.play:
                click.echo("", err=True)
            self.play = p.play
            if not self.tty:
                click.echo(f"PLAY {p.play} ({p.hosts_total} hosts)", err=True)
        if self.tty:
            bar_len = 20
            done = min(bar_len, bar_len * (p.ok + p.failed + p.unreachable) // max(1, p.hosts_total))
            line = (
                f"\r{p.play[:28]:<28} [{'#' * done}{'.' * (bar_len - done)}] ok {p.ok} "
                f"failed {p.failed} unreachable {p.unreachable}  {p.task[:40]:<40}"
            )
            click.echo(line, nl=False, err=True)

    def close(self) -> None:
        if self.tty and self.play:
            click.echo("", err=True)


@cli.command(
    epilog=example(
        "provision apply site.yml",
        "provision apply site.yml --check --diff --limit fs1",
        "provision apply site.yml --yes --format json > run.json   # in a pipeline",
        "provision apply site.yml --retry-failed",
    )
)
@spec_argument
@connection_options
@click.option("--check", is_flag=True, help="Dry run: report what would change, change nothing.")
@click.option("--diff", is_flag=True, help="Show file differences of changed tasks.")
@limit_option
@click.option("--retry-failed", is_flag=True, help="Only the hosts that failed or were unreachable last run.")
@click.option("--tags", help="Comma-separated Ansible tags to run.")
@click.option("--playbook", default="site.yml", show_default=True, help="Playbook of playbooks/ to run.")
@click.option(
    "--unjoin",
    "unjoin",
    metavar="HOSTS",
    help="Comma-separated members to take out of the domain cleanly (runs playbooks/unjoin.yml).",
)
@click.option(
    "-e",
    "--extra-var",
    "extra_var",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra variable for the playbook (value read as YAML). Never a secret: use the spec's references.",
)
@click.option("--skip-preflight", is_flag=True, help="Do not run the SSH preflight first.")
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys in preflight.")
@click.option("--full", is_flag=True, help="Run every role in full, even those whose hosts are already converged.")
@click.option(
    "--no-nodes",
    is_flag=True,
    help="Run every host from this machine, even when the spec names execution nodes.",
)
@click.option(
    "--no-secrets",
    is_flag=True,
    help="With --check: resolve and send no secret (for untrusted specs, e.g. pull requests); "
    "steps that need one are reported as unknown.",
)
@click.option("--yes", "-y", is_flag=True, help="Apply removals without asking (needed without a terminal).")
@click.option(
    "--from-workgroup",
    "workgroup_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Migrate this workgroup spec into the domain SPEC (written by provision grow): backup, domain "
    "controllers, passwords carried, local accounts retired, shares that move copied, peers joined, "
    "file owners mapped. "
    "Run it again to resume a migration that failed.",
)
@click.option(
    "--rollback",
    is_flag=True,
    help="With --from-workgroup: go back to the working workgroup from wherever the migration got to "
    "(files back to the local accounts, peers out of the domain, accounts back, the workgroup applied); "
    "the DCs and the directory are left as they are.",
)
@lock_options
@report_options
@click.option(
    "--keep-artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy ansible-runner's artifacts (events, stdout; no secrets) here.",
)
def apply(
    spec_path: Path,
    check: bool,
    diff: bool,
    limit: str | None,
    retry_failed: bool,
    tags: str | None,
    playbook: str,
    skip_preflight: bool,
    accept_new_host_keys: bool,
    report_json: Path | None,
    junit: Path | None,
    keep_artifacts: Path | None,
    unjoin: str | None,
    extra_var: tuple[str, ...],
    full: bool,
    no_secrets: bool,
    no_nodes: bool,
    fmt: str,
    yes: bool,
    workgroup_path: Path | None,
    rollback: bool,
    wait_lock: float,
    force_unlock: bool,
    no_anchor_lock: bool,
) -> None:
    """Configure the hosts: preflight, then the playbooks through ansible-runner.

    With rollout.execution_nodes in the spec, the controller runs the domain controllers
    and servers, then the nodes' ansible-runner workers run the workstations and peers,
    a slice each; one summary and report covers them all.

    With --from-workgroup, migrate a workgroup into this domain spec (see provision grow).
    """
    from provision import report, runner, secrets, state
    from provision.errors import PreflightError
    from provision.model import Mode

    if no_secrets and not check:
        raise click.UsageError("--no-secrets is for dry runs: add --check")
    network = _load(spec_path)
    if rollback and workgroup_path is None:
        raise click.UsageError("--rollback goes with --from-workgroup (the workgroup to go back to)")
    if workgroup_path is not None:
        others = {
            "--check": check,
            "--limit": limit,
            "--retry-failed": retry_failed,
            "--tags": tags,
            "--unjoin": unjoin,
            "--playbook": playbook != "site.yml",
            "-e": extra_var,
        }
        given = [name for name, value in others.items() if value]
        if given:
            raise click.UsageError(f"--from-workgroup migrates the whole network: not with {', '.join(given)}")
        _migrate(
            network,
            workgroup_path,
            rollback,
            accept_new_host_keys,
            skip_preflight,
            yes,
            fmt,
            report_json,
            junit,
            (wait_lock, force_unlock, no_anchor_lock),
        )
        return
    before = state.load(network)
    if before is not None and before.mode is Mode.WORKGROUP and network.mode is Mode.DOMAIN:
        from provision.migrate import MigrationError

        raise MigrationError(
            f"network '{network.name}' was last applied as a workgroup: migrate it with "
            f"provision apply {spec_path} --from-workgroup WORKGROUP-SPEC (users keep their passwords, "
            "local accounts are retired, files get the domain's owners)"
        )
    if unjoin:
        if network.mode is not Mode.DOMAIN:
            raise click.UsageError("--unjoin applies to domain networks only")
        limit, playbook = unjoin, "unjoin.yml"
    hosts = _targets(network, limit, retry_failed)
    if not no_secrets:  # every reference that does not resolve, at once, before any host is contacted
        secrets.require_references(network, users=runner.needs_user_passwords(playbook, hosts))
    if not check and playbook == "site.yml":
        _confirm_removals(network, yes, fmt)
    if not skip_preflight:
        pre = _preflight(network, hosts, accept_new_host_keys, fmt)
        if not pre.ok:
            raise PreflightError(f"preflight failed on: {', '.join(pre.failed_hosts())}; nothing was changed")
    options = runner.RunOptions(
        playbook=playbook,
        check=check,
        diff=diff,
        limit=[h.name for h in hosts] if (limit or retry_failed) else (),
        tags=[t for t in (tags or "").split(",") if t],
        keep_artifacts=keep_artifacts,
        extra_vars=_extra_vars(extra_var),
        full=full,
        no_secrets=no_secrets,
    )
    with _locked(network, wait_lock, force_unlock, anchor=not no_anchor_lock):
        reports = []
        if network.rollout.execution_nodes and playbook == "site.yml" and not no_nodes:
            reports = _node_preflight(network, accept_new_host_keys, fmt=fmt)
        live = _LiveProgress()
        try:
            if reports:
                from provision import nodes

                result = nodes.apply(network, options, reports, progress=live)
            else:
                result = runner.run(network, options, progress=live)
        finally:
            live.close()
        # The record plan compares with: only a whole, successful, real apply of the spec.
        whole = not (check or limit or retry_failed or tags or playbook != "site.yml")
        if whole and result.ok:
            state.record(network)
    _out(fmt, report.run_summary(result))
    if diff:
        for o in result.changes():
            if o.diff:
                _out(fmt, f"--- {o.host}: {o.task}\n{o.diff}")
    _emit("apply", result.to_dict(), fmt, report_json, junit, lambda: report.run_junit(result))
    result.raise_for_status()


def _migrate(
    domain: Network,
    workgroup_path: Path,
    rollback: bool,
    accept_new: bool,
    skip_preflight: bool,
    yes: bool,
    fmt: str,
    report_json: Path | None,
    junit: Path | None,
    lock: tuple[float, bool, bool],
) -> None:
    """apply --from-workgroup: show the migration, ask, preflight every host, run it under the lock."""
    from provision import backup, migrate, report, runner, secrets, state
    from provision.errors import PreflightError

    workgroup = _load(workgroup_path)
    steps = migrate.plan(workgroup, domain)
    secrets.require_references(domain, users=runner.needs_user_passwords("site.yml", domain.hosts))
    if rollback:
        _confirm(f"the peers of '{workgroup.name}' go back to the workgroup", "Roll back?", yes)
    else:
        _out(fmt, steps.text())
        _confirm("the workgroup above becomes the domain (its backup is taken first)", "Migrate?", yes)
    if not skip_preflight:
        pre = _preflight(domain, list(domain.hosts), accept_new, fmt)
        if not pre.ok:
            raise PreflightError(f"preflight failed on: {', '.join(pre.failed_hosts())}; nothing was changed")
    wait, force, no_anchor = lock
    with _locked(domain, wait, force, anchor=not no_anchor):
        live = _LiveProgress()
        try:
            if rollback:
                result = migrate.rollback(workgroup, domain, progress=live)
            else:
                result = migrate.run(workgroup, domain, backup.default_dir(workgroup), progress=live)
        finally:
            live.close()
        if result.ok:
            state.record(workgroup if rollback else domain)
    _out(fmt, migrate.run_text(result))
    runs = list(result.runs.values())
    _emit(
        "migration",
        result.to_dict(),
        fmt,
        report_json,
        junit,
        lambda: report.run_junit(runs[-1], "provision migration") if runs else "",
    )
    result.raise_for_status()


def _node_table(reports: list[Any]) -> str:
    from provision import report

    rows = []
    for r in reports:
        by = {c.name: c for c in r.checks}
        cells = [by[n].status if n in by else "-" for n in ("reachable", "host key", "auth", "runtime dir", "versions")]
        problems = "; ".join(f"{c.name}: {c.detail}" for c in r.checks if c.status != "pass")
        rows.append((r.host, r.address, *cells, problems))
    return report.table(("node", "address", "reach", "hostkey", "auth", "tmpfs", "versions", "problems"), rows)


def _node_preflight(network: Network, accept_new: bool, versions: bool = True, fmt: str = "text") -> list[Any]:
    """Check the execution nodes: refuse a wrong one, leave out one that does not answer."""
    from provision import nodes
    from provision.errors import PreflightError

    reports = nodes.preflight(network, accept_new_host_keys=accept_new, versions=versions)
    _out(fmt, _node_table(reports))
    broken = [r.host for r in reports if r.reachable and not r.ok]
    if broken:
        raise PreflightError(f"execution node(s) not ready: {', '.join(broken)}; nothing was changed")
    down = [r.host for r in reports if not r.reachable]
    if down and len(down) == len(reports):
        raise PreflightError(f"no execution node answers ({', '.join(down)}); nothing was changed")
    if down:
        click.echo(f"warning: left out, not answering: {', '.join(down)}; the other nodes take their share", err=True)
    return [r for r in reports if r.ok]


@cli.group(name="nodes", epilog=example("provision nodes setup site.yml", "provision nodes check site.yml"))
def nodes_group() -> None:
    """Execution nodes (rollout.execution_nodes): ansible-runner workers that run slices of the fleet."""


@nodes_group.command(name="check", epilog=example("provision nodes check site.yml"))
@spec_argument
@connection_options
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys.")
def nodes_check(spec_path: Path, accept_new_host_keys: bool) -> None:
    """Preflight the execution nodes: SSH, a tmpfs to unpack slices in, the controller's versions."""
    network = _load(spec_path)
    if not network.rollout.execution_nodes:
        raise click.UsageError("the spec names no rollout.execution_nodes")
    _node_preflight(network, accept_new_host_keys)


@nodes_group.command(name="setup", epilog=example("provision nodes setup site.yml --accept-new-host-keys"))
@spec_argument
@connection_options
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys.")
def nodes_setup(spec_path: Path, accept_new_host_keys: bool) -> None:
    """Install the controller's ansible-runner and ansible-core on the execution nodes.

    From a wheelhouse the controller builds of its own installed packages and copies over
    SFTP: the nodes need no package index, pip or venv.
    """
    from provision import nodes
    from provision.errors import PreflightError

    network = _load(spec_path)
    if not network.rollout.execution_nodes:
        raise click.UsageError("the spec names no rollout.execution_nodes")
    reports = nodes.preflight(network, accept_new_host_keys=accept_new_host_keys, versions=False)
    click.echo(_node_table(reports))
    bad = [r.host for r in reports if not r.ok]
    if bad:
        raise PreflightError(f"execution node(s) not ready: {', '.join(bad)}; nothing was installed")
    for res in nodes.setup(network, reports, progress=lambda line: click.echo(f"  {line}", err=True)):
        versions = ", ".join(f"{k} {v}" for k, v in sorted(res.versions.items()))
        click.echo(f"{res.node}: {versions} ({res.copied // 1024} KiB sent, {res.seconds:.1f} s)")


def _verify_progress(line: str) -> None:
    if line.rstrip().endswith("%]"):
        click.echo(f"  {line}", err=True)


def _echo_verify(result: Any, fmt: str) -> None:
    """The verify table and its one-line tally."""
    from provision import report

    rows = [
        (c.host, c.name, c.status.upper() if c.status == "fail" else c.status, c.detail[:100]) for c in result.checks
    ]
    _out(fmt, report.table(("host", "check", "result", "detail"), rows))
    failed = result.failed()
    _out(
        fmt,
        f"verify: {len(result.checks) - len(failed)}/{len(result.checks)} checks passed on "
        f"{len({c.host for c in result.checks})} host(s) in {result.seconds:.1f} s",
    )


@cli.command(
    name="backup",
    epilog=example(
        "provision backup site.yml",
        "provision backup site.yml -o /srv/backups/provision --keep 14",
        "provision backup site.yml --limit fs1 --format json",
    ),
)
@spec_argument
@connection_options
@output_dir_option("Keep backups here (default: the network's state folder, .../provision/NETWORK/backups).")
@click.option("--keep", type=click.IntRange(min=1), help="Keep only the N newest backups (older ones are removed).")
@click.option(
    "--schedule",
    is_flag=True,
    help="Instead of backing up now, install a systemd timer on this machine that runs this backup "
    "at policies.backup.schedule (default daily).",
)
@click.option("--unschedule", is_flag=True, help="Remove the timer --schedule installed.")
@limit_option
@lock_options
@report_options
def backup_cmd(
    spec_path: Path,
    out_dir: Path | None,
    keep: int | None,
    schedule: bool,
    unschedule: bool,
    limit: str | None,
    wait_lock: float,
    force_unlock: bool,
    no_anchor_lock: bool,
    report_json: Path | None,
    junit: Path | None,
    fmt: str,
) -> None:
    """Back up the network's data to this machine: the domain (samba-tool domain backup offline on
    the first DC), each member server's join state, each share's files with owners, POSIX ACLs and
    every extended attribute (NT ACLs included), the peers' password databases, the mailboxes and
    each database (pg_dump). One folder per backup, 0700, with a manifest of sizes and checksums;
    workstations need none."""
    from provision import backup, report

    network = _load(spec_path)
    hosts = _targets(network, limit)
    root = out_dir or backup.default_dir(network)
    keep = keep or network.policies.backup.keep
    if schedule or unschedule:
        from provision import schedule as timers

        if unschedule:
            for path in timers.remove(network):
                click.echo(f"removed {path}")
            return
        units = timers.install(network, spec_path, root, keep, limit)
        for path in units:
            click.echo(f"wrote {path}")
        click.echo(f"enabled {units[-1].name}: provision backup {spec_path} runs {network.policies.backup.schedule}")
        return
    backup.require_plan(network, hosts)
    live = _LiveProgress()
    with _locked(network, wait_lock, force_unlock, anchor=not no_anchor_lock):
        try:
            made = backup.run(network, root, hosts, keep=keep, progress=live)
        finally:
            live.close()
    _out(fmt, report.run_summary(made.run))
    if made.manifest:
        m = made.manifest
        rows = [
            (host, item["name"], item["kind"], f"{item['size']:,}", item["sha256"][:16])
            for host, entry in m["hosts"].items()
            for item in entry["items"]
        ]
        _out(fmt, report.table(("host", "item", "kind", "bytes", "sha256"), rows))
        _out(fmt, f"backup: {made.folder} ({m['bytes']:,} bytes in {len(rows)} file(s), {m['seconds']} s)")
    for old in made.removed:
        _out(fmt, f"removed older backup {old} (--keep {keep})")
    _emit("backup", made.to_dict(), fmt, report_json, junit, lambda: report.run_junit(made.run, "provision backup"))
    made.run.raise_for_status()


@cli.command(
    name="restore",
    epilog=example(
        "provision restore site.yml --from ~/.local/state/provision/office/backups/office-20261206T030000Z",
        "provision restore site.yml --from /srv/backups/provision/office-20261206T030000Z --plan-only",
    ),
)
@spec_argument
@connection_options
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The backup folder (NETWORK-YYYYMMDDTHHMMSSZ, with its manifest.json) to restore from.",
)
@click.option("--plan-only", is_flag=True, help="Look at the hosts and show what would happen on each; change nothing.")
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask before a restore that rolls the directory back, or removes what the spec no longer has.",
)
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and record keys of hosts not yet in known_hosts (a rebuilt host's changed key still fails).",
)
@lock_options
@report_options
def restore_cmd(
    spec_path: Path,
    source: Path,
    plan_only: bool,
    yes: bool,
    accept_new_host_keys: bool,
    wait_lock: float,
    force_unlock: bool,
    no_anchor_lock: bool,
    report_json: Path | None,
    junit: Path | None,
    fmt: str,
) -> None:
    """Recover what was lost from a backup, as the topology says: a lost DC is removed from a surviving
    DC's directory and joins again (no rollback); only when every DC is lost is the domain restored
    onto the first DC, and the others join it. Lost file, mail and database servers and peers get
    their join state, password database, shares (owners, POSIX and NT ACLs), mailboxes and databases
    back; workstations keep working. Then the spec is applied. The backup is checked against its
    manifest before any host is contacted; hosts that still hold their data are left as they are."""
    from provision import report, restore, runner, secrets, state
    from provision.errors import PreflightError

    network = _load(spec_path)
    found = restore.open_backup(network, source)
    secrets.require_references(network, users=runner.needs_user_passwords("site.yml", network.hosts))
    if not plan_only:  # the restore ends with an apply of the spec: its removals are confirmed the same way
        _confirm_removals(network, yes, fmt)
    pre = _preflight(network, list(network.hosts), accept_new_host_keys, fmt)
    if not pre.ok:
        raise PreflightError(f"preflight failed on: {', '.join(pre.failed_hosts())}; nothing was changed")
    with _locked(network, wait_lock, force_unlock, anchor=not no_anchor_lock):
        states = restore.probe(network, restore.hosts_to_probe(network, found))
        plan = restore.decide(network, found, states)
        _out(fmt, restore.plan_text(found, plan))
        if plan_only or not plan.anything:
            if not plan.anything:
                _out(fmt, "nothing was lost: nothing to restore")
            _emit("restore", restore.RestoreResult(plan).to_dict(), fmt, report_json, None, lambda: None)
            return
        if plan.rolls_back:
            _confirm(
                "every DC is lost: the directory goes back to the backup's time (changes made since are lost)",
                "Restore?",
                yes,
            )
        live = _LiveProgress()
        try:
            result = restore.run(network, plan, progress=live)
        finally:
            live.close()
        if result.ok:
            state.record(network)
    for phase, run in result.runs.items():
        _out(fmt, f"{phase}: {report.run_summary(run)}")
    _out(fmt, f"restore: {'done' if result.ok else 'FAILED'} in {result.seconds:.0f} s")
    applied = result.runs.get("apply")
    _emit(
        "restore",
        result.to_dict(),
        fmt,
        report_json,
        junit,
        lambda: report.run_junit(applied or next(iter(result.runs.values())), "provision restore"),
    )
    result.raise_for_status()


@cli.command(
    name="verify",
    epilog=example(
        "provision verify site.yml", "provision verify site.yml --limit 'role:workstation' --junit verify.xml"
    ),
)
@spec_argument
@connection_options
@limit_option
@report_options
def verify_cmd(spec_path: Path, limit: str | None, report_json: Path | None, junit: Path | None, fmt: str) -> None:
    """Check that the hosts are what the spec says (testinfra over SSH). Exit 6 on any failure."""
    from provision import report
    from provision.errors import VerifyError

    network = _load(spec_path)
    from provision import backup, verify

    result = verify.run(network, _targets(network, limit), progress=_verify_progress)
    aged = backup.age_check(network)  # policies.backup.max_age: a check of this controller's backups
    if aged is not None:
        result.checks.append(aged)
    _echo_verify(result, fmt)
    _emit(
        "verify",
        result.to_dict(),
        fmt,
        report_json,
        junit,
        lambda: report.checks_junit(result.checks, "provision verify"),
    )
    if not result.ok:
        hosts = sorted({c.host for c in result.failed()})
        raise VerifyError(f"{len(result.failed())} check(s) failed on: {', '.join(hosts)}")


@cli.command(epilog=example("provision drift site.yml", "provision drift site.yml --format json > drift.json"))
@spec_argument
@connection_options
@limit_option
@lock_options
@report_options
def drift(
    spec_path: Path,
    limit: str | None,
    report_json: Path | None,
    junit: Path | None,
    fmt: str,
    wait_lock: float,
    force_unlock: bool,
    no_anchor_lock: bool,
) -> None:
    """What an apply would change (check + diff mode) plus verify; exit 0 when nothing drifted, 6 otherwise."""
    from provision import drift as drift_mod
    from provision import report
    from provision.errors import VerifyError

    network = _load(spec_path)
    hosts = _targets(network, limit)
    with _locked(network, wait_lock, force_unlock, anchor=not no_anchor_lock):
        found = drift_mod.run(network, hosts, limited=bool(limit), progress=_verify_progress)
    by_host = found.by_host()
    _out(fmt, "Would change:" if by_host else "Would change: nothing")
    for host, changes in by_host.items():
        _out(fmt, f"  {host}:")
        for o in changes:
            _out(fmt, f"    - {o.task}")
            for line in o.diff.splitlines()[:20]:
                _out(fmt, f"        {line}")
    _echo_verify(found.verify, fmt)
    _emit(
        "drift",
        found.to_dict(),
        fmt,
        report_json,
        junit,
        lambda: report.checks_junit(found.checks(), "provision drift"),
    )
    if found.bad_hosts():
        raise VerifyError(f"drift on: {', '.join(found.bad_hosts())}")
    _out(fmt, "no drift: every host matches the spec")


cli.add_command(lab)


@cli.command(
    epilog=example(
        "provision completion bash > /etc/bash_completion.d/provision",
        'eval "$(provision completion zsh)"   # in ~/.zshrc',
        "provision completion fish > ~/.config/fish/completions/provision.fish",
    )
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, and the spec's host
    names and roles after --limit)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "provision", "_PROVISION_COMPLETE").source())


def main() -> None:
    """Console entry point. SIGTERM outside a playbook run stops like Ctrl-C (exit 5), so the
    run lock and the secrets' RAM folder are released on the way out."""
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cli(prog_name="provision")


if __name__ == "__main__":  # pragma: no cover
    main()
