"""Minimal Lower Layer Protocol (HL7 v2 transport): one message out, its ACK back, with deadlines.

Our own thin framing (<VT> message <FS><CR>) over a plain or TLS socket, because
the send must be bounded in time and size and its outcome classified: a refused
connection, a silent peer and a peer closing mid-answer are retried later; an
answer that is not an ACK is an error.
"""

from __future__ import annotations

import socket
import ssl
import time

START, END = b"\x0b", b"\x1c\x0d"
MAX_ANSWER = 1 << 20  # an ACK is small; more than 1 MB is not one


class MllpError(OSError):
    """No ACK came back: `retry` says whether trying again later may help (it does for every transport failure)."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def frame(message: bytes) -> bytes:
    if START in message or END in message:
        raise ValueError("an HL7 message may not contain MLLP frame characters")
    return START + message + END


def send(host: str, port: int, message: bytes, timeout_s: float, tls: ssl.SSLContext | None = None) -> bytes:
    """Send one framed message and return the answer's payload (without framing)."""
    deadline = time.monotonic() + timeout_s
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise MllpError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    try:
        conn = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        raise MllpError(f"TLS with {host}:{port} failed: {exc}") from None
    with conn:
        try:
            conn.sendall(frame(message))
            return _read_answer(conn, deadline)
        except socket.timeout:
            raise MllpError(f"no answer from {host}:{port} within {timeout_s:g} s") from None
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            if isinstance(exc, MllpError):
                raise
            raise MllpError(f"the connection to {host}:{port} broke: {exc}") from None


def _read_answer(conn: socket.socket, deadline: float) -> bytes:
    buffer = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        conn.settimeout(remaining)
        chunk = conn.recv(65536)
        if not chunk:
            raise MllpError("the peer closed the connection before a complete answer")
        buffer += chunk
        if len(buffer) > MAX_ANSWER:
            raise MllpError("the answer exceeds 1 MB: not an ACK", retry=False)
        end = buffer.find(END)
        if end >= 0:
            start = buffer.find(START)
            if start < 0 or start > end:
                raise MllpError("the answer is not MLLP-framed", retry=False)
            return bytes(buffer[start + 1:end])
