#!/usr/bin/python
"""Ansible module: a least-privilege directory account for a service's LDAP lookups, its password kept on the host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision_service_account
short_description: Keep a least-privilege AD account for a service's LDAP lookups, its password made on the host
description:
  - Runs as root on a member of a Samba AD domain (a mail server, say) and keeps the directory
    account a service binds with for its lookups (Postfix and Dovecot, say). The account's
    password is generated on the host by this module and never leaves it - it is not in the
    result, not in a log, not on a command line. It lands only in O(secret_file) (mode 0600,
    root) and in the O(files) that embed it, where C(@@SERVICE_PASSWORD@@) stands for it.
  - First the password kept in O(secret_file) is tested - a bind as C(NETBIOS\NAME) to
    C(ldap://SERVER) (NTLM, against that DC only, so replication lag cannot fail it) and a
    search for the account itself. When that works nothing is done in the directory, and the
    Administrator's password is not used.
  - Otherwise (no password kept, the account is missing, the password is refused) the module
    binds as the domain's Administrator, creates the account (C(SamDB.newuser), then
    adminDescription O(marker) and userAccountControl NORMAL_ACCOUNT and DONT_EXPIRE_PASSWORD;
    a member of no group but Domain Users) or resets its password (C(SamDB.setpassword)), then
    tests the new password with a bind of the account itself.
  - An account of that name that does not carry O(marker) in adminDescription (a person's, or a
    group's) is never taken over; the module fails. A disabled one is not enabled again; the
    module fails. An account in a privileged group (Domain Admins, Administrators, the operators
    groups...) fails the module too - its password would sit in a service's configuration.
  - Crash safety - a new password goes to C(SECRET_FILE.new) (0600) before the directory gets
    it, and replaces O(secret_file) once the account binds with it. A later run tests
    C(SECRET_FILE.new) first and adopts it when it binds (the directory took it, the run did
    not finish), else removes it.
  - Files are written atomically (a temporary file in the same directory, owner and mode set,
    then renamed), only when their content, owner, group or mode differ. A symbolic link at a
    file's path is replaced by the file.
  - O(check_users) are looked up with the account's own credentials, the preflight that it can
    read the directory; a user it cannot find fails the module (after the files are written).
  - Check mode changes nothing and generates no password; it says whether the account would be
    created or get a new password and which files would be written. Diff mode shows the files
    before and after with the password as C(********).
  - Needs Samba's Python bindings (python3-samba) and Samba's own LDAP client for ldb
    (samba-dsdb-modules, C(ildap.so)); without the latter ldb's C(ldap://) backend is
    OpenLDAP's, which ignores Samba's credentials. The module fails saying so.
  - Every message is masked - neither the Administrator's nor the account's password appears.
version_added: "0.1.0"
author: provision maintainers
requirements: [python3-samba, samba-dsdb-modules]
options:
  name:
    description:
      - sAMAccountName of the account, e.g. C(mail-mx1) - 1 to 20 characters, lower-case letters, digits,
        C(.), C(_) and C(-), starting with a letter or digit.
    type: str
    required: true
  description:
    description: The account's description (kept in line when the Administrator's password is given); empty leaves it.
    type: str
    default: ""
  marker:
    description:
      - adminDescription of the account; an account of O(name) without it is never taken over.
      - Must differ from C(managed by provision), the marker of the users the directory module deletes when
        they leave the inventory.
    type: str
    default: provision service account
  server:
    description: FQDN of the DC to talk to, e.g. C(dc1.ad.lab.test); the account is created and tested there.
    type: str
    required: true
  realm:
    description: Kerberos realm, e.g. C(AD.LAB.TEST).
    type: str
    required: true
  netbios:
    description: NetBIOS name of the domain, e.g. C(AD).
    type: str
    required: true
  base_dn:
    description: DN of the domain, e.g. C(DC=ad,DC=lab,DC=test).
    type: str
    required: true
  container:
    description: Container or OU of a new account, relative to O(base_dn).
    type: str
    default: CN=Users
  admin_password:
    description:
      - Password of the domain's Administrator; secret. Needed only when the account must be created, its password
        set or its attributes put right.
    type: str
    default: ""
    no_log: true
  no_secrets:
    description:
      - A dry run without secrets - work that needs O(admin_password) is reported (C(skipped_for_secrets)) instead of
        failing.
    type: bool
    default: false
  secret_file:
    description: Root-only file (0600) that keeps the password, one line; its directory is created 0700 when missing.
    type: path
    required: true
  files:
    description: Configuration files that embed the password.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file; its directory must exist.
        type: path
        required: true
      content:
        description:
          - The whole content; C(@@SERVICE_PASSWORD@@) (at least once, and no other C(@@...@@) placeholder) is
            replaced by the password.
        type: str
        required: true
      owner:
        description: User that owns the file.
        type: str
        default: root
      group:
        description: Group of the file.
        type: str
        default: root
      mode:
        description: Octal permission bits, e.g. C("0640").
        type: str
        default: "0600"
  check_users:
    description: sAMAccountNames the account must find with its own credentials, e.g. a mailbox user.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: The directory account Postfix and Dovecot look users up with
  provision_service_account:
    name: mail-mx1
    description: "mx1: directory lookups for mail (managed by provision)"
    server: dc1.ad.lab.test
    realm: AD.LAB.TEST
    netbios: AD
    base_dn: DC=ad,DC=lab,DC=test
    admin_password: "{{ provision_domain_admin_password }}"
    secret_file: /etc/provision/secrets/mail-ldap.pw
    files:
      - path: /etc/postfix/ldap-users.cf
        content: "{{ lookup('provision_template', 'ldap-users.cf.j2') }}"
        group: postfix
        mode: "0640"
      - path: /etc/dovecot/dovecot-ldap.conf.ext
        content: "{{ lookup('provision_template', 'dovecot-ldap.conf.ext.j2') }}"
        group: dovecot
        mode: "0640"
    check_users: [alice]
  register: mail_account
  no_log: true
"""

