"""The `provision` command line: parses arguments and delegates.

Every failure reaches the user through ``main``, which maps the exception tree
of ``provision.errors`` to messages and exit codes in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from provision import errors, policy, spec
from provision.advise import advise
from provision.cli_lab import lab
from provision.errors import Problem, ProvisionError, SpecError, StrictWarnings
from provision.model import Network
from provision.plan import make_plan, summarize_names
from provision.resources import schemas_dir, starters_dir
from provision.results import Check

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
    network = spec.load_network(path)
    meta = click.get_current_context().meta
    known_hosts, identity = meta.get("provision.known_hosts"), meta.get("provision.identity")
    if meta.get("provision.vagrant"):
        from provision import vagrant

        network = vagrant.connections(network, Path(meta["provision.vagrant"]))
    if known_hosts or identity:
        network = network.with_connection(known_hosts_file=known_hosts, identity_file=identity)
    return network


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


@cli.command()
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


@cli.command()
@spec_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(spec_path: Path, fmt: str) -> None:
    """Show what an apply would configure. No host is contacted."""
    p = make_plan(_load(spec_path)).to_dict()
    if fmt == "json":
        from provision import report

        click.echo(report.dumps("plan", p))
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
    if p["databases"]:
        click.echo(f"Databases ({len(p['databases'])}; one left out of the spec is kept, as unmanaged):")
        for db in p["databases"]:
            rw, ro = ", ".join(db["read_write"]) or "-", ", ".join(db["read_only"]) or "-"
            click.echo(f"  {db['database']} on {db['host']}: owner {db['owner']}; read-write {rw}; read-only {ro}")
    if p["mail"]:
        m = p["mail"]
        click.echo(f"Mail for {m['domain']} on {', '.join(m['servers'])} (MX {m['mx']}):")
        click.echo(f"  mailboxes ({len(m['mailboxes'])}): {summarize_names(m['mailboxes'])}")
        for address, members in m["lists"].items():
            click.echo(f"  list {address}: {', '.join(members) or 'no member in the spec'}")
        for server, account in m["lookups"].items():
            click.echo(f"  {server} looks users up as {account} (its own account, not the Administrator)")
    if pol := p["policy"]:
        click.echo(f"Login and sudo (access: {pol['access']} policy, sudo: {pol['sudo']} policy; root's key always):")
        for item in pol["effective"]:
            where = item["role"] + (f" ({summarize_names(item['hosts'])})" if item["hosts"] else "")
            click.echo(f"  {where:<18} login: {', '.join(item['login']) or 'nobody'}")
            click.echo(f"  {'':<18} sudo:  {', '.join(item['sudo']) or 'nobody'}")
    r = p["rollout"]
    click.echo(f"Rollout: batch {r['batch']}, stop past {r['max_fail_percent']}% failed, {len(r['steps'])} step(s):")
    for i, step in enumerate(r["steps"], 1):
        click.echo(f"  {i:>3}. {step['role']:<18}  {step['hosts']}")
    if r["execution_nodes"]:
        click.echo("Execution nodes (after the controller's hosts, each runs a slice):")
        for item in r["execution_nodes"]:
            click.echo(f"  {item['node']:<18} {item['address']:<15}  {item['hosts']} ({item['batch']} at once)")
    _echo_advice([Problem(a["path"], a["message"], severity=a["severity"]) for a in p["advice"]])


def _echo_advice(items: list[Problem]) -> None:
    if not items:
        click.echo("Advice: none; the topology fits the network's size.")
        return
    click.echo("Advice:")
    for a in items:
        click.echo(f"  {a.severity}: {a.message}")


@cli.group(name="policy")
def policy_group() -> None:
    """Ask the spec's login and sudo policy questions offline (no host is contacted)."""


@policy_group.command(name="test")
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


@cli.command(name="advise")
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


@cli.command()
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


@cli.command(name="inventory")
@spec_argument
@connection_options
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write an inventory directory (hosts.yml, group_vars/, ansible.cfg) here.",
)
@click.option("--limit", help="Comma-separated host names to include.")
def inventory_cmd(spec_path: Path, out_dir: Path | None, limit: str | None) -> None:
    """Render the Ansible inventory (usable with plain ansible-playbook; every string !unsafe)."""
    from provision import inventory

    network = _load(spec_path)
    hosts = _targets(network, limit)
    if out_dir is None:
        click.echo(inventory.dump_unsafe(inventory.build_inventory(network, hosts)), nl=False)
        return
    from provision import certificates, runner

    folder = runner.tls_dir(network)
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


