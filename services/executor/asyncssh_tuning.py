"""Two per-packet costs removed from asyncssh, contained and version-guarded.

asyncssh (2.24) does two things per SSH packet that an AEAD cipher does not need:

1. **An empty SSH_MSG_IGNORE before every packet.** ``SSHConnection.send_packet`` inserts one
   whenever encryption is on (``if self._send_encryption and pkttype > MSG_KEX_LAST:
   self.send_packet(MSG_IGNORE, String(b''))``). That is RFC 4251 §9.3.1's countermeasure for
   CBC mode, whose next IV is the previous packet's last ciphertext block (known to an attacker,
   who can then choose plaintext against it). With AES-GCM and chacha20-poly1305 every packet
   has its own nonce/key stream and is authenticated: the IGNORE packet buys nothing and costs a
   second padding + encryption + MAC + ``transport.write`` per data packet (OpenSSH itself sends
   none). :func:`install` drops the empty IGNORE only when the connection's *current* send
   encryption is AEAD (``GCMEncryption`` / ``ChachaEncryption``); CBC and CTR keep it.
   asyncssh sends MSG_IGNORE nowhere else (2.24 has no ``send_ignore`` API), so nothing else is
   dropped; a peer never depends on receiving IGNOREs (RFC 4253 §11.2: they MUST be ignored).

2. **A new ``AESGCM`` object per packet.** ``crypto.cipher.GCMCipher.encrypt_and_sign`` and
   ``verify_and_decrypt`` call ``AESGCM(self._key)`` every time (key validation + object
   construction per 32 KiB packet, both directions). ``AESGCM`` holds only the key and is safe
   to reuse with a fresh nonce per call (the nonce is still ``self._iv``, advanced by asyncssh's
   own ``_update_iv`` exactly as before), so :func:`install` builds it once per cipher object
   (per key: a rekey makes new cipher objects, hence a new AESGCM).

Guard: :func:`install` patches only asyncssh versions in :data:`TESTED_VERSIONS` whose code
still has the exact shape patched here (the IGNORE insertion in ``send_packet``'s source; the
``GCMCipher`` attributes used); otherwise it changes nothing and reports why
(:class:`TuningStatus`). Either way the wire protocol is unchanged — only fewer redundant packets
and objects. It is idempotent and :func:`uninstall` restores the originals (tests prove both the
difference and the round trip through a real sshd: ``tests/unit/test_asyncssh_tuning.py``,
``tests/integration/test_asyncssh_tuning.py``). The upstream proposal is
``docs/upstream-asyncssh.md``; measured effect in ``bench/README.md``.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh import connection as _connection
from asyncssh import encryption as _encryption
from asyncssh.crypto import cipher as _cipher
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["TESTED_VERSIONS", "TuningStatus", "install", "status", "uninstall"]

#: asyncssh versions whose send_packet / GCMCipher were read and tested against this module.
TESTED_VERSIONS = ("2.24.",)

_MSG_IGNORE = 2
_EMPTY_STRING = b"\0\0\0\0"  # asyncssh.packet.String(b"")
_IGNORE_INSERTION = "self.send_packet(MSG_IGNORE, String(b''))"
_GCM_TAG = 16


@dataclass(frozen=True)
class TuningStatus:
    installed: bool
    reason: str  # "installed", or why nothing was patched


_lock = threading.Lock()
_originals: dict[str, Any] = {}
_status = TuningStatus(False, "not installed")


# --- 1. no empty MSG_IGNORE in front of AEAD packets -------------------------------------------
_AEAD = (_encryption.GCMEncryption, _encryption.ChachaEncryption)


def _send_packet(self: Any, pkttype: int, *args: bytes, handler: Any = None) -> None:
    if (
        pkttype == _MSG_IGNORE
        and args == (_EMPTY_STRING,)
        and isinstance(self._send_encryption, _AEAD)
    ):
        return  # the CBC countermeasure: pointless with a per-packet nonce and an AEAD tag
    _originals["send_packet"](self, pkttype, *args, handler=handler)


# --- 2. one AESGCM per key ---------------------------------------------------------------------
def _aead(self: Any) -> AESGCM:
    aead: AESGCM | None = self.__dict__.get("_ferry_aesgcm")
    if aead is None or self.__dict__.get("_ferry_aesgcm_key") is not self._key:
        aead = AESGCM(self._key)
        self.__dict__["_ferry_aesgcm"] = aead
        self.__dict__["_ferry_aesgcm_key"] = self._key
    return aead


def _encrypt_and_sign(self: Any, header: bytes, data: bytes) -> tuple[bytes, bytes]:
    data = _aead(self).encrypt(self._iv, data, header)
    self._update_iv()
    return header + data[:-_GCM_TAG], data[-_GCM_TAG:]


def _verify_and_decrypt(self: Any, header: bytes, data: bytes, mac: bytes) -> bytes | None:
    try:
        decrypted: bytes | None = _aead(self).decrypt(self._iv, data + mac, header)
    except InvalidTag:
        decrypted = None
    self._update_iv()
    return decrypted


# --- install / uninstall -----------------------------------------------------------------------
def _unsupported_reason() -> str | None:
    version = str(getattr(asyncssh, "__version__", ""))
    if not version.startswith(TESTED_VERSIONS):
        return f"asyncssh {version} not in tested versions {TESTED_VERSIONS}"
    try:
        source = inspect.getsource(_connection.SSHConnection.send_packet)
    except (OSError, TypeError):
        return "asyncssh send_packet source not readable"
    if _IGNORE_INSERTION not in source:
        return "asyncssh send_packet no longer inserts MSG_IGNORE as patched here"
    gcm = _cipher.GCMCipher
    for name in ("encrypt_and_sign", "verify_and_decrypt", "_update_iv"):
        if not callable(getattr(gcm, name, None)):
            return f"asyncssh GCMCipher has no {name}"
    try:
        probe = gcm("aes128-gcm", bytes(16), bytes(12))
    except Exception:  # any change of shape means: do not patch
        return "asyncssh GCMCipher constructor changed"
    if not (hasattr(probe, "_key") and hasattr(probe, "_iv")):
        return "asyncssh GCMCipher no longer keeps _key/_iv"
    return None


def install() -> TuningStatus:
    """Patch asyncssh (idempotent). Returns whether it did, and if not, why not."""
    global _status
    with _lock:
        if _originals:
            return _status
        reason = _unsupported_reason()
        if reason is not None:
            _status = TuningStatus(False, reason)
            return _status
        _originals["send_packet"] = _connection.SSHConnection.send_packet
        _originals["encrypt_and_sign"] = _cipher.GCMCipher.encrypt_and_sign
        _originals["verify_and_decrypt"] = _cipher.GCMCipher.verify_and_decrypt
        _connection.SSHConnection.send_packet = _send_packet  # type: ignore[method-assign]
        _cipher.GCMCipher.encrypt_and_sign = _encrypt_and_sign  # type: ignore[method-assign]
        _cipher.GCMCipher.verify_and_decrypt = _verify_and_decrypt  # type: ignore[method-assign]
        _status = TuningStatus(True, "installed")
        return _status


def uninstall() -> None:
    """Restore asyncssh's own methods (tests compare both)."""
    global _status
    with _lock:
        if not _originals:
            return
        _connection.SSHConnection.send_packet = _originals.pop("send_packet")  # type: ignore[method-assign]
        _cipher.GCMCipher.encrypt_and_sign = _originals.pop("encrypt_and_sign")  # type: ignore[method-assign]
        _cipher.GCMCipher.verify_and_decrypt = _originals.pop("verify_and_decrypt")  # type: ignore[method-assign]
        _status = TuningStatus(False, "uninstalled")


def status() -> TuningStatus:
    return _status