RETURN = r"""
created:
  description: Whether the account was (in check mode, would be) created.
  returned: always
  type: bool
password_set:
  description: Whether a new password was (in check mode, would be) set in the directory.
  returned: always
  type: bool
changed_files:
  description: Paths of the files (and O(secret_file)) that were (or in check mode would be) written or changed.
  returned: always
  type: list
  elements: str
found_users:
  description: The O(check_users) the account found with its own credentials.
  returned: always
  type: list
  elements: str
dn:
  description: DN of the account (the one it would get, when it is yet to be created).
  returned: always
  type: str
skipped_for_secrets:
  description: Work was needed but O(admin_password) was not given (with O(no_secrets)); nothing was done.
  returned: when true
  type: bool
msg:
  description: What was done, or why nothing could be.
  returned: always
  type: str
"""

import importlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import stat  # noqa: E402
import string  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Iterable, Mapping, Sequence  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.provision_fileops import Refused  # noqa: E402
from ansible.module_utils.provision_fileops import current as current_file  # noqa: E402
from ansible.module_utils.provision_fileops import ids as file_ids  # noqa: E402
from ansible.module_utils.provision_fileops import octal as octal_mode  # noqa: E402
from ansible.module_utils.provision_secrets import mask  # noqa: E402

PLACEHOLDER = "@@SERVICE_PASSWORD@@"
ANY_PLACEHOLDER = re.compile(r"@@[A-Za-z0-9_]+@@")
MASK = "********"
DIRECTORY_MARKER = "managed by provision"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")

# The generated password: letters, digits and punctuation that no configuration format of the
# services takes specially (no quotes, backslash, #, %, $, =, comma, semicolon, <, braces, whitespace).
PASSWORD_LENGTH = 32
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
PUNCTUATION = "-_.+:@!*^~"
ALPHABET = UPPER + LOWER + DIGITS + PUNCTUATION

# userAccountControl bits (MS-ADTS 2.2.16) and LDAP result codes.
UF_ACCOUNTDISABLE = 0x2
UF_PASSWD_NOTREQD = 0x20
UF_NORMAL_ACCOUNT = 0x200
UF_DONT_EXPIRE_PASSWD = 0x10000
INVALID_CREDENTIALS = 49  # ldb.ERR_INVALID_CREDENTIALS (LDAP invalidCredentials)

# Groups whose members must never have their password in a service's configuration.
PRIVILEGED_DOMAIN_RIDS = {
    512: "Domain Admins",
    516: "Domain Controllers",
    518: "Schema Admins",
    519: "Enterprise Admins",
    520: "Group Policy Creator Owners",
    526: "Key Admins",
    527: "Enterprise Key Admins",
}
PRIVILEGED_BUILTIN = {
    "S-1-5-32-544": "Administrators",
    "S-1-5-32-548": "Account Operators",
    "S-1-5-32-549": "Server Operators",
    "S-1-5-32-550": "Print Operators",
    "S-1-5-32-551": "Backup Operators",
}

FILE_SPEC: dict[str, dict[str, Any]] = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str", "required": True},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "mode": {"type": "str", "default": "0600"},
}
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "description": {"type": "str", "default": ""},
    "marker": {"type": "str", "default": "provision service account"},
    "server": {"type": "str", "required": True},
    "realm": {"type": "str", "required": True},
    "netbios": {"type": "str", "required": True},
    "base_dn": {"type": "str", "required": True},
    "container": {"type": "str", "default": "CN=Users"},
    "admin_password": {"type": "str", "default": "", "no_log": True},
    "no_secrets": {"type": "bool", "default": False},
    "secret_file": {"type": "path", "required": True},
    "files": {"type": "list", "elements": "dict", "default": [], "options": FILE_SPEC},
    "check_users": {"type": "list", "elements": "str", "default": []},
}