@cli.command(name="vagrant")
@spec_argument
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the Vagrantfile.",
)
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
    from provision import inventory, runner

    names: list[str] = [n.strip() for n in (limit or "").split(",") if n.strip()]
    if retry_failed:
        failed = runner.last_failed(network)
        if not failed:
            raise ProvisionError("the last run had no failed or unreachable hosts; nothing to retry")
        names = [n for n in failed if not names or n in names]
    try:
        return inventory.select_hosts(network, names)
    except KeyError as exc:
        raise click.UsageError(f"--limit names hosts that are not in the spec: {exc.args[0]}") from None


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
            for n in ("reachable", "host key", "auth", "sudo", "python3", "os", "clock")
        ]
        rows.append((r.host, r.address, *cells, problems))
    headers = ("host", "address", "reach", "hostkey", "auth", "sudo", "python", "os", "clock", "problems")
    _out(fmt, report.table(headers, rows))
    ready = len(result.reports) - len(result.failed_hosts())
    _out(fmt, f"preflight: {ready}/{len(result.reports)} hosts ready in {result.seconds:.1f} s")
    return result


@cli.command(name="preflight")
@spec_argument
@connection_options
@click.option("--limit", help="Comma-separated host names to check.")
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
    """SSH checks of every host: reachable, host key, auth, sudo, python3, OS, clock, port 53.

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
    if fmt == "json":
        click.echo(report.dumps("preflight", body))
    if report_json:
        report.write_json(report_json, "preflight", body)
    if junit:
        report.write_junit(junit, report.checks_junit(checks, "provision preflight"))
    if not ok:
        failed = result.failed_hosts() + [r.host for r in node_reports if not r.ok]
        raise PreflightError(f"preflight failed on: {', '.join(failed)}")


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


@cli.command()
@spec_argument
@connection_options
@click.option("--check", is_flag=True, help="Dry run: report what would change, change nothing.")
@click.option("--diff", is_flag=True, help="Show file differences of changed tasks.")
@click.option("--limit", help="Comma-separated host names; the inventory is built for these only.")
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
) -> None:
    """Configure the hosts: preflight, then the playbooks through ansible-runner.

    With rollout.execution_nodes in the spec, the controller runs the domain controllers
    and servers, then the nodes' ansible-runner workers run the workstations and peers,
    a slice each; one summary and report covers them all.
    """
    from provision import report, runner
    from provision.errors import PreflightError
    from provision.model import Mode

    if no_secrets and not check:
        raise click.UsageError("--no-secrets is for dry runs: add --check")
    network = _load(spec_path)
    if unjoin:
        if network.mode is not Mode.DOMAIN:
            raise click.UsageError("--unjoin applies to domain networks only")
        limit, playbook = unjoin, "unjoin.yml"
    hosts = _targets(network, limit, retry_failed)
    if not skip_preflight:
        pre = _preflight(network, hosts, accept_new_host_keys, fmt)
        if not pre.ok:
            raise PreflightError(f"preflight failed on: {', '.join(pre.failed_hosts())}; nothing was changed")
    reports = []
    if network.rollout.execution_nodes and playbook == "site.yml" and not no_nodes:
        reports = _node_preflight(network, accept_new_host_keys, fmt=fmt)
    live = _LiveProgress()
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
    try:
        if reports:
            from provision import nodes

            result = nodes.apply(network, options, reports, progress=live)
        else:
            result = runner.run(network, options, progress=live)
    finally:
        live.close()
    _out(fmt, report.run_summary(result))
    if diff:
        for o in result.changes():
            if o.diff:
                _out(fmt, f"--- {o.host}: {o.task}\n{o.diff}")
    if fmt == "json":
        click.echo(report.dumps("apply", result.to_dict()))
    if report_json:
        report.write_json(report_json, "apply", result.to_dict())
    if junit:
        report.write_junit(junit, report.run_junit(result))
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


@cli.group(name="nodes")
def nodes_group() -> None:
    """Execution nodes (rollout.execution_nodes): ansible-runner workers that run slices of the fleet."""


@nodes_group.command(name="check")
@spec_argument
@connection_options
@click.option("--accept-new-host-keys", is_flag=True, help="Record unknown host keys.")
def nodes_check(spec_path: Path, accept_new_host_keys: bool) -> None:
    """Preflight the execution nodes: SSH, a tmpfs to unpack slices in, the controller's versions."""
    network = _load(spec_path)
    if not network.rollout.execution_nodes:
        raise click.UsageError("the spec names no rollout.execution_nodes")
    _node_preflight(network, accept_new_host_keys)


