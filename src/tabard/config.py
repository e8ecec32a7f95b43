"""Effective configuration: ``tabard.toml``, then ``TABARD_*`` environment overrides.

Precedence, lowest to highest: built-in defaults, the TOML file, the environment, explicit
command-line flags (applied by the CLI through :meth:`Settings.with_overrides`). Nested keys
map to the environment with double underscores: ``[authority] x509_svid_ttl`` is
``TABARD_AUTHORITY__X509_SVID_TTL``. Durations are written ``90s``, ``5m``, ``1h``, ``7d``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tabard.errors import Invalid

__all__ = [
    "AgentSettings",
    "AuditSettings",
    "AuthoritySettings",
    "ConfigError",
    "GatewaySettings",
    "OAuthSettings",
    "ServerSettings",
    "Settings",
    "format_duration",
    "load_settings",
    "parse_duration",
]

ENV_PREFIX = "TABARD_"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(Invalid):
    code = "invalid_config"


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ConfigError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ConfigError(f"not a duration: {value!r} (use e.g. 90s, 5m, 1h, 7d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"duration must be positive: {value!r}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = timedelta


class AuthoritySettings(_Section):
    ca_ttl: Duration = timedelta(hours=24)
    jwt_key_ttl: Duration = timedelta(hours=24)
    x509_svid_ttl: Duration = timedelta(hours=1)
    jwt_svid_ttl: Duration = timedelta(minutes=5)
    max_x509_svid_ttl: Duration = timedelta(hours=24)
    max_jwt_svid_ttl: Duration = timedelta(hours=1)
    node_svid_ttl: Duration = timedelta(hours=1)
    key_type: Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-4096"] = "ec-p256"
    jwt_algorithm: Literal["ES256", "ES384", "RS256", "PS256"] = "ES256"
    bundle_refresh_hint: Duration = timedelta(minutes=5)
    rotation_check_interval: Duration = timedelta(seconds=30)
    upstream_ca_cert: Path | None = None
    upstream_ca_key: Path | None = None
    upstream_bundle: Path | None = None

    @field_validator(
        "ca_ttl", "jwt_key_ttl", "x509_svid_ttl", "jwt_svid_ttl", "max_x509_svid_ttl",
        "max_jwt_svid_ttl", "node_svid_ttl", "bundle_refresh_hint", "rotation_check_interval",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)


class AgentSettings(_Section):
    """Lifecycle rules for agent definitions (ARCHITECTURE §5)."""

    transfer_deadline: Duration = timedelta(days=7)
    attestation_interval: Duration | None = timedelta(days=90)
    orphan_action: Literal["flag", "suspend"] = "flag"
    orphan_grace: Duration = timedelta(days=3)
    stale_after: Duration = timedelta(days=30)
    sweep_interval: Duration = timedelta(hours=1)
    hook_timeout: Duration = timedelta(minutes=5)

    @field_validator("transfer_deadline", "orphan_grace", "stale_after", "sweep_interval",
                     "hook_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("attestation_interval", mode="before")
    @classmethod
    def _optional_duration(cls, value: Any) -> timedelta | None:
        if value is None or (isinstance(value, str) and value.lower() in ("", "never", "none")):
            return None
        return parse_duration(value)


class AuditSettings(_Section):
    """The audit log (``docs/design/audit.md``): how often its tree head is signed, and how
    long an operation waits for its record before it is refused."""

    checkpoint_interval: Duration = timedelta(minutes=5)
    write_timeout: Duration = timedelta(seconds=10)

    @field_validator("checkpoint_interval", "write_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)


class SignalsSettings(_Section):
    """How a replica (a ``tabard gateway`` process, another server over the same database)
    follows the kill switch's signal log (``docs/design/kill-switch.md``): without
    PostgreSQL's ``LISTEN``, it reads the log's one-row head every ``poll_interval`` and the
    events only when the head moved; every ``resync_interval`` it reads the log regardless."""

    poll_interval: Duration = timedelta(milliseconds=50)
    resync_interval: Duration = timedelta(seconds=2)

    @field_validator("poll_interval", "resync_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    node_api_port: int = Field(default=8081, ge=0, le=65535)
    node_api_public_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


class TrustedIssuerSettings(_Section):
    """An OpenID provider whose user tokens the authorization server accepts as subject
    tokens and assertions (``[[oauth.trusted_issuers]]``)."""

    issuer: str = Field(min_length=1, max_length=2048)
    jwks_uri: str = Field(min_length=1, max_length=2048)
    audiences: list[str] = Field(default_factory=list, max_length=16)
    require_directory_user: bool = False


def parse_window(value: str | int | float | timedelta) -> timedelta:
    """A duration that may be zero (``0``, ``"0s"``, ``"off"``: the feature is off)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if value.strip().lower() == "off" or (match and float(match.group(1)) == 0):
            return timedelta(0)
    elif isinstance(value, timedelta):
        if value == timedelta(0):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return timedelta(0)
    return parse_duration(value)


