"""A real SMB2/3 client for the lab tests, on smbprotocol, opening files the way Windows
applications do: full access, byte-range locks, leases (and their breaks), durable
handles, alternate data streams.

smbprotocol has no handler for the server's unsolicited lease break notifications
(message id 0xFFFFFFFFFFFFFFFF): ``Client.watch_breaks`` registers one, and
``Client.ack_lease_break`` sends the acknowledgement (MS-SMB2 2.2.23.2, 2.2.24.2).
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from smbprotocol.connection import Connection, Request
from smbprotocol.create_contexts import (
    CreateContextName,
    SMB2CreateContextRequest,
    SMB2CreateDurableHandleReconnectV2,
    SMB2CreateDurableHandleRequestV2,
    SMB2CreateRequestLeaseV2,
)
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.header import Commands, SMB2HeaderRequest
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FileAttributes,
    ImpersonationLevel,
    LockFlags,
    Open,
    RequestedOplockLevel,
    ShareAccess,
    SMB2LockElement,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

# Access masks as Windows applications send them.
GENERIC_ALL = 0x10000000
FILE_ALL_ACCESS = 0x001F01FF  # what GENERIC_ALL maps to; smbtorture's SEC_RIGHTS_FILE_ALL
MAXIMUM_ALLOWED = 0x02000000
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
SHARE_ALL = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE

LEASE_R, LEASE_H, LEASE_W = 0x01, 0x02, 0x04
UNSOLICITED = 0xFFFFFFFFFFFFFFFF
STATUS_ACCESS_DENIED = 0xC0000022


class _Ack:
    """SMB2 LEASE_BREAK Acknowledgment (MS-SMB2 2.2.24.2), packed by hand."""

    COMMAND = Commands.SMB2_OPLOCK_BREAK

    def __init__(self, lease_key: bytes, state: int) -> None:
        self.data = struct.pack("<HHI16sIQ", 36, 0, 0, lease_key, state, 0)

    def pack(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class LeaseBreak:
    lease_key: bytes
    current: int
    new: int
    ack_required: bool


class _BreakWatch(Request):
    """Stands in as the 'request' of unsolicited messages so smbprotocol's worker keeps them."""

    def __init__(self, connection: Connection) -> None:
        header = SMB2HeaderRequest()
        super().__init__(header, None, connection)
        self.breaks: list[LeaseBreak] = []
        self.arrived = threading.Condition()
        self.response_event = _Notify(self)


class _Notify(threading.Event):
    def __init__(self, watch: _BreakWatch) -> None:
        super().__init__()
        self.watch = watch

    def set(self) -> None:
        response = self.watch.response
        if response is None:
            return
        data = response["data"].get_value()
        if len(data) >= 44 and struct.unpack_from("<H", data)[0] == 44:
            _size, _epoch, flags, key, current, new = struct.unpack_from("<HHI16sII", data)
            with self.watch.arrived:
                self.watch.breaks.append(LeaseBreak(key, current, new, bool(flags & 1)))
                self.watch.arrived.notify_all()
        self.watch.response = None