@nodes_group.command(name="setup")
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


def _verify(network: Network, hosts: list[Any], fmt: str = "text") -> Any:
    from provision import report, verify

    def progress(line: str) -> None:
        if line.rstrip().endswith("%]"):
            click.echo(f"  {line}", err=True)

    result = verify.run(network, hosts, progress=progress)
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
    return result


@cli.command(name="verify")
@spec_argument
@connection_options
@click.option("--limit", help="Comma-separated host names to verify.")
@report_options
def verify_cmd(spec_path: Path, limit: str | None, report_json: Path | None, junit: Path | None, fmt: str) -> None:
    """Check that the hosts are what the spec says (testinfra over SSH). Exit 6 on any failure."""
    from provision import report
    from provision.errors import VerifyError

    network = _load(spec_path)
    result = _verify(network, _targets(network, limit), fmt)
    if fmt == "json":
        click.echo(report.dumps("verify", result.to_dict()))
    if report_json:
        report.write_json(report_json, "verify", result.to_dict())
    if junit:
        report.write_junit(junit, report.checks_junit(result.checks, "provision verify"))
    if not result.ok:
        hosts = sorted({c.host for c in result.failed()})
        raise VerifyError(f"{len(result.failed())} check(s) failed on: {', '.join(hosts)}")


@cli.command()
@spec_argument
@connection_options
@click.option("--limit", help="Comma-separated host names.")
@report_options
def drift(spec_path: Path, limit: str | None, report_json: Path | None, junit: Path | None, fmt: str) -> None:
    """What an apply would change (check + diff mode) plus verify; exit 0 when nothing drifted, 6 otherwise."""
    from provision import report, runner
    from provision.errors import VerifyError

    network = _load(spec_path)
    hosts = _targets(network, limit)
    # Every role is checked in full: drift is the audit that does not trust the fast path.
    options = runner.RunOptions(check=True, diff=True, full=True, limit=[h.name for h in hosts] if limit else ())
    run_result = runner.run(network, options)
    by_host: dict[str, list[Any]] = {}
    for o in run_result.changes():
        by_host.setdefault(o.host, []).append(o)
    _out(fmt, "Would change:" if by_host else "Would change: nothing")
    for host, changes in sorted(by_host.items()):
        _out(fmt, f"  {host}:")
        for o in changes:
            _out(fmt, f"    - {o.task}")
            for line in o.diff.splitlines()[:20]:
                _out(fmt, f"        {line}")
    verified = _verify(network, hosts, fmt)
    checks = [Check(o.host, f"drift: {o.task}", "fail", o.diff or "would change") for o in run_result.changes()]
    checks += [Check(f.host, f"apply: {f.task}", "fail", f.message) for f in run_result.failures()]
    checks += verified.checks
    body = {"drifted": bool(by_host), "run": run_result.to_dict(), "verify": verified.to_dict()}
    if fmt == "json":
        click.echo(report.dumps("drift", body))
    if report_json:
        report.write_json(report_json, "drift", body)
    if junit:
        report.write_junit(junit, report.checks_junit(checks, "provision drift"))
    bad = sorted(set(by_host) | {c.host for c in verified.failed()} | set(run_result.failed_hosts()))
    if bad:
        raise VerifyError(f"drift on: {', '.join(bad)}")
    _out(fmt, "no drift: every host matches the spec")


cli.add_command(lab)


def main() -> None:
    """Console entry point."""
    cli(prog_name="provision")


if __name__ == "__main__":  # pragma: no cover
    main()
