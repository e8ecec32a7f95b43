"""A route's upstream credential, from the vault's just-in-time providers.

``CredentialSpec.kind`` picks the provider: ``static`` (the secret named ``secret`` as
``<header>: <scheme> <value>``), ``client_credentials`` (the client secret is the vault
secret ``secret``, the client id the one named ``client_id_secret``; the token comes from
``token_url`` with the upstream scope ``scopes`` maps the operation to), ``downstream_jwt``
(a JWT minted per request, ``aud`` = the spec's audience or the upstream URL), ``none``.
Providers are built once per route version and reused, so client-credentials tokens are
cached.
"""

from __future__ import annotations

import threading

from tabard.clock import Clock
from tabard.gateway.errors import GatewayUnavailableError
from tabard.gateway.ports import RouteView
from tabard.vault import (
    ClientCredentialsProvider,
    CredentialProvider,
    DownstreamJwtProvider,
    DownstreamSigner,
    Leases,
    SecretReader,
    StaticSecretProvider,
)

__all__ = ["CredentialBroker"]


class CredentialBroker:
    def __init__(self, *, clock: Clock, vault: SecretReader | None = None,
                 leases: Leases | None = None, signer: DownstreamSigner | None = None) -> None:
        self._clock, self._vault, self._leases, self._signer = clock, vault, leases, signer
        self._providers: dict[tuple[str, int], CredentialProvider | None] = {}
        self._lock = threading.Lock()

    def provider(self, route: RouteView, version: int) -> CredentialProvider | None:
        key = (route.name, version)
        with self._lock:
            if key in self._providers:
                return self._providers[key]
        made = self._build(route)
        with self._lock:
            if len(self._providers) > 4096:
                self._providers.clear()
            self._providers[key] = made
        return made

    def _build(self, route: RouteView) -> CredentialProvider | None:
        spec = route.credential
        kind = spec.kind
        if kind == "none":
            return None
        if kind == "downstream_jwt":
            if self._signer is None or self._leases is None:
                raise GatewayUnavailableError("downstream JWTs cannot be minted here")
            return DownstreamJwtProvider(self._signer, self._leases, self._clock,
                                         header=spec.header, scheme=spec.scheme or "")
        if self._vault is None or self._leases is None or not spec.secret:
            raise GatewayUnavailableError(f"route {route.name!r}: its credential needs the "
                                          "vault and a secret name")
        if kind == "static":
            return StaticSecretProvider(self._vault, self._leases, self._clock,
                                        secret=spec.secret, header=spec.header,
                                        scheme=spec.scheme or "")
        if kind == "client_credentials":
            if not spec.token_url:
                raise GatewayUnavailableError(f"route {route.name!r}: client_credentials "
                                              "needs a token_url")
            return ClientCredentialsProvider(
                self._vault, self._leases, self._clock, token_url=spec.token_url,
                client_id_secret=spec.client_id_secret or f"{spec.secret}.client_id",
                client_secret_secret=spec.secret,
                resource=spec.audience or route.upstream, scopes=dict(spec.scopes))
        raise GatewayUnavailableError(f"route {route.name!r}: unknown credential kind "
                                      f"{kind!r}")