# The attributes of the account read to judge it (by itself, or by the Administrator).
ACCOUNT_ATTRS = ["objectClass", "adminDescription", "description", "userAccountControl", "lockoutTime"]

# Samba's Python bindings (python3-samba). load_samba() binds them, so that this file imports
# anywhere (unit tests, ansible-doc, ansible-lint).
ldb: Any = None
Credentials: Any = None
DONT_USE_KERBEROS: Any = None
LoadParm: Any = None
SamDB: Any = None
ndr_unpack: Any = None
dom_sid: Any = None


class MissingSamba(Exception):
    """Samba's Python bindings, or Samba's LDAP client for ldb, are not installed."""


def load_samba() -> None:
    global ldb, Credentials, DONT_USE_KERBEROS, LoadParm, SamDB, ndr_unpack, dom_sid
    try:
        ldb_mod = importlib.import_module("ldb")
        credentials = importlib.import_module("samba.credentials")
        param = importlib.import_module("samba.param")
        samdb = importlib.import_module("samba.samdb")
        ndr = importlib.import_module("samba.ndr")
        security = importlib.import_module("samba.dcerpc.security")
    except ImportError as exc:
        raise MissingSamba(
            f"provision_service_account needs Samba's Python bindings (python3-samba) for {sys.executable}, "
            f"which are not installed: {exc}"
        ) from None
    # ldb loads every backend in Samba's module directory; Samba's own LDAP client (ildap.so,
    # package samba-dsdb-modules) is the one that binds with Samba's credentials. Without it
    # ldap:// goes to OpenLDAP's backend, which connects anonymously whatever the credentials.
    ildap = os.path.join(param.modules_dir(), "ldb", "ildap.so")
    if not os.path.exists(ildap):
        raise MissingSamba(
            f"provision_service_account needs Samba's LDAP client for ldb ({ildap}, package samba-dsdb-modules); "
            "without it ldap:// connections ignore Samba's credentials"
        )
    ldb = ldb_mod
    Credentials, DONT_USE_KERBEROS = credentials.Credentials, credentials.DONT_USE_KERBEROS
    LoadParm = param.LoadParm
    SamDB = samdb.SamDB
    ndr_unpack = ndr.ndr_unpack
    dom_sid = security.dom_sid


# --------------------------------------------------------------------------- the request (no Samba)


def validate(params: Mapping[str, Any]) -> list[str]:
    """Every problem of the options, checked before anything is touched; no message holds a secret."""
    problems: list[str] = []
    name = str(params.get("name") or "")
    if not 1 <= len(name) <= 20:
        problems.append(f"name {name!r} must be 1 to 20 characters long (a sAMAccountName)")
    if name.endswith("$"):
        problems.append(f"name {name!r} must not end in $ (that is a computer account)")
    elif name and not NAME.match(name):
        problems.append(
            f"name {name!r} may hold lower-case letters, digits, '.', '_' and '-' only, starting with a letter or digit"
        )
    marker = str(params.get("marker") or "").strip()
    if not marker:
        problems.append("marker must not be empty: it marks the account as this module's")
    elif marker.casefold() == DIRECTORY_MARKER:
        problems.append(
            f"marker must not be {DIRECTORY_MARKER!r}: the directory module deletes the users carrying it "
            "that are not in the inventory"
        )
    server = str(params.get("server") or "")
    if not HOST.match(server):
        problems.append(f"server {server!r} is not a host name")
    for option in ("realm", "netbios"):
        value = str(params.get(option) or "")
        if not value or any(c.isspace() or c in "\\/@" for c in value):
            problems.append(f"{option} {value!r} is not a {'Kerberos realm' if option == 'realm' else 'NetBIOS name'}")
    base_dn = str(params.get("base_dn") or "")
    if not any(part.strip().upper().startswith("DC=") for part in base_dn.split(",")):
        problems.append(f"base_dn {base_dn!r} is not a domain's DN (DC=...)")
    container = str(params.get("container") or "")
    if not container.strip().upper().startswith(("CN=", "OU=")):
        problems.append(f"container {container!r} is not a container or OU (CN=... or OU=..., relative to base_dn)")
    secret_file = str(params.get("secret_file") or "")
    if not os.path.isabs(secret_file):
        problems.append(f"secret_file {secret_file!r} is not an absolute path")
    seen: set[str] = set()
    for spec in params.get("files") or []:
        path = str(spec.get("path") or "")
        if not os.path.isabs(path):
            problems.append(f"files: {path!r} is not an absolute path")
        if os.path.normpath(path) in seen:
            problems.append(f"files: {path} is listed twice")
        if os.path.normpath(path) in (os.path.normpath(secret_file), os.path.normpath(secret_file) + ".new"):
            problems.append(f"files: {path} is the secret file")
        seen.add(os.path.normpath(path))
        problems.extend(f"files: {path}: {p}" for p in template_problems(str(spec.get("content") or "")))
        try:
            octal_mode(str(spec.get("mode") or "0600"))
            file_ids(str(spec.get("owner") or "root"), str(spec.get("group") or "root"))
        except Refused as exc:
            problems.append(f"files: {path}: {exc}")
    for user in params.get("check_users") or []:
        if not str(user or "").strip():
            problems.append("check_users: an empty name")
    return problems


