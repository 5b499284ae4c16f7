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
