"""Device keys at the edge: one PEM private key file per device, readable by its owner only.

Layout of a keystore directory (mode ``0700``)::

    <root>/<file-name>.pem                        the device's current key (0600)
    <root>/archive/<file-name>.<key_id>.pem       keys replaced by a rotation (0600)

The file name is derived from the device identifier, which is validated first: the
identifier grammar (:mod:`carbon_protocol.identifiers`) allows only ``0-9 .`` in the
prefix and ``A-Z a-z 0-9 . _ : -`` in the suffix, starting with a letter or digit, so
``<prefix>_<suffix>`` (``:`` spelt ``+``) can never climb out of the directory, hide
itself, or collide with another device's name.

Writes are crash-safe: a key is written to a fresh temporary file (``O_CREAT|O_EXCL``,
mode ``0600``, fsync) and then hard-linked into place, which fails rather than
overwrite, so a crash never leaves half a key under a device's name. A rotation
archives the old key (link) before the new one replaces it (rename).

Key material never leaves this module in text: reprs show the directory, logs and
errors name the device, the key id and the file, and errors raised while parsing a key
file are re-raised without their cause (which could quote the file).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from carbon_protocol.errors import ProtocolError
from carbon_protocol.identifiers import parse_identifier
from carbon_protocol.models import SuiteField
from carbon_protocol.suites import PrivateKey, PublicKey

from .errors import KeyExistsError, KeyNotFoundError, KeyPermissionError, KeystoreError

__all__ = ["Keystore", "key_file_name"]

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"


def key_file_name(device_id: str) -> str:
    """The file name (without ``.pem``) of a device's key; refuses non-identifiers."""
    try:
        ident = parse_identifier(device_id)
    except ProtocolError as exc:
        raise KeystoreError(f"cannot name a key file after {device_id!r}: {exc}") from None
    return f"{ident.prefix}_{ident.suffix.replace(':', '+')}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_private_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        return
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise KeystoreError(f"keystore path {path} exists and is not a directory")
    if st.st_mode & 0o077:
        raise KeyPermissionError(
            f"keystore directory {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}, expected 0700)"
        )


class Keystore:
    """Per-device private keys in a directory, each file ``0600``, the directory ``0700``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        _ensure_private_dir(self.root)
        self._archive = self.root / "archive"
        _ensure_private_dir(self._archive)
        for stale in self.root.glob(_TMP_PREFIX + "*"):
            # Left by a crash between writing a key and linking it into place: never in use.
            stale.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"Keystore({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------
    def path(self, device_id: str) -> Path:
        """The current key file of ``device_id`` (it may not exist)."""
        return self.root / f"{key_file_name(device_id)}.pem"

    def _write_new(self, key: PrivateKey) -> Path:
        """Write ``key`` to a fresh private temporary file, synced; return its path."""
        tmp = self.root / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            data = key.to_pem()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    # -- public API --------------------------------------------------------------------
    def exists(self, device_id: str) -> bool:
        """True when a current key is stored for ``device_id``."""
        return self.path(device_id).exists()

    def create(self, device_id: str, suite: SuiteField) -> PublicKey:
        """Generate and store a key for a device that has none; return its public key.

        Raises :class:`KeyExistsError` when the device already has a key: a key is
        never overwritten (use :meth:`rotate`).
        """
        target = self.path(device_id)
        key = PrivateKey.generate(suite)
        tmp = self._write_new(key)
        try:
            os.link(tmp, target)  # atomic, and refuses to replace an existing key
        except FileExistsError:
            raise KeyExistsError(f"device {device_id} already has a key in {self.root}",
                                 device=device_id) from None
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.root)
        pub = key.public_key()
        log.info("created %s key %s for device %s", pub.suite, pub.key_id, device_id)
        return pub

    def load(self, device_id: str) -> PrivateKey:
        """The current private key of ``device_id``.

        Raises :class:`KeyNotFoundError` if there is none, :class:`KeyPermissionError`
        if the file is readable by group or others (the key must then be considered
        exposed), :class:`KeystoreError` if it does not parse.
        """
        return self._read(self.path(device_id), device_id)

    def _read(self, path: Path, device_id: str) -> PrivateKey:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise KeyNotFoundError(f"no key for device {device_id} in {self.root}",
                                   device=device_id) from None
        except OSError as exc:
            raise KeystoreError(f"cannot open key file {path}: {exc.strerror}",
                                device=device_id) from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_mode & 0o077:
                raise KeyPermissionError(
                    f"key file {path} of device {device_id} is accessible to group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}, expected 0600); treat it as exposed",
                    device=device_id,
                )
            data = fh.read()
        try:
            return PrivateKey.from_pem(data)
        except Exception:  # noqa: BLE001 - the cause may quote the file; never chain it
            raise KeystoreError(f"key file {path} of device {device_id} does not hold a "
                                "valid private key", device=device_id) from None

    def public(self, device_id: str) -> PublicKey:
        """The public half of the device's current key."""
        return self.load(device_id).public_key()

    def rotate(self, device_id: str) -> PublicKey:
        """Replace the device's key with a new one of the same suite; return the new public key.

        The old key file is kept as ``archive/<name>.<key_id>.pem``: readings signed
        with it may still be waiting in the outbox, and the ledger keeps verifying them.
        """
        current = self.path(device_id)
        old = self.load(device_id)
        old_pub = old.public_key()
        new = PrivateKey.generate(old_pub.suite)
        tmp = self._write_new(new)
        archived = self._archive / f"{key_file_name(device_id)}.{old_pub.key_id}.pem"
        try:
            try:
                os.link(current, archived)
            except FileExistsError:
                pass  # a rotation that crashed after archiving; the archive is this key
            _fsync_dir(self._archive)
            os.replace(tmp, current)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.root)
        pub = new.public_key()
        log.info("rotated key of device %s: %s archived, %s current", device_id,
                 old_pub.key_id, pub.key_id)
        return pub

    def archived(self, device_id: str) -> list[str]:
        """Key ids of the device's archived (rotated-out) keys."""
        stem = key_file_name(device_id) + "."
        return sorted(p.name[len(stem):-4] for p in self._archive.glob(f"{stem}*.pem")
                      if p.name[len(stem):-4].isalnum())

    def load_archived(self, device_id: str, key_id: str) -> PrivateKey:
        """A rotated-out key of the device, by key id."""
        if not key_id.isalnum():
            raise KeystoreError(f"invalid key id {key_id!r}")
        return self._read(self._archive / f"{key_file_name(device_id)}.{key_id}.pem", device_id)

    def devices(self) -> list[str]:
        """The devices that have a current key, sorted."""
        out = []
        for p in self.root.glob("*.pem"):
            prefix, sep, suffix = p.name[:-4].partition("_")
            if sep:
                out.append(f"{prefix}/{suffix.replace('+', ':')}")
        return sorted(out)