def template_problems(content: str) -> list[str]:
    """Why a file's content cannot take the password: no placeholder, or one this module does not fill."""
    problems = []
    if PLACEHOLDER not in content:
        problems.append(f"the content has no {PLACEHOLDER}")
    others = sorted({m for m in ANY_PLACEHOLDER.findall(content) if m != PLACEHOLDER})
    if others:
        problems.append(f"the content has placeholders this module does not fill: {', '.join(others)}")
    return problems


def render(content: str, password: str) -> str:
    """The content with every placeholder replaced by the password."""
    return content.replace(PLACEHOLDER, password)


# --------------------------------------------------------------------------- the password (no Samba)


def password_problems(password: str, name: str = "", min_length: int = PASSWORD_LENGTH) -> list[str]:
    """Why a generated password will not do (AD's complexity, the services' configuration formats).

    The messages never quote the password or a character of it.
    """
    problems = []
    if len(password) < min_length:
        problems.append(f"shorter than {min_length} characters")
    for label, chars in (("upper-case letter", UPPER), ("lower-case letter", LOWER), ("digit", DIGITS)):
        if not any(c in chars for c in password):
            problems.append(f"no {label}")
    if not any(c in PUNCTUATION for c in password):
        problems.append("no punctuation")
    if any(c not in ALPHABET for c in password):
        problems.append("a character outside the allowed set (quotes, backslash, #, %, $, =, comma, whitespace...)")
    if len(name) >= 3 and name.casefold() in password.casefold():
        problems.append("it contains the account name (AD's complexity check refuses that)")
    return problems


def generate_password(name: str = "", length: int = PASSWORD_LENGTH) -> str:
    """A random password from ``secrets``: one of each character class at least, nothing a config file chokes on."""
    if length < 4:
        raise ValueError("a password needs at least 4 characters (one of each class)")
    rng = secrets.SystemRandom()
    while True:
        chars = [secrets.choice(cls) for cls in (UPPER, LOWER, DIGITS, PUNCTUATION)]
        chars += [secrets.choice(ALPHABET) for _ in range(length - 4)]
        rng.shuffle(chars)
        password = "".join(chars)
        if not password_problems(password, name, min_length=length):
            return password


def choose_password(
    pending: str | None, kept: str | None, works: Callable[[str], bool]
) -> tuple[str | None, str | None]:
    """Which password the account has: (``"pending"`` or ``"kept"``, the password), or (None, None).

    ``pending`` (SECRET_FILE.new, an interrupted run's) is tested first: once the directory has it, the
    old one still passes an NTLM bind for an hour (Samba's "old password allowed period"), so testing the
    kept one first would keep a password about to stop working. Empty ones are not tried, nor one twice
    (each refused bind counts towards the account's lockout).
    """
    tried: set[str] = set()
    for label, password in (("pending", pending), ("kept", kept)):
        if not password or password in tried:
            continue
        tried.add(password)
        if works(password):
            return label, password
    return None, None


# --------------------------------------------------------------------------- the account (no Samba)


def first(entry: Mapping[str, Sequence[str]], attr: str) -> str:
    values = entry.get(attr) or []
    return str(values[0]) if values else ""


def account_action(entry: Mapping[str, Sequence[str]] | None, name: str, marker: str) -> str:
    """What the Administrator does about the account as the directory has it: ``create`` or ``reset``.

    Raises Refused for an account this module must not touch.
    """
    if entry is None:
        return "create"
    dn = first(entry, "dn")
    classes = {c.lower() for c in entry.get("objectClass") or []}
    if classes and ("user" not in classes or "computer" in classes):
        raise Refused(f"{name} exists in the directory ({dn}) and is no user account: refusing to touch it")
    have = first(entry, "adminDescription")
    if have.casefold() != marker.casefold():
        shown = f"adminDescription {have!r}" if have else "no adminDescription"
        raise Refused(
            f"an account {name} exists in the directory ({dn}) with {shown}, not the marker {marker!r}: it was not "
            "created by this module, which never takes an account over. Rename or remove it, or choose another name"
        )
    uac = first(entry, "userAccountControl")
    if uac.lstrip("-").isdigit() and int(uac) & UF_ACCOUNTDISABLE:
        raise Refused(
            f"the account {name} ({dn}) is disabled in the directory: enable it (samba-tool user enable {name}) or "
            "remove it so that this module creates it anew"
        )
    return "reset"


def wanted_uac(current: int) -> int:
    """userAccountControl of the account: a normal account whose password does not expire (and is required)."""
    return (current | UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD) & ~UF_PASSWD_NOTREQD


