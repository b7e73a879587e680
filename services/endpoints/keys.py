"""Checks of SSH key material given to the API (parsing only: nothing here connects anywhere).

Messages never echo the key material, passphrase or password they check.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from cryptography.hazmat.primitives import serialization

from ferry.errors import Invalid

__all__ = [
    "HOST_KEY_TYPES",
    "KeyProblem",
    "check_private_key",
    "normalise_host_key",
]

HOST_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-ed448",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
_FINGERPRINT = re.compile(r"^SHA256:([A-Za-z0-9+/]{43})$")


class KeyProblem(Invalid, ValueError):
    """A key that does not parse (422). ``field`` is the request field to blame."""

    code = "validation_error"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field=field)


def normalise_host_key(value: str) -> str:
    """An OpenSSH public key line (``type base64 [comment]`` → ``type base64``) or a
    ``SHA256:<43 base64 chars>`` fingerprint (returned as is). Raises ValueError otherwise."""
    text = value.strip()
    if text.upper().startswith("SHA256:"):
        text = "SHA256:" + text[7:]
        match = _FINGERPRINT.match(text)
        if not match:
            raise ValueError("a SHA256: fingerprint is 43 unpadded base64 characters")
        if len(base64.b64decode(match.group(1) + "=")) != 32:  # pragma: no cover - 43 chars → 32
            raise ValueError("a SHA256: fingerprint is a 32-byte digest")
        return text
    parts = text.split()
    if len(parts) < 2:
        raise ValueError(
            "expected an OpenSSH public host key line ('ssh-ed25519 AAAA...') "
            "or a SHA256: fingerprint"
        )
    key_type, blob_text = parts[0], parts[1]
    if key_type not in HOST_KEY_TYPES:
        raise ValueError(f"unsupported host key type {key_type[:40]!r}")
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the host key is not valid base64") from None
    if len(blob) < 4:
        raise ValueError("the host key is truncated")
    (length,) = struct.unpack(">I", blob[:4])
    embedded = blob[4 : 4 + length]
    if len(embedded) != length or embedded != key_type.encode():
        raise ValueError(f"the host key's embedded type does not match {key_type!r}")
    if not key_type.startswith("sk-") and key_type != "ssh-ed448":
        try:
            serialization.load_ssh_public_key(f"{key_type} {blob_text}".encode())
        except Exception:
            raise ValueError("the host key does not parse") from None
    return f"{key_type} {blob_text}"


def check_private_key(private_key: str, passphrase: str | None) -> None:
    """Parse an OpenSSH or PEM private key, decrypting it with ``passphrase`` if encrypted.

    Raises :class:`KeyProblem` naming ``private_key`` (unreadable key) or ``passphrase``
    (missing, wrong, or given for a key that is not encrypted)."""
    data = private_key.strip().encode()
    if b"OPENSSH PRIVATE KEY" in data:
        load = serialization.load_ssh_private_key
    elif b"PRIVATE KEY-----" in data:
        load = serialization.load_pem_private_key  # type: ignore[assignment]
    else:
        raise KeyProblem("private_key must be an OpenSSH or PEM private key", field="private_key")
    encrypted = False
    try:
        load(data, None)
    except TypeError:
        encrypted = True  # "password was not given but private key is encrypted"
    except Exception:
        raise KeyProblem("private_key could not be parsed", field="private_key") from None
    if not encrypted:
        if passphrase:
            raise KeyProblem(
                "a passphrase was given but the private key is not encrypted", field="passphrase"
            )
        return
    if not passphrase:
        raise KeyProblem("the private key is encrypted: a passphrase is required", "passphrase")
    try:
        load(data, passphrase.encode())
    except Exception:
        raise KeyProblem("the passphrase does not decrypt the private key", "passphrase") from None
