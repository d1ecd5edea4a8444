"""The package sets of the lab images, each kept in one constant.

``BASE_PACKAGES`` is what a bare lab host needs to boot and be managed over
SSH; ``LAB_PACKAGES`` is everything the playbooks may install.  The local apt
repository holds the dependency closure of both, and the golden image has all
of them preinstalled so a rollout against the lab does not wait on dpkg.
Every name was checked with ``apt-cache policy`` against bookworm.
"""

from __future__ import annotations

SUITE = "bookworm"

BASE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "python3",
    "python3-apt",
    "systemd",
    "systemd-sysv",
    "libpam-systemd",  # logind sessions for SSH logins, as on a real host
    "dbus",
    "iproute2",
    "iputils-ping",
    "procps",
    "netbase",
    "sudo",
    "ca-certificates",
)

LAB_PACKAGES: tuple[str, ...] = (
    "samba",
    "samba-ad-dc",
    "samba-ad-provision",  # the provisioning templates samba-tool domain provision needs
    "samba-dsdb-modules",
    "samba-vfs-modules",
    "winbind",
    "libnss-winbind",
    "libpam-winbind",
    "smbclient",
    "krb5-user",
    "sssd",
    "sssd-tools",
    "libnss-sss",
    "libpam-sss",
    "libsss-sudo",  # sssd members read sudo rules from the directory
    "realmd",
    "adcli",
    # realmd only Recommends polkitd, but its D-Bus methods answer "Not
    # authorized" without a running polkit, so ``realm join`` needs it.
    "policykit-1",
    "chrony",
    "nftables",
    "cups",
    "cups-bsd",
    "printer-driver-cups-pdf",
    "avahi-daemon",
    "wsdd",
    "acl",
    "attr",
    "rsync",
    "ldb-tools",
    # The mail server role (mail_server).
    "postfix",
    "postfix-ldap",
    "dovecot-imapd",
    "dovecot-lmtpd",
    "dovecot-ldap",
    # The database server role (database_server) and its clients on workstations.
    "postgresql",
    "postgresql-client",
    "bind9-host",
    "bind9-dnsutils",
    "unattended-upgrades",
    "python3-apt",
    "ca-certificates",
)