def attribute_repairs(entry: Mapping[str, Sequence[str]], marker: str, description: str) -> dict[str, str]:
    """The attributes to set on the account so that it is what this module keeps: adminDescription the
    marker, userAccountControl a normal account whose password does not expire, and the description
    (when one is given). An absent attribute reads as unset."""
    repairs: dict[str, str] = {}
    if first(entry, "adminDescription") != marker:
        repairs["adminDescription"] = marker
    uac = first(entry, "userAccountControl")
    if uac.lstrip("-").isdigit() and wanted_uac(int(uac)) != int(uac):
        repairs["userAccountControl"] = str(wanted_uac(int(uac)))
    if description and first(entry, "description") != description:
        repairs["description"] = description
    return repairs


def privileged_groups(sids: Iterable[str]) -> list[str]:
    """The privileged groups among the SIDs of an account's groups (its tokenGroups)."""
    found = []
    for sid in sids:
        if sid in PRIVILEGED_BUILTIN:
            found.append(PRIVILEGED_BUILTIN[sid])
            continue
        parts = sid.split("-")
        if sid.startswith("S-1-5-21-") and parts[-1].isdigit() and int(parts[-1]) in PRIVILEGED_DOMAIN_RIDS:
            found.append(PRIVILEGED_DOMAIN_RIDS[int(parts[-1])])
    return sorted(set(found))


def ldb_code(exc: BaseException) -> int | None:
    """The result code of an ldb.LdbError (its first argument), None for anything else."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None


def credentials_refused(exc: BaseException) -> bool:
    """Whether a failed connection means the password (or the account) was refused, not the DC unreachable.

    Samba's LDAP client (ldb_ildap.c, ildb_connect) reports a refused bind as LDB_ERR_INVALID_CREDENTIALS -
    the server's invalidCredentials, or NT_STATUS_WRONG_PASSWORD, NO_SUCH_USER, LOGON_FAILURE or
    ACCOUNT_LOCKED_OUT of its own; anything else (refused connection, no such host) as another code.
    """
    return ldb_code(exc) == INVALID_CREDENTIALS


def error_message(exc: BaseException, secret_values: Iterable[str]) -> str:
    """What a failure says: the exception's type and text, every secret masked."""
    text: str = mask(f"{type(exc).__name__}: {exc}", list(secret_values))
    return text


# --------------------------------------------------------------------------- files (no Samba)


def same_meta(st: os.stat_result | None, uid: int, gid: int, mode: int) -> bool:
    return st is not None and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode)


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    """Write ``path`` through a temporary file in its directory (0600 until owner and mode are set), then rename."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise Refused(f"the directory of {path} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".provision-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchown(fh.fileno(), uid, gid)
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
        fsync_directory(directory)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sync_file(path: str, data: bytes, uid: int, gid: int, mode: int, check: bool) -> tuple[bool, bytes | None]:
    """Bring one file in line: (whether it differed, its old content). Only owner and mode differing: set in place."""
    old, st = current_file(path)
    if old == data and same_meta(st, uid, gid, mode):
        return False, old
    if not check:
        if old == data and st is not None:
            os.chown(path, uid, gid, follow_symlinks=False)
            os.chmod(path, mode)
        else:
            write_atomic(path, data, uid, gid, mode)
    return True, old


def mask_before(text: str, template: str, known: Sequence[str]) -> str:
    """A file's current text fit for a diff: the known passwords masked, and whatever stands where the
    template has the placeholder (line by line), so that a password this run does not know is masked too."""
    text = mask(text, known)
    patterns = []
    for line in template.splitlines():
        if PLACEHOLDER in line:
            parts = [re.escape(p) for p in line.split(PLACEHOLDER)]
            patterns.append(re.compile("(.+?)".join(parts)))
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        for pattern in patterns:
            m = pattern.fullmatch(body)
            if m:
                pieces, last = [], 0
                for i in range(1, (m.lastindex or 0) + 1):
                    pieces += [body[last : m.start(i)], MASK]
                    last = m.end(i)
                line = "".join(pieces) + body[last:] + line[len(body) :]
                break
        out.append(line)
    return "".join(out)


def masked_after(template: str) -> str:
    return template.replace(PLACEHOLDER, MASK)


# --------------------------------------------------------------------------- the secret file (no Samba)


def read_secret(path: str) -> str | None:
    """The password kept in ``path`` (its first line), None when the file is missing or empty."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"{path} is not a regular file (a symbolic link?): refusing to use it as the secret file")
    with open(path, encoding="utf-8", errors="replace") as fh:  # a damaged one just does not bind
        line = fh.readline().strip()
    return line or None


def secret_meta_ok(path: str) -> bool:
    return same_meta(os.lstat(path), 0, 0, 0o600)