class Client:
    """One SMB connection, session and tree connect as one user."""

    def __init__(
        self, server: str, share: str, user: str, password: str, client_guid: uuid.UUID | None = None
    ) -> None:
        self.server, self.share = server, share
        # A reconnecting client presents the same client GUID: leases are keyed by it.
        self.client_guid = client_guid or uuid.uuid4()
        self.connection = Connection(self.client_guid, server, 445)
        self.connection.connect(timeout=15)
        self.session = Session(self.connection, user, password, auth_protocol="ntlm")
        self.session.connect()
        self.tree = TreeConnect(self.session, rf"\\{server}\{share}")
        self.tree.connect()
        self._watch: _BreakWatch | None = None

    def close(self, logoff: bool = True) -> None:
        self.connection.disconnect(close=logoff)

    def drop(self) -> None:
        """Cut the TCP connection as a network failure would: no close, no logoff."""
        self.connection.disconnect(close=False)

    # ------------------------------------------------------------------ opens

    def open(
        self,
        name: str,
        access: int = FILE_ALL_ACCESS,
        disposition: int = CreateDisposition.FILE_OPEN_IF,
        share: int = SHARE_ALL,
        contexts: list[Any] | None = None,
        oplock: int = RequestedOplockLevel.SMB2_OPLOCK_LEVEL_NONE,
        directory: bool = False,
    ) -> tuple[Open, list[Any]]:
        handle = Open(self.tree, name)
        options = CreateOptions.FILE_DIRECTORY_FILE if directory else CreateOptions.FILE_NON_DIRECTORY_FILE
        attrs = FileAttributes.FILE_ATTRIBUTE_DIRECTORY if directory else FileAttributes.FILE_ATTRIBUTE_NORMAL
        replies = handle.create(
            ImpersonationLevel.Impersonation, access, attrs, share, disposition, options,
            create_contexts=contexts, oplock_level=oplock,
        )
        return handle, list(replies or [])

    def status(self, name: str, access: int, disposition: int = CreateDisposition.FILE_OPEN) -> int:
        """0 when ``name`` opens with ``access``, else the NTSTATUS the server answered."""
        try:
            handle, _ = self.open(name, access, disposition)
        except SMBResponseException as exc:
            return int(exc.status)
        handle.close()
        return 0

    def write_file(self, name: str, data: bytes, access: int = FILE_ALL_ACCESS) -> None:
        handle, _ = self.open(name, access, CreateDisposition.FILE_OVERWRITE_IF)
        try:
            handle.write(data, 0)
        finally:
            handle.close()

    def read_file(self, name: str) -> bytes:
        handle, _ = self.open(name, GENERIC_READ, CreateDisposition.FILE_OPEN)
        try:
            return bytes(handle.read(0, max(handle.end_of_file, 1))) if handle.end_of_file else b""
        finally:
            handle.close()

    # ------------------------------------------------------------------ leases

    @staticmethod
    def lease(key: bytes, state: int = LEASE_R | LEASE_H | LEASE_W) -> SMB2CreateRequestLeaseV2:
        req = SMB2CreateRequestLeaseV2()
        req["lease_key"] = key
        req["lease_state"] = state
        req["parent_lease_key"] = b"\x00" * 16
        req["epoch"] = b"\x00\x00"
        return req

    @staticmethod
    def granted_lease(replies: list[Any]) -> int:
        for r in replies:
            if hasattr(r, "fields") and "lease_state" in r.fields:
                return int(r["lease_state"].get_value())
        return 0

    def watch_breaks(self) -> _BreakWatch:
        if self._watch is None:
            self._watch = _BreakWatch(self.connection)
            self.connection.outstanding_requests[UNSOLICITED] = self._watch
        return self._watch

    def wait_break(self, timeout: float = 10.0) -> LeaseBreak | None:
        watch = self.watch_breaks()
        with watch.arrived:
            watch.arrived.wait_for(lambda: bool(watch.breaks), timeout=timeout)
            return watch.breaks.pop(0) if watch.breaks else None

    def ack_lease_break(self, brk: LeaseBreak) -> int:
        request = self.connection.send(_Ack(brk.lease_key, brk.new), self.session.session_id, self.tree.tree_connect_id)
        response = self.connection.receive(request)
        data = response["data"].get_value()
        return int(struct.unpack_from("<I", data, 24)[0])  # the lease state the server now holds

    # ------------------------------------------------------------------ durable handles

    @staticmethod
    def durable(create_guid: uuid.UUID, timeout_ms: int = 60000) -> SMB2CreateDurableHandleRequestV2:
        req = SMB2CreateDurableHandleRequestV2()
        req["timeout"] = timeout_ms
        req["flags"] = 0
        req["create_guid"] = create_guid
        return req

    @staticmethod
    def reconnect(file_id: bytes, create_guid: uuid.UUID) -> SMB2CreateContextRequest:
        req = SMB2CreateDurableHandleReconnectV2()
        req["file_id"] = file_id
        req["create_guid"] = create_guid
        req["flags"] = 0
        ctx = SMB2CreateContextRequest()
        ctx["buffer_name"] = CreateContextName.SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2
        ctx["buffer_data"] = req
        return ctx

    @staticmethod
    def durable_granted(replies: list[Any]) -> bool:
        return any(hasattr(r, "fields") and "timeout" in r.fields and "flags" in r.fields for r in replies)


