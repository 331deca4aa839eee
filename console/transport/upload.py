"""Copy a file from this machine to a node: SFTP over SSH, or a plain copy.

The copy is written to a temporary name beside the target and renamed, so
the target is either absent or complete. Installing it where it belongs is
an action of its own (with sudo where the node needs it).
"""

from __future__ import annotations

import asyncio
import posixpath
import shutil
from pathlib import Path

from nydus_console.transport.base import ErrorKind, Transport, TransportError
from nydus_console.transport.local import LocalTransport


async def upload_file(transport: Transport, source: Path, target: str) -> None:
    """Copy `source` to `target` on the node; raise TransportError on failure."""
    if isinstance(transport, LocalTransport):
        await asyncio.to_thread(_local_copy, source, target)
        return
    from nydus_console.transport.ssh import SSHTransport

    if not isinstance(transport, SSHTransport):
        raise TransportError(
            ErrorKind.FAILED,
            f"files cannot be uploaded to {transport.name} over this connection",
            "reach the node over SSH or run the console on it",
        )
    await _sftp_put(transport, source, target)


def _local_copy(source: Path, target: str) -> None:
    temporary = f"{target}.part"
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, temporary)
        Path(temporary).replace(target)
    except OSError as exc:
        raise TransportError(
            ErrorKind.FAILED,
            f"copying {source} to {target} failed: {exc.strerror or exc}",
            "check the free space and permissions of the target directory",
        ) from None


async def _sftp_put(transport: object, source: Path, target: str) -> None:
    import asyncssh

    from nydus_console.transport.ssh import SSHTransport

    assert isinstance(transport, SSHTransport)
    conn = await transport.connection()
    temporary = f"{target}.part"
    try:
        async with conn.start_sftp_client() as sftp:
            await sftp.makedirs(posixpath.dirname(target), exist_ok=True)
            await sftp.put(str(source), temporary)
            await sftp.posix_rename(temporary, target)
    except asyncssh.SFTPError as exc:
        raise TransportError(
            ErrorKind.FAILED,
            f"SFTP upload of {source} to {target} on {transport.name} failed: "
            f"{exc.reason}",
            "check that sshd offers the sftp subsystem and that the login user "
            "may write the directory",
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise TransportError(
            ErrorKind.DISCONNECTED,
            f"the connection to {transport.description} dropped during the upload "
            f"of {source}: {exc}",
            "run setup again; it continues with this step",
        ) from None