def make_private_directory(path: str) -> None:
    """``path`` and its missing parents, each created 0700 (root's); existing ones are left alone."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)


def write_secret(path: str, password: str) -> None:
    """Keep ``password`` in ``path``: one line, 0600 root:root, written atomically."""
    make_private_directory(os.path.dirname(path))
    write_atomic(path, (password + "\n").encode("utf-8"), 0, 0, 0o600)


# --------------------------------------------------------------------------- the directory (Samba)


class Directory:
    """The account in the directory, through Samba's LDAP client (SASL, signed and sealed) to one DC."""

    def __init__(self, p: Mapping[str, Any]) -> None:
        self.p = p
        self.name: str = p["name"]
        self.base_dn: str = p["base_dn"]
        self.url = f"ldap://{p['server']}"
        self.lp = LoadParm()
        self.lp.load_default()

    def credentials(self, user: str, password: str, kerberos: bool) -> Any:
        creds = Credentials()
        creds.guess(self.lp)
        creds.set_username(user)
        creds.set_password(password)
        creds.set_domain(self.p["netbios"])
        creds.set_realm(self.p["realm"])
        if not kerberos:
            creds.set_kerberos_state(DONT_USE_KERBEROS)
        return creds

    def as_account(self, password: str) -> tuple[Any, dict[str, list[str]]] | None:
        """A connection as the account itself and the account as it reads itself; None when the password
        is refused or the account cannot see itself. Other failures (the DC unreachable) raise.

        NTLM, no Kerberos: checked by the DC we talk to, so a password just set there is good at once
        (a KDC elsewhere might not have it yet).
        """
        try:
            samdb = SamDB(url=self.url, credentials=self.credentials(self.name, password, kerberos=False), lp=self.lp)
        except ldb.LdbError as exc:
            if credentials_refused(exc):
                return None
            raise
        entry = self.find(samdb, self.name, ACCOUNT_ATTRS)
        return None if entry is None else (samdb, entry)

    def as_admin(self, password: str) -> Any:
        """A connection as the domain's Administrator (Kerberos allowed)."""
        try:
            samdb = SamDB(
                url=self.url, credentials=self.credentials("Administrator", password, kerberos=True), lp=self.lp
            )
        except ldb.LdbError as exc:
            if credentials_refused(exc):
                raise Refused(
                    f"{self.url} refused the password of {self.p['netbios']}\\Administrator (admin_password)"
                ) from None
            raise
        domain = str(samdb.domain_dn())
        if normal_dn(domain) != normal_dn(self.base_dn):
            raise Refused(f"base_dn {self.base_dn!r} is not the domain of {self.url} ({domain})")
        return samdb

    def find(self, samdb: Any, name: str, attrs: list[str]) -> dict[str, list[str]] | None:
        res = samdb.search(
            base=self.base_dn,
            scope=ldb.SCOPE_SUBTREE,
            expression=f"(sAMAccountName={ldb.binary_encode(name)})",
            attrs=attrs,
        )
        if not len(res):
            return None
        msg = res[0]
        entry = {str(k): [str(v) for v in msg[k]] for k in msg if str(k).lower() != "dn"}
        entry["dn"] = [str(msg.dn)]
        return entry

    def groups(self, samdb: Any, dn: str) -> list[str]:
        """The SIDs of the account's groups, nested ones included (tokenGroups); [] when unreadable."""
        res = samdb.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["tokenGroups"])
        if not len(res) or "tokenGroups" not in res[0]:
            return []
        return [str(ndr_unpack(dom_sid, bytes(v))) for v in res[0]["tokenGroups"]]

    def create(self, samdb: Any, password: str) -> None:
        """A new account in the container, a member of Domain Users only (newuser's default), with the marker."""
        samdb.newuser(
            self.name,
            password,
            force_password_change_at_next_login_req=False,
            userou=self.p["container"],
            description=self.p["description"] or None,
        )
        entry = self.find(samdb, self.name, ACCOUNT_ATTRS)
        if entry is None:
            raise Refused(f"the account {self.name} was created but cannot be found in {self.base_dn}")
        self.repair(samdb, entry, attribute_repairs(entry, self.p["marker"], self.p["description"]))

    def reset(self, samdb: Any, password: str, entry: Mapping[str, Sequence[str]]) -> None:
        samdb.setpassword(
            f"(sAMAccountName={ldb.binary_encode(self.name)})",
            password,
            force_change_at_next_login=False,
            username=self.name,
        )
        lockout = first(entry, "lockoutTime")
        if lockout not in ("", "0"):
            samdb.unlock_account(f"(sAMAccountName={ldb.binary_encode(self.name)})")

    def repair(self, samdb: Any, entry: Mapping[str, Sequence[str]], repairs: Mapping[str, str]) -> None:
        if not repairs:
            return
        msg = ldb.Message()
        msg.dn = ldb.Dn(samdb, first(entry, "dn"))
        for attr, value in repairs.items():
            msg[attr] = ldb.MessageElement(value, ldb.FLAG_MOD_REPLACE, attr)
        samdb.modify(msg)

    def lookup(self, samdb: Any, users: Iterable[str]) -> tuple[list[str], list[str]]:
        """Of ``users``, those found (as the connection's account sees the directory) and those not."""
        found: list[str] = []
        missing: list[str] = []
        for user in users:
            (found if self.find(samdb, user, ["sAMAccountName"]) is not None else missing).append(user)
        return found, missing


