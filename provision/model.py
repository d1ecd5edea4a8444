"""The validated network, as frozen dataclasses.

Everything downstream of ``spec`` (inventory, runner, lab, verify) reads these
objects and never the raw YAML dict, so defaults and host-range expansion are
applied in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Mode(StrEnum):
    WORKGROUP = "workgroup"
    DOMAIN = "domain"


class Role(StrEnum):
    PEER = "peer"
    DOMAIN_CONTROLLER = "domain_controller"
    FILE_SERVER = "file_server"
    MAIL_SERVER = "mail_server"
    DATABASE_SERVER = "database_server"
    WORKSTATION = "workstation"


WORKGROUP_ROLES = frozenset({Role.PEER})
DOMAIN_ROLES = frozenset(Role) - WORKGROUP_ROLES
SERVER_ROLES = frozenset({Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER})
# Roles that may share a rollout stage (domain_members.yml, one play for all of them).
STAGE_ROLES = SERVER_ROLES | {Role.WORKSTATION}
# The stages a rollout walks through unless the spec says otherwise: the roles of
# one stage roll out side by side, in one play (servers do not wait for each other).
DEFAULT_ORDER: tuple[tuple[Role, ...], ...] = (
    (Role.DOMAIN_CONTROLLER,),
    (Role.FILE_SERVER, Role.MAIL_SERVER, Role.DATABASE_SERVER),
    (Role.WORKSTATION,),
    (Role.PEER,),
)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives; never the secret itself."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"


@dataclass(frozen=True, slots=True)
class Share:
    name: str
    path: str
    comment: str = ""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    read_only: bool = False
    read_list: tuple[str, ...] = ()
    write_list: tuple[str, ...] = ()
    guest_ok: bool = False
    browseable: bool = True
    owner: str = "root"
    group: str = "root"
    mode: str = "2770"
    streams: bool = True  # alternate data streams in xattrs (vfs_streams_xattr)
    macos: bool = True  # vfs_catia + vfs_fruit; only with streams


@dataclass(frozen=True, slots=True)
class Printer:
    name: str
    uri: str = "file:///dev/null"
    description: str = ""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MailService:
    """How a mail server serves mail (hosts[].mail)."""

    imap_starttls: bool = False  # also IMAP on 143 with STARTTLS; 993 is always on
    max_message_mb: int = 25


@dataclass(frozen=True, slots=True)
class Database:
    """A PostgreSQL database of a database server (hosts[].databases); names are the spec's accounts."""

    name: str
    owner: str  # a user or group of the spec
    read_write_users: tuple[str, ...] = ()
    read_write_groups: tuple[str, ...] = ()
    read_only_users: tuple[str, ...] = ()
    read_only_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A certificate chain and its key given by the spec (paths on the controller, resolved)."""

    certificate: str
    key: str


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The certificates of a run, read or issued on the controller just before it (not spec data)."""

    ca_certificates: tuple[str, ...] = ()  # PEM; trusted by every domain host: the network CA, the spec's
    chains: dict[str, str] = field(default_factory=dict)  # host -> its certificate chain (PEM)
    keys: dict[str, str] = field(default_factory=dict)  # host -> private key (PEM): a secret


# Roles whose services present a certificate (LDAPS, SMTP/IMAP): they get one from the
# spec (hosts[].tls) or from the network's own CA.
TLS_ROLES = frozenset({Role.DOMAIN_CONTROLLER, Role.MAIL_SERVER, Role.DATABASE_SERVER})


@dataclass(frozen=True, slots=True)
class HostConnection:
    """How to reach one host when not at its spec address with the spec's ssh settings.

    Vagrant machines are reached through a forwarded port (VirtualBox) or a ProxyCommand
    (libvirt) with a key per machine; ``vagrant ssh-config`` says which. Never from the spec.
    """

    address: str  # HostName: an address or a name SSH resolves
    port: int = 22
    user: str = "root"
    identity_file: str | None = None
    proxy_command: str | None = None

    def proxy_for_paramiko(self) -> str | None:
        """The ProxyCommand with ssh's %h, %p, %r and %% expanded (OpenSSH does it; paramiko does not)."""
        if not self.proxy_command:
            return None
        tokens = {"h": self.address, "p": str(self.port), "r": self.user, "%": "%"}
        out, i, cmd = [], 0, self.proxy_command
        while i < len(cmd):
            if cmd[i] == "%" and i + 1 < len(cmd) and cmd[i + 1] in tokens:
                out.append(tokens[cmd[i + 1]])
                i += 2
            else:
                out.append(cmd[i])
                i += 1
        return "".join(out)


@dataclass(frozen=True, slots=True)
class RequirementsOverride:
    """hosts[].requirements: the spec's own minimums for one host (None: the role's figure).

    provision.requirements merges them with the role's defaults; a lab VM may run a DC
    with less than production wants, a big file server may need more.
    """

    memory_mb: int | None = None
    cpus: int | None = None
    disk_gb: int | None = None  # every path the host fills


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    address: str  # dotted-quad IPv4, validated
    role: Role
    os: str = "debian12"
    shares: tuple[Share, ...] = ()
    printers: tuple[Printer, ...] = ()
    homes: bool = False
    client: str = "sssd"  # domain members: "sssd" or "winbind"
    range_name: str | None = None  # the spec entry ``ws[001:250]`` this host came from
    mail: MailService | None = None  # mail servers only
    databases: tuple[Database, ...] = ()  # database servers only
    tls: TlsFiles | None = None  # the spec's certificate; None: the network CA issues one
    connection: HostConnection | None = None  # set by --vagrant; None: address and the spec's ssh
    requirements: RequirementsOverride | None = None  # the spec's own minimums; None: the role's


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: SecretRef
    full_name: str = ""
    groups: tuple[str, ...] = ()
    shell: str = "/bin/bash"


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    description: str = ""
    mail: bool = False  # a distribution list: <name>@<mail domain> reaches every member


