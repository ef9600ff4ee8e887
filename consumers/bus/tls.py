"""TLS options for ``rediss://`` URLs from the environment.

redis-py already reads TLS settings from the URL's query string
(``rediss://host:6380/0?ssl_ca_certs=/etc/riskgate/ca.pem&ssl_certfile=...``).
These variables give the same settings without putting paths in every URL:

- ``RISKGATE_REDIS_CA_CERTS``: PEM file of the CA(s) that signed the server's cert;
- ``RISKGATE_REDIS_CERTFILE`` / ``RISKGATE_REDIS_KEYFILE``: client certificate and key
  (mutual TLS, when the server sets ``tls-auth-clients yes``).

They apply to ``rediss://`` URLs only; a parameter in the URL wins over the variable.
Certificate verification stays on (redis-py's default ``ssl_cert_reqs="required"``
and hostname checking); nothing here turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qs, urlparse

ENV_OPTIONS = {
    "RISKGATE_REDIS_CA_CERTS": "ssl_ca_certs",
    "RISKGATE_REDIS_CERTFILE": "ssl_certfile",
    "RISKGATE_REDIS_KEYFILE": "ssl_keyfile",
}


def tls_options(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Keyword arguments for ``Redis.from_url(url, **tls_options(url))``."""
    parsed = urlparse(url)
    if parsed.scheme != "rediss":
        return {}
    env = os.environ if environ is None else environ
    in_url = parse_qs(parsed.query)
    return {
        option: env[var]
        for var, option in ENV_OPTIONS.items()
        if env.get(var) and option not in in_url
    }
