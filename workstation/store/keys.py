"""The store's key and the central server's sync token live in the OS keyring (via `keyring`), never in a
file we write.

Fail closed: when no OS keyring is usable we refuse, with a message for IT,
rather than fall back to a plaintext key. A file backend (keyrings.alt) is used
only when chosen explicitly: passed in, PYTHON_KEYRING_BACKEND or keyringrc.cfg.
"""

from __future__ import annotations

import secrets

import keyring
import keyring.backend
import keyring.core
import keyring.errors

SERVICE = "radiology-workstation"
STORE_KEY = "store-key"
KEY_BYTES = 32

INSTALL_HINT = (
    "no usable OS keyring: on Linux install and unlock a Secret Service "
    "(gnome-keyring or KWallet with libsecret) in the user's session; Windows Credential Manager and the "
    "macOS Keychain work as they are. The store stays closed until then (no plaintext key is ever used)."
)


class KeyringUnavailable(RuntimeError):
    """No OS keyring can hold the key; the message tells IT what to install."""


class KeyMissing(RuntimeError):
    """The store exists but the keyring has no key for it."""


def usable_backend(backend: keyring.backend.KeyringBackend | None = None) -> keyring.backend.KeyringBackend:
    """The backend to use, or KeyringUnavailable. An explicitly chosen backend is trusted as chosen."""
    if backend is not None:
        return backend
    explicit = keyring.core.load_env() or keyring.core.load_config()
    chosen = explicit or keyring.get_keyring()
    inner = _chained(chosen)
    if inner is not None:
        # keyring's chainer reads from every backend of priority > 0 (the plaintext file included) and
        # ranks itself 10 whenever it holds two: judge and use only the backend it would write to.
        if not inner:
            raise KeyringUnavailable(INSTALL_HINT)
        chosen, explicit = inner[0], None
    if _is_fail(chosen):
        raise KeyringUnavailable(INSTALL_HINT)
    if explicit is None and _priority(chosen) < 1:
        name = f"{type(chosen).__module__}.{type(chosen).__name__}"
        raise KeyringUnavailable(f"{INSTALL_HINT} (only the insecure fallback {name} was found)")
    return chosen


def _chained(backend: keyring.backend.KeyringBackend) -> list[keyring.backend.KeyringBackend] | None:
    """The chainer's backends, best first (the one it writes to first); None for any other backend."""
    if type(backend).__module__ != "keyring.backends.chainer":
        return None
    return list(getattr(backend, "backends", ()))


def _is_fail(backend: keyring.backend.KeyringBackend) -> bool:
    return type(backend).__module__ in ("keyring.backends.fail", "keyring.backends.null")


def _priority(backend: keyring.backend.KeyringBackend) -> float:
    try:
        return float(backend.priority)
    except Exception:
        return 0.0


def read_key(backend: keyring.backend.KeyringBackend, name: str = STORE_KEY) -> bytes | None:
    try:
        value = backend.get_password(SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the OS keyring refused to read the store key: {exc}. {INSTALL_HINT}") from exc
    if value is None:
        return None
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise KeyMissing(f"the keyring entry {SERVICE}/{name} is not a store key (not hex)") from None
    if len(key) != KEY_BYTES:
        raise KeyMissing(f"the keyring entry {SERVICE}/{name} is not a {KEY_BYTES}-byte key")
    return key


def create_key(backend: keyring.backend.KeyringBackend, name: str = STORE_KEY) -> bytes:
    """A new random key, written to the keyring and read back before anything is encrypted with it."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        backend.set_password(SERVICE, name, key.hex())
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the OS keyring refused to keep the store key: {exc}. {INSTALL_HINT}") from exc
    if read_key(backend, name) != key:
        raise KeyringUnavailable(f"the OS keyring did not keep the store key. {INSTALL_HINT}")
    return key


# ----- the central server's bearer token (sync): same keyring, same fail-closed policy
SERVER_TOKEN = "server-token"


def read_token(backend: keyring.backend.KeyringBackend | None = None, name: str = SERVER_TOKEN) -> str | None:
    """The workstation's token for the central server, or None when it was never enrolled.

    KeyringUnavailable when no OS keyring is usable (never a plaintext fallback)."""
    chosen = usable_backend(backend)
    try:
        value = chosen.get_password(SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the OS keyring refused to read the server token: {exc}. {INSTALL_HINT}") from exc
    return value or None


def write_token(token: str, backend: keyring.backend.KeyringBackend | None = None, name: str = SERVER_TOKEN) -> None:
    """Keep the token in the OS keyring (replacing an older one), read back before it is trusted."""
    if not token or not token.strip():
        raise ValueError("empty server token")
    chosen = usable_backend(backend)
    try:
        chosen.set_password(SERVICE, name, token)
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the OS keyring refused to keep the server token: {exc}. {INSTALL_HINT}") from exc
    if read_token(chosen, name) != token:
        raise KeyringUnavailable(f"the OS keyring did not keep the server token. {INSTALL_HINT}")


def delete_token(backend: keyring.backend.KeyringBackend | None = None, name: str = SERVER_TOKEN) -> None:
    chosen = usable_backend(backend)
    try:
        chosen.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        pass
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the OS keyring refused to delete the server token: {exc}. {INSTALL_HINT}") from exc