@dataclass(frozen=True, slots=True)
class Domain:
    realm: str
    netbios: str
    admin_password: SecretRef
    dcs: tuple[str, ...] = ()  # host names; the first is the one that provisions
    dns_domain: str = ""  # the AD DNS zone, lower-case realm unless given
    mail_domain: str = ""  # addresses are user@mail_domain; dns_domain unless given

    @property
    def mail_in_zone(self) -> bool:
        """Whether the mail domain's MX record lives in the domain's own DNS (so provision adds it)."""
        return self.mail_domain == self.dns_domain or self.mail_domain.endswith("." + self.dns_domain)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 12
    complexity: bool = True
    history: int = 24
    max_age_days: int = 90
    min_age_days: int = 1
    lockout_threshold: int = 5
    lockout_duration_minutes: int = 30
    lockout_window_minutes: int = 30


@dataclass(frozen=True, slots=True)
class SmbPolicy:
    min_protocol: str = "SMB2_10"
    signing: str = "mandatory"
    encryption: str = "if_required"
    netbios: bool = False


@dataclass(frozen=True, slots=True)
class FirewallPolicy:
    enabled: bool = True
    allow_from: tuple[str, ...] = ()  # CIDRs; the network's subnets unless given


@dataclass(frozen=True, slots=True)
class AccessRule:
    """policies.access[]: these accounts may (allow) or may not log in on these hosts."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    everyone: bool = False
    roles: tuple[str, ...] = ()  # role values, or "all"
    hosts: tuple[str, ...] = ()  # host names, ranges expanded
    allow: bool = True


@dataclass(frozen=True, slots=True)
class SudoRule:
    """policies.sudo[]: these accounts may run these commands as root on these hosts."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    commands: tuple[str, ...] = ("ALL",)
    nopasswd: bool = False


@dataclass(frozen=True, slots=True)
class BackupPolicy:
    """policies.backup: how backups are kept on the controller and how old the newest may be."""

    max_age_hours: int | None = None  # verify fails past it; None: not checked
    keep: int | None = None  # newest backups kept; None: all
    schedule: str = "daily"  # systemd OnCalendar= of provision backup --schedule
    directory: str | None = None  # None: the network's state folder


@dataclass(frozen=True, slots=True)
class Policies:
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    smb: SmbPolicy = field(default_factory=SmbPolicy)
    firewall: FirewallPolicy = field(default_factory=FirewallPolicy)
    unattended_upgrades: bool = False
    # None: the section is absent and the defaults of provision.policy apply.
    access: tuple[AccessRule, ...] | None = None
    sudo: tuple[SudoRule, ...] | None = None
    backup: BackupPolicy = field(default_factory=BackupPolicy)


@dataclass(frozen=True, slots=True)
class ExecutionNode:
    """rollout.execution_nodes[]: a machine whose ansible-runner worker runs a slice of the fleet."""

    name: str
    address: str  # dotted-quad IPv4, validated


@dataclass(frozen=True, slots=True)
class Rollout:
    batch: int | str = 50  # hosts per batch, or a percentage like "20%"
    max_fail_percent: int = 10
    order: tuple[tuple[Role, ...], ...] = DEFAULT_ORDER  # stages, each a tuple of roles
    # Reached with the spec's ssh settings; () runs the whole fleet from the controller.
    execution_nodes: tuple[ExecutionNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Ssh:
    user: str = "root"
    port: int = 22
    identity_file: str | None = None
    known_hosts_file: str | None = None
    become: bool = False


@dataclass(frozen=True, slots=True)
class Network:
    """The whole spec after validation, defaults and range expansion."""

    name: str
    mode: Mode
    subnets: tuple[str, ...]
    hosts: tuple[Host, ...]
    workgroup: str = ""
    dns_forwarders: tuple[str, ...] = ()
    ntp_servers: tuple[str, ...] = ()
    domain: Domain | None = None
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    policies: Policies = field(default_factory=Policies)
    rollout: Rollout = field(default_factory=Rollout)
    ssh: Ssh = field(default_factory=Ssh)
    source: str = ""  # the file it came from
    base_dir: str = ""  # relative secret and key files are resolved against this
    tls_ca_files: tuple[str, ...] = ()  # CA certificates of the spec's own certificates (resolved paths)

    def with_connection(self, known_hosts_file: str | None = None, identity_file: str | None = None) -> Network:
        """The same network reached with the operator's key and known_hosts instead of the spec's.

        A spec from an unreviewed pull request chooses its hosts: with the pipeline's own
        known_hosts file, a host the pipeline does not know fails the host key check.
        """
        ssh = replace(
            self.ssh,
            known_hosts_file=known_hosts_file or self.ssh.known_hosts_file,
            identity_file=identity_file or self.ssh.identity_file,
        )
        return replace(self, ssh=ssh)

    def mail_bind_account(self, host: Host) -> str:
        """The directory account a mail server's lookups bind with (least privilege, one per server)."""
        return f"mail-{host.name}"

    def hosts_by_role(self) -> dict[Role, list[Host]]:
        out: dict[Role, list[Host]] = {}
        for h in self.hosts:
            out.setdefault(h.role, []).append(h)
        return out

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)