def normal_dn(dn: str) -> str:
    return ",".join(part.strip().lower() for part in dn.split(","))


# --------------------------------------------------------------------------- the run


class Run:
    """One run of the module: the flow, with every secret it meets masked in what it reports."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.p = module.params
        self.check: bool = module.check_mode
        self.secrets: list[str] = []
        self.keep_secret(self.p["admin_password"])
        self.result: dict[str, Any] = {
            "changed": False,
            "created": False,
            "password_set": False,
            "changed_files": [],
            "found_users": [],
            "dn": f"CN={self.p['name']},{self.p['container']},{self.p['base_dn']}",
        }
        self.notes: list[str] = []
        self.diffs: list[dict[str, str]] = []
        self.new_path = f"{self.p['secret_file']}.new"

    def keep_secret(self, value: str | None) -> None:
        """A value no message, result or log may show (Ansible masks it too, as a no_log value)."""
        if value and value not in self.secrets:
            self.secrets.append(value)
            self.module.no_log_values.add(value)

    def fail(self, msg: str) -> NoReturn:
        self.module.fail_json(msg=mask(msg, self.secrets), **self.result)
        raise SystemExit(1)  # not reached: fail_json exits

    def finish(self) -> NoReturn:
        self.result["msg"] = mask("; ".join(self.notes), self.secrets)
        if self.module._diff and self.diffs:
            self.result["diff"] = self.diffs
        self.module.exit_json(**self.result)
        raise SystemExit(0)  # not reached: exit_json exits

    def changed(self, note: str) -> None:
        self.result["changed"] = True
        self.notes.append(("would " if self.check else "") + note)

    def refuse_privileged(self, directory: Directory, samdb: Any, dn: str) -> None:
        privileged = privileged_groups(directory.groups(samdb, dn))
        if privileged:
            self.fail(
                f"the account {self.p['name']} ({dn}) is a member of {', '.join(privileged)}: its password would sit "
                "in service configuration files. Take it out of those groups"
            )

    # ------------------------------------------------------------------ the flow

    def run(self) -> NoReturn:
        p = self.p
        directory = Directory(p)
        pending = read_secret(self.new_path)
        kept = read_secret(p["secret_file"])
        self.keep_secret(pending)
        self.keep_secret(kept)
        sessions: dict[str, tuple[Any, dict[str, list[str]]]] = {}

        def works(password: str) -> bool:
            session = directory.as_account(password)
            if session is not None:
                sessions[password] = session
            return session is not None

        # 1. The password kept on this host (an interrupted run's new one first).
        label, password = choose_password(pending, kept, works)
        if password is not None:
            samdb, entry = sessions[password]
            self.result["dn"] = first(entry, "dn")
            self.notes.append(f"account {p['name']} works with the password kept on this host")
            self.judge(directory, samdb, entry)
            self.keep_file(label)
        else:
            # 2. The Administrator creates the account or gives it a new password.
            samdb, password = self.set_password(directory)
        # 3. The files, then the preflight with the account's own credentials.
        self.write_files(password)
        self.check_users(directory, samdb)
        self.finish()

    def judge(self, directory: Directory, samdb: Any, entry: dict[str, list[str]]) -> None:
        """The working account as it reads itself: a privileged one fails; attributes not in line are put
        right with the Administrator's password (read again by the Administrator first), else warned about."""
        self.refuse_privileged(directory, samdb, first(entry, "dn"))
        repairs = attribute_repairs(entry, self.p["marker"], self.p["description"])
        if not repairs:
            return
        if not self.p["admin_password"]:
            self.module.warn(
                f"the account {self.p['name']} works, but its {', '.join(sorted(repairs))} should be set; "
                "that needs admin_password"
            )
            return
        admin = directory.as_admin(self.p["admin_password"])
        entry = directory.find(admin, self.p["name"], ACCOUNT_ATTRS) or entry
        repairs = attribute_repairs(entry, self.p["marker"], self.p["description"])
        if repairs:
            # The account binds with the password this module made: it is this module's, the marker included.
            self.changed(f"set {', '.join(sorted(repairs))} of account {self.p['name']}")
            if not self.check:
                directory.repair(admin, entry, repairs)

    def keep_file(self, label: str | None) -> None:
        """The working password in the secret file, 0600 root: a pending one adopted, a stale one removed."""
        path = self.p["secret_file"]
        if label == "pending":
            self.changed(f"keep the new password of an interrupted run ({self.new_path}) in {path}")
            if not self.check:
                os.chown(self.new_path, 0, 0, follow_symlinks=False)
                os.chmod(self.new_path, 0o600)
                os.replace(self.new_path, path)
                fsync_directory(os.path.dirname(path))
            return
        if os.path.lexists(self.new_path) and not self.check:
            os.unlink(self.new_path)  # an interrupted run's, which the directory never took
        if not secret_meta_ok(path):
            self.changed(f"make {path} root's only (0600)")
            if not self.check:
                os.chown(path, 0, 0, follow_symlinks=False)
                os.chmod(path, 0o600)

    def set_password(self, directory: Directory) -> tuple[Any, str | None]:
        """Create the account or give it a new password; a connection as the account and its password,
        (None, None) in check mode."""
        p = self.p
        if not p["admin_password"]:
            why = (
                f"the account {p['name']} has to be created or get a new password (no password kept in "
                f"{p['secret_file']} works), which needs admin_password"
            )
            if not p["no_secrets"]:
                self.fail(why + ", not given")
            self.module.warn(why)
            self.result.update(skipped_for_secrets=True, msg=why + ": skipped (no secrets)")
            self.module.exit_json(**self.result)
            raise SystemExit(0)  # not reached: exit_json exits
        admin = directory.as_admin(p["admin_password"])
        entry = directory.find(admin, p["name"], ACCOUNT_ATTRS)
        action = account_action(entry, p["name"], p["marker"])
        if entry is not None:
            self.result["dn"] = first(entry, "dn")
            self.refuse_privileged(directory, admin, first(entry, "dn"))
        self.result.update(created=action == "create", password_set=True)
        if action == "create":
            self.changed(f"create account {p['name']} in {p['container']},{p['base_dn']} with a new password")
        else:
            self.changed(f"set a new password for account {p['name']}")
        self.diffs.append(
            {
                "before": f"account {p['name']}: {'missing' if entry is None else 'its password not kept here'}\n",
                "after": f"account {p['name']}: password {MASK} (kept in {p['secret_file']})\n",
                "before_header": f"account {p['name']}",
                "after_header": f"account {p['name']}",
            }
        )
        if self.check:
            return None, None
        password = generate_password(p["name"])
        self.keep_secret(password)
        problems = password_problems(password, p["name"])
        if problems:  # generate_password sees to it; a password that breaks a configuration is never set
            self.fail(f"the generated password will not do: {', '.join(problems)}")
        # Crash safety: the password is on disk before the directory has it, and replaces the kept one
        # only once the account binds with it. An interrupted run's is tested (and adopted) next time.
        write_secret(self.new_path, password)
        if action == "create":
            directory.create(admin, password)
        else:
            assert entry is not None
            directory.reset(admin, password, entry)
            directory.repair(admin, entry, attribute_repairs(entry, p["marker"], p["description"]))
        session = directory.as_account(password)
        if session is None:
            self.fail(
                f"the account {p['name']} got a new password at {p['server']} but does not bind with it; the "
                f"password stays in {self.new_path} and is tested again next run"
            )
        samdb, entry = session
        self.result["dn"] = first(entry, "dn")
        os.replace(self.new_path, p["secret_file"])
        fsync_directory(os.path.dirname(p["secret_file"]))
        return samdb, password

    def write_files(self, password: str | None) -> None:
        """The files with the password in place; in check mode before a new password, every one would change."""
        for spec in self.p["files"]:
            path = spec["path"]
            uid, gid = file_ids(spec["owner"], spec["group"])
            mode = octal_mode(spec["mode"])
            if password is None:
                old, _ = current_file(path)
                differs = True
            else:
                data = render(spec["content"], password).encode("utf-8")
                differs, old = sync_file(path, data, uid, gid, mode, self.check)
            if not differs:
                continue
            self.result["changed_files"].append(path)
            self.changed(f"write {path}")
            before = "" if old is None else mask_before(old.decode("utf-8", "replace"), spec["content"], self.secrets)
            after = masked_after(spec["content"])
            if before != after or old is None:
                self.diffs.append({"before": before, "after": after, "before_header": path, "after_header": path})

    def check_users(self, directory: Directory, samdb: Any) -> None:
        users = list(self.p["check_users"])
        if not users:
            return
        if samdb is None:
            self.notes.append(f"check_users not looked up: the account has no password yet ({', '.join(users)})")
            return
        found, missing = directory.lookup(samdb, users)
        self.result["found_users"] = found
        if missing:
            self.fail(
                f"the account {self.p['name']} cannot find {', '.join(missing)} under {self.p['base_dn']} with its own "
                "credentials: they do not exist, or the account may not read them"
            )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run = Run(module)
    problems = validate(module.params)
    if problems:
        run.fail("the request is not valid: " + "; ".join(problems))
    try:
        load_samba()
    except MissingSamba as exc:
        run.fail(str(exc))
    try:
        run.run()
    except Refused as exc:
        run.fail(str(exc))
    except Exception as exc:  # ldb.LdbError, OSError, samba's own Exception(...): reported masked
        code = ldb_code(exc) if ldb is not None and isinstance(exc, ldb.LdbError) else None
        where = f" (at ldap://{module.params['server']}, LDAP result {code})" if code is not None else ""
        run.fail(error_message(exc, run.secrets) + where)


if __name__ == "__main__":
    main()