def lock(handle: Open, offset: int, length: int, exclusive: bool = True) -> None:
    element = SMB2LockElement()
    element["offset"] = offset
    element["length"] = length
    element["flags"] = (
        (LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK if exclusive else LockFlags.SMB2_LOCKFLAG_SHARED_LOCK)
        | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    )
    handle.lock([element])


def unlock(handle: Open, offset: int, length: int) -> None:
    element = SMB2LockElement()
    element["offset"] = offset
    element["length"] = length
    element["flags"] = LockFlags.SMB2_LOCKFLAG_UNLOCK
    handle.lock([element])


@contextmanager
def client(server: str, share: str, user: str, password: str) -> Iterator[Client]:
    c = Client(server, share, user, password)
    try:
        yield c
    finally:
        with suppress(Exception):  # the test may have cut the connection itself
            c.close()


# --------------------------------------------------------------------------- what Windows and macOS clients do
#
# Each takes (server, share, user, password), asserts one behaviour as an allowed user
# would meet it and leaves nothing behind. The lab tests run every one on a workgroup
# peer's share and on a domain file server's share.

ZONE_IDENTIFIER = b"[ZoneTransfer]\r\nZoneId=3\r\nHostUrl=https://example.invalid/setup.exe\r\n"
# An AfpInfo blob (Netatalk/Samba layout, big-endian): signature 'AFP\0', version 1.0,
# then FinderInfo with type TEXT and creator ttxt; an all-zero FinderInfo means "no
# metadata" and vfs_fruit drops the stream.
AFP_INFO = b"AFP\x00" + b"\x00\x00\x01\x00" + b"\x00" * 8 + b"TEXTttxt" + b"\x00" * 24 + b"\x00" * 12
STATUS_LOCK_NOT_GRANTED = 0xC0000055


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}.txt"


def _delete(c: Client, name: str) -> None:
    d = Open(c.tree, name)
    d.create(
        ImpersonationLevel.Impersonation, 0x00010000, FileAttributes.FILE_ATTRIBUTE_NORMAL, SHARE_ALL,  # DELETE
        CreateDisposition.FILE_OPEN, CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_DELETE_ON_CLOSE,
    )
    d.close()


def full_access(server: str, share: str, user: str, password: str) -> None:
    """Create and re-open with every right (as Office and Explorer ask), and with MAXIMUM_ALLOWED."""
    name = _name("full")
    with client(server, share, user, password) as c:
        handle, _ = c.open(name, GENERIC_ALL, CreateDisposition.FILE_CREATE)
        handle.write(b"full access", 0)
        handle.close()
        for access in (FILE_ALL_ACCESS, GENERIC_ALL, MAXIMUM_ALLOWED):
            status = c.status(name, access)
            assert status == 0, f"re-opening {name} with access {access:#x} failed with {status:#x}"
        _delete(c, name)


def byte_range_locks(server: str, share: str, user: str, password: str) -> None:
    """A lock holds against a second client until it is released."""
    name = _name("lock")
    with client(server, share, user, password) as a, client(server, share, user, password) as b:
        ha, _ = a.open(name, FILE_ALL_ACCESS, CreateDisposition.FILE_CREATE)
        ha.write(b"0123456789" * 10, 0)
        hb, _ = b.open(name, GENERIC_READ | GENERIC_WRITE, CreateDisposition.FILE_OPEN)
        lock(ha, 0, 10)
        try:
            lock(hb, 5, 10)
        except SMBResponseException as exc:
            assert exc.status == STATUS_LOCK_NOT_GRANTED, f"conflicting lock: {exc.status:#x}"
        else:
            raise AssertionError("a conflicting byte-range lock was granted")
        lock(hb, 20, 10)  # a range nobody holds
        unlock(ha, 0, 10)
        lock(hb, 5, 10)  # free now
        unlock(hb, 5, 10)
        unlock(hb, 20, 10)
        hb.close()
        ha.close()
        _delete(a, name)