class OAuthSettings(_Section):
    """The OAuth 2 authorization server (``docs/design/oauth.md``).
    ``verified_token_window``: how long a resource server in this process (the gateway)
    reuses an access token's verification — the longest a revocation or a lifecycle change
    made by another process goes unseen (``0`` verifies every request);
    ``verified_token_cache_size`` bounds the tokens kept."""

    access_token_ttl: Duration = timedelta(minutes=5)
    max_chain_depth: int = Field(default=4, ge=1, le=16)
    issuer: str | None = None
    trusted_issuers: list[TrustedIssuerSettings] = Field(default_factory=list, max_length=32)
    allowed_resources: list[str] = Field(default_factory=list, max_length=256)
    demo_issuer: bool = False
    verified_token_window: Duration = timedelta(seconds=1)
    verified_token_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)

    @field_validator("access_token_ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("verified_token_window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> timedelta:
        window = parse_window(value)
        if window > timedelta(seconds=60):
            raise ValueError("verified_token_window is at most 60s")
        return window


class GatewayCredentialSettings(_Section):
    kind: Literal["none", "static", "client_credentials", "downstream_jwt"] = "none"
    secret: str | None = None
    header: str = "Authorization"
    scheme: str | None = "Bearer"
    token_url: str | None = None
    scopes: dict[str, str] = Field(default_factory=dict)
    audience: str | None = None
    client_id_secret: str | None = None  # client_credentials: the secret holding the client id


class GatewayRouteSettings(_Section):
    """A route of the configuration file (``[[gateway.routes]]``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    protocol: Literal["mcp", "a2a", "http"]
    upstream: str = Field(min_length=1, max_length=2048)
    audience: str | None = None
    credential: GatewayCredentialSettings = GatewayCredentialSettings()
    dlp_profile: str | None = None
    dlp_action: Literal["redact", "block"] = "redact"
    timeout: float = Field(default=30.0, gt=0, le=3600)
    strip_headers: tuple[str, ...] = ()
    approval_timeout: float = Field(default=120.0, gt=0, le=86400)
    user_token_issuers: tuple[str, ...] = ()  # dual-token mode: opt-in per issuer
    push_urls: tuple[str, ...] = ()  # A2A webhook URL prefixes (https)


class GatewaySettings(_Section):
    """``tabard gateway`` (and the gateway listener of ``tabard dev``), and its routes from
    configuration (``[[gateway.routes]]``, read-only at run time;
    ``docs/design/routes-and-approvals.md``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    public_url: str | None = None
    audience: str | None = None  # what agents' JWT-SVIDs name; default the public URL
    max_body: int = Field(default=4 * 1024 * 1024, ge=1024)
    routes: list[GatewayRouteSettings] = Field(default_factory=list, max_length=1024)


class VaultSettings(_Section):
    """The vault (``docs/design/vault.md``) in a process that issues credentials (the
    gateway): ``reveal_cache_ttl`` keeps a revealed secret value in memory that long (a
    rotation or deletion by another process is seen within it; ``0`` reads every time);
    ``lease_write_behind`` writes lease records in batches at most that long after they are
    issued instead of one transaction per request (``0``: synchronously), with at most
    ``lease_queue_size`` waiting (beyond that a lease is written synchronously)."""

    reveal_cache_ttl: Duration = timedelta(seconds=5)
    lease_write_behind: Duration = timedelta(milliseconds=20)
    lease_queue_size: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("reveal_cache_ttl", "lease_write_behind", mode="before")
    @classmethod
    def _window(cls, value: Any) -> timedelta:
        window = parse_window(value)
        if window > timedelta(seconds=60):
            raise ValueError("at most 60s")
        return window


class Settings(_Section):
    trust_domain: str = "tabard.local"
    data_dir: Path = Path(".tabard")
    database_url: str | None = None
    kek_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: Path | None = None
    server: ServerSettings = ServerSettings()
    authority: AuthoritySettings = AuthoritySettings()
    agents: AgentSettings = AgentSettings()
    oauth: OAuthSettings = OAuthSettings()
    audit: AuditSettings = AuditSettings()
    gateway: GatewaySettings = GatewaySettings()
    signals: SignalsSettings = SignalsSettings()
    vault: VaultSettings = VaultSettings()

    @field_validator("trust_domain")
    @classmethod
    def _trust_domain(cls, value: str) -> str:
        from tabard.spiffe import SpiffeIdError, TrustDomain

        try:
            return TrustDomain.parse(value).name
        except SpiffeIdError as exc:
            raise ValueError(str(exc)) from None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'tabard.db').resolve()}"

    @property
    def effective_kek_file(self) -> Path:
        return self.kek_file or self.data_dir / "kek"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given top-level values replaced (``None`` values are ignored)."""
        data = self.model_dump()
        data.update({k: v for k, v in values.items() if v is not None})
        return _validate(data)

    def masked(self) -> dict[str, Any]:
        """The configuration as plain data with secrets masked, for ``tabard config show``."""

        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, timedelta):
                return format_duration(value)
            if isinstance(value, Path):
                return str(value)
            return value

        data: dict[str, Any] = plain(self.model_dump())
        data["database_url"] = mask_url(self.effective_database_url)
        data["kek"] = (
            "(from TABARD_KEK)" if os.environ.get("TABARD_KEK") else str(self.effective_kek_file)
        )
        return data


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _validate(data: Mapping[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "configuration"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where}: {message}") from None
    except Invalid as exc:
        raise ConfigError(str(exc)) from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in ("TABARD_KEK", "TABARD_ADMIN_TOKEN"):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in Settings.model_fields:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read ``config_file`` (default ``./tabard.toml`` when it exists) and the environment."""
    env = os.environ if environ is None else environ
    if config_file is None and env.get("TABARD_CONFIG"):
        config_file = Path(env["TABARD_CONFIG"])
    if config_file is None and Path("tabard.toml").is_file():
        config_file = Path("tabard.toml")
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {config_file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None
    return _validate(_merge(data, _env_overrides(env)))
