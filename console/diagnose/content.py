"""Tell whether the bytes of a collected file are text that diagnose can read.

A compressed file, an executable, a core dump or an empty file has no lines
to match. Read as text, it would give no findings although nothing in it was
looked at. `text_of` returns the text of a file or raises `NotText`
with the reason and what to do instead. Gzip is decompressed here, since
journal exports and logs are often sent gzipped.
"""

from __future__ import annotations

import gzip
import io
import zlib

# Most bytes a gzip file may decompress to; a larger one is not read.
MAX_GUNZIPPED = 256 * 1024 * 1024
# Bytes looked at to tell text from binary.
SAMPLE_BYTES = 64 * 1024
# Share of control bytes (other than tab, newlines, form feed, backspace,
# escape and NUL) above which a file is binary. Logs have none; executables
# and random data have about one byte in ten.
MAX_CONTROL_SHARE = 0.01

_GZIP = b"\x1f\x8b"
# Magic numbers of formats that need a command of their own before diagnose.
_COMPRESSED = (
    (b"\xfd7zXZ\x00", "xz", "xzcat"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
    (b"BZh", "bzip2", "bzcat"),
    (b"\x04\x22\x4d\x18", "lz4", "lz4cat"),
    (b"PK\x03\x04", "zip", "unzip -p"),
)
_CONTROLS = bytes(b for b in [*range(32), 127] if b not in b"\0\b\t\n\v\f\r\x1b")


class NotText(ValueError):
    """A file that diagnose cannot read as text, with the reason."""


def text_of(name: str, data: bytes) -> str:
    """Return the text of a file's bytes; raise NotText when it has none.

    Gzip is decompressed. Bytes that are not UTF-8 are replaced and NUL
    bytes become spaces, so a log with a corrupt line or a NUL-filled tail
    is still read.
    """
    if data.startswith(_GZIP):
        data = _gunzip(name, data)
    for magic, form, command in _COMPRESSED:
        if data.startswith(magic):
            raise NotText(
                f"{form}-compressed: decompress it first "
                f"(`{command} {name} > FILE`) and give diagnose the result"
            )
    if not data:
        raise NotText("empty file")
    if data[257:262] == b"ustar":
        raise NotText(
            f"a tar archive: extract it (`tar -xf {name}`) or name it .tar or .tar.gz"
        )
    if data.startswith(b"\x7fELF"):
        raise NotText("binary (an executable or core dump), not a log or text")
    if _control_share(data[:SAMPLE_BYTES]) > MAX_CONTROL_SHARE:
        raise NotText("binary, not a log or text")
    text = data.decode("utf-8", "replace").replace("\0", " ")
    if not text.strip():
        raise NotText("no text (only blanks or NUL bytes)")
    return text


def _gunzip(name: str, data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            result = stream.read(MAX_GUNZIPPED + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise NotText(
            f"not a readable gzip file ({exc}): check it with `gzip -t {name}`"
        ) from None
    if len(result) > MAX_GUNZIPPED:
        limit = MAX_GUNZIPPED // (1024 * 1024)
        raise NotText(
            f"decompresses to more than {limit} MiB: split it "
            f"(`zcat {name} | split -l 1000000`) and give diagnose the parts"
        )
    return result


def _control_share(sample: bytes) -> float:
    if not sample:
        return 0.0
    controls = len(sample) - len(sample.translate(None, _CONTROLS))
    return controls / len(sample)