def lease_break(server: str, share: str, user: str, password: str) -> None:
    """A read/write/handle lease is granted, then broken when a second client opens to write."""
    name = _name("lease")
    with client(server, share, user, password) as a, client(server, share, user, password) as b:
        a.write_file(name, b"leased")
        key = uuid.uuid4().bytes
        ha, replies = a.open(
            name, FILE_ALL_ACCESS, CreateDisposition.FILE_OPEN, contexts=[Client.lease(key)],
            oplock=RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE,
        )
        granted = Client.granted_lease(replies)
        assert granted == LEASE_R | LEASE_H | LEASE_W, f"lease granted: {granted:#x}, asked for RWH"
        a.watch_breaks()
        done: dict[str, Any] = {}

        def second() -> None:
            try:
                hb, _ = b.open(name, GENERIC_READ | GENERIC_WRITE, CreateDisposition.FILE_OPEN)
                hb.write(b"L", 0)
                hb.close()
                done["ok"] = True
            except Exception as exc:  # reported below
                done["error"] = repr(exc)

        worker = threading.Thread(target=second)
        worker.start()
        brk = a.wait_break(timeout=15)
        assert brk is not None, "no lease break reached the first client"
        assert brk.lease_key == key and brk.current == granted and not brk.new & LEASE_W, brk
        if brk.ack_required:
            assert a.ack_lease_break(brk) == brk.new
        worker.join(40)
        assert done.get("ok"), f"the second client's open did not complete: {done}"
        ha.close()
        assert a.read_file(name) == b"Leased"
        _delete(a, name)


def durable_handle(server: str, share: str, user: str, password: str) -> None:
    """A durable handle survives a dropped connection: the client reconnects to the same open."""
    name = _name("durable")
    guid = uuid.uuid4()
    key = uuid.uuid4().bytes
    first = Client(server, share, user, password)
    handle, replies = first.open(
        name, FILE_ALL_ACCESS, CreateDisposition.FILE_CREATE,
        contexts=[Client.lease(key), Client.durable(guid)], oplock=RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE,
    )
    assert Client.durable_granted(replies), "the server did not grant a durable handle"
    handle.write(b"survives", 0)
    file_id = handle.file_id
    first.drop()
    # The server notices the cut connection; the handle waits (disconnected) for the client.
    deadline = time.monotonic() + 20
    while True:
        second = Client(server, share, user, password, client_guid=first.client_guid)
        try:
            again, _ = second.open(
                name, FILE_ALL_ACCESS, CreateDisposition.FILE_OPEN,
                contexts=[Client.lease(key), Client.reconnect(file_id, guid)],
                oplock=RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE,
            )
            break
        except SMBResponseException:
            second.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        assert bytes(again.read(0, 8)) == b"survives"
        again.close()
        _delete(second, name)
    finally:
        second.close()


def data_streams(server: str, share: str, user: str, password: str) -> None:
    """Windows' Zone.Identifier ("mark of the web") and macOS' AFP_AfpInfo stay with the file."""
    name = _name("streams")
    with client(server, share, user, password) as c:
        c.write_file(name, b"downloaded")
        c.write_file(f"{name}:Zone.Identifier", ZONE_IDENTIFIER)
        c.write_file(f"{name}:AFP_AfpInfo", AFP_INFO)
        assert c.read_file(f"{name}:Zone.Identifier") == ZONE_IDENTIFIER
        assert c.read_file(f"{name}:AFP_AfpInfo")[:24] == AFP_INFO[:24]
        assert c.read_file(name) == b"downloaded"  # the data stream is untouched
        _delete(c, name)


BEHAVIOURS = {
    "full-access": full_access,
    "byte-range-locks": byte_range_locks,
    "lease-break": lease_break,
    "durable-handle": durable_handle,
    "data-streams": data_streams,
}


def connect_status(server: str, share: str, user: str, password: str) -> int:
    """0 when ``user`` may connect to ``share``, else the NTSTATUS of the refusal."""
    try:
        c = Client(server, share, user, password)
    except SMBResponseException as exc:
        return int(exc.status)
    c.close()
    return 0


def create_status(server: str, share: str, user: str, password: str) -> int:
    """0 when ``user`` may create a file on ``share`` (removed again), else the NTSTATUS."""
    name = _name("ro")
    with client(server, share, user, password) as c:
        try:
            handle, _ = c.open(name, GENERIC_READ | GENERIC_WRITE, CreateDisposition.FILE_CREATE)
        except SMBResponseException as exc:
            return int(exc.status)
        handle.close()
        _delete(c, name)
        return 0
