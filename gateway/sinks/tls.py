"""TLS contexts for the sinks (and sources): verification is always on."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(
    cafile: Path | None, certfile: Path | None = None, keyfile: Path | None = None
) -> ssl.SSLContext:
    """A client context that checks the server's certificate and host name.

    `cafile` None trusts the system store; a client cert/key pair adds mutual TLS.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None
    )
    if certfile is not None:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return context


def tls_problem(
    detail: str, prefix: str, cafile: Path | None, host: str, ca_key: str = "ssl_cafile"
) -> str | None:
    """What a TLS failure means and which `<prefix>.*` setting fixes it; None if `detail` (an
    error's text, as the clients pass it on) is not a TLS failure. One line; no secrets."""
    text = detail.lower()
    if "certificate has expired" in text:
        return (
            f"certificate verify failed: the server's certificate at {host} has expired; renew "
            "it on the server (verification stays on)"
        )
    if "mismatch" in text and "certificate" in text:
        return (
            f"certificate verify failed: the server's certificate is not valid for {host}; "
            "connect by a name it lists, or reissue it with that name in subjectAltName"
        )
    if "alert unknown ca" in text or "alert bad certificate" in text:
        return (
            f"{host} refused our client certificate ({prefix}.ssl_certfile): it is not "
            "signed by a CA the server trusts"
        )
    if any(s in text for s in ("local issuer", "self-signed", "self signed")):
        setting = f"{prefix}.{ca_key}"
        trusted = f"{setting}={cafile}" if cafile else f"not in {setting} or the system store"
        return (
            f"certificate verify failed: unknown CA ({trusted}); set {setting} to the "
            "CA that signed the server's certificate"
        )
    if "certificate required" in text or "certificate_required" in text:
        return (
            f"{host} requires a client certificate; set {prefix}.ssl_certfile and "
            f"{prefix}.ssl_keyfile"
        )
    if "wrong_version_number" in text or "wrong version number" in text:
        return f"{host} answered without TLS: it is a plaintext port"
    return None
