"""Keystore: file modes, safe names, rotation, and no key material anywhere but the file."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from carbon_protocol.suites import PrivateKey
from node_gateway.errors import (
    KeyExistsError,
    KeyNotFoundError,
    KeyPermissionError,
    KeystoreError,
)
from node_gateway.keystore import Keystore, key_file_name

DEV = "86.1000.1/dev.meter-0001"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pem_body_lines(key: PrivateKey) -> list[str]:
    """The base64 lines of a PEM: any one of them appearing in text is a leak."""
    return [ln for ln in key.to_pem().decode().splitlines() if ln and not ln.startswith("-----")]


@pytest.mark.parametrize("suite", ["sm", "intl"])
def test_create_writes_owner_only_files(tmp_path: Path, suite: str) -> None:
    ks = Keystore(tmp_path / "keys")
    pub = ks.create(DEV, suite)  # type: ignore[arg-type]
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / "archive") == 0o700
    assert mode(ks.path(DEV)) == 0o600
    assert ks.load(DEV).public_key() == pub
    assert ks.public(DEV).key_id == pub.key_id
    assert pub.suite == suite


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ks = Keystore(tmp_path / "keys")
        ks.create(DEV, "intl")
    finally:
        os.umask(old)
    assert mode(tmp_path / "keys") == 0o700
    assert mode(ks.path(DEV)) == 0o600


def test_create_never_overwrites(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keys")
    pub = ks.create(DEV, "sm")
    with pytest.raises(KeyExistsError, match="already has a key"):
        ks.create(DEV, "sm")
    assert ks.public(DEV) == pub
    assert not list((tmp_path / "keys").glob(".tmp-*"))


def test_missing_key(tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError, match="no key for device"):
        Keystore(tmp_path / "keys").load(DEV)


@pytest.mark.parametrize("bad", [
    "../etc/passwd", "86.1000.1/../../x", "86.1000.1/.hidden", "86.1000.1/a/b", "dev",
    "86.1000.1/", "/abs", "86.1000.1/a b", "86.1000.1/ü",
])
def test_file_names_refuse_non_identifiers(tmp_path: Path, bad: str) -> None:
    ks = Keystore(tmp_path / "keys")
    with pytest.raises(KeystoreError, match="cannot name a key file"):
        ks.create(bad, "intl")
    assert os.listdir(tmp_path / "keys") == ["archive"]


def test_file_names_are_distinct_and_reversible(tmp_path: Path) -> None:
    ids = ["86.1000.1/dev.a", "86.1000/1.dev.a", "86.1000.1/dev:a", "86.1000.1/dev_a",
           "86.1000.1/dev.a.b"]
    names = {key_file_name(i) for i in ids}
    assert len(names) == len(ids)
    assert all("/" not in n and not n.startswith(".") for n in names)
    ks = Keystore(tmp_path / "keys")
    for i in ids:
        ks.create(i, "intl")
    assert ks.devices() == sorted(ids)


def test_rotate_archives_the_old_key(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keys")
    old = ks.create(DEV, "sm")
    new = ks.rotate(DEV)
    assert new != old and new.suite == "sm"
    assert ks.public(DEV) == new
    assert ks.archived(DEV) == [old.key_id]
    assert ks.load_archived(DEV, old.key_id).public_key() == old
    archived = tmp_path / "keys" / "archive" / f"{key_file_name(DEV)}.{old.key_id}.pem"
    assert mode(archived) == 0o600
    newer = ks.rotate(DEV)
    assert sorted(ks.archived(DEV)) == sorted([old.key_id, new.key_id])
    assert ks.public(DEV) == newer


def test_rotation_of_one_device_does_not_touch_a_similar_name(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keys")
    ks.create("86.1000.1/dev.a", "intl")
    ks.create("86.1000.1/dev.a.b", "intl")
    ks.rotate("86.1000.1/dev.a.b")
    assert ks.archived("86.1000.1/dev.a") == []
    assert len(ks.archived("86.1000.1/dev.a.b")) == 1


def test_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keys")
    ks.create(DEV, "sm")
    os.chmod(ks.path(DEV), 0o644)
    with pytest.raises(KeyPermissionError, match="expected 0600"):
        ks.load(DEV)


def test_refuses_an_open_directory(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    os.chmod(tmp_path / "keys", 0o755)
    with pytest.raises(KeyPermissionError, match="expected 0700"):
        Keystore(tmp_path / "keys")


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    """A crash between writing a key and linking it leaves a temp file; it is never used."""
    ks = Keystore(tmp_path / "keys")
    (tmp_path / "keys" / ".tmp-deadbeef").write_bytes(b"half a key")
    Keystore(tmp_path / "keys")
    assert not (tmp_path / "keys" / ".tmp-deadbeef").exists()
    assert ks.devices() == []


def test_no_key_material_in_reprs_logs_or_errors(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ks = Keystore(tmp_path / "keys")
    ks.create(DEV, "sm")
    key = ks.load(DEV)
    ks.rotate(DEV)
    new = ks.load(DEV)
    texts = [repr(ks), repr(key), str(key), repr(new), caplog.text]
    secrets_ = pem_body_lines(key) + pem_body_lines(new)
    for text in texts:
        assert "PRIVATE KEY" not in text
        for line in secrets_:
            assert line not in text
    assert key.public_key().key_id in caplog.text  # logs name keys by id


def test_a_corrupt_key_file_is_not_quoted_in_the_error(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keys")
    key = PrivateKey.generate("sm")
    pem = key.to_pem().decode()
    lines = pem.splitlines()
    marker = lines[1]
    broken = "\n".join(lines[:2] + ["!!corrupt!!"] + lines[2:]) + "\n"
    fd = os.open(ks.path(DEV), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(broken)
    with pytest.raises(KeystoreError) as info:
        ks.load(DEV)
    exc = info.value
    assert "does not hold a valid private key" in str(exc)
    for text in (str(exc), repr(exc), str(exc.diagnostics())):
        assert marker not in text and "PRIVATE KEY" not in text
    assert exc.__cause__ is None and exc.__suppress_context__


def test_pickling_a_loaded_key_is_refused(tmp_path: Path) -> None:
    """Keys handed out by the keystore cannot be copied into caches or queues by accident."""
    import pickle

    ks = Keystore(tmp_path / "keys")
    ks.create(DEV, "intl")
    with pytest.raises(TypeError):
        pickle.dumps(ks.load(DEV))
