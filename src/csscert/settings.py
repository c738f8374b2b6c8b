"""One typed settings object, read from ``CSSCERT_*`` environment variables and CLI flags.

The CLI turns its flags into environment variables before it starts server workers, so a
worker process rebuilds exactly the same :class:`Settings` from its environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CAScope = Literal["region", "project"]
OnOff = Literal["on", "off"]
HttpMode = Literal["1", "2", "auto"]
MetricsAccess = Literal["loopback", "on", "off"]
KeyType = Literal["rsa2048", "rsa3072", "rsa4096", "p256", "p384"]

_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Settings(BaseSettings):
    """Everything the service can be told. Defaults give a working embedded deployment."""

    model_config = SettingsConfigDict(env_prefix="CSSCERT_", extra="ignore")

    data_dir: Path = Field(
        default=Path("csscert-data"),
        description="Data directory: the SQLite database, `master.key`, `bootstrap-credentials.json`, "
        "the change signal and `--tls` files. Relative to the working directory: set it once "
        "(e.g. an absolute path in your shell profile) so every command finds the same data.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. `postgresql+psycopg://user:pw@host/db` (install the `postgres` "
        "extra); default: SQLite in the data directory.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Base64url 32-byte key that seals every private key, secret key and token key; "
        "default: generated once into `<data_dir>/master.key` (0600).",
    )

    region: str = Field(
        default="local-1",
        description="Region name; also the first project's name. Recorded on first start.",
    )
    domain_name: str = Field(
        default="csscert",
        description="Keystone domain of the users (`user_domain_name` / `project_domain_name` in "
        "clients). Recorded on first start.",
    )

    ca_scope: CAScope = Field(
        default="region",
        description="`region`: one CA for every project, like the cloud; `project`: one CA per project.",
    )
    ca_key_type: KeyType = Field(
        default="rsa2048",
        description="Key of new CAs, and of certificates `cert issue` makes without `--key-type`.",
    )
    ca_validity_days: int = Field(default=3650, ge=1, le=36500, description="Validity of new CAs, in days.")
    ca_subject: str = Field(default="CN=CloudSearchService", description="Subject of new CAs, RFC 4514.")
    ca_expiry_warning_days: int = Field(
        default=90,
        ge=0,
        le=36500,
        description="Days before a CA's expiry from which `ca show` and the download warn.",
    )
    node_validity_days: int = Field(
        default=365,
        ge=1,
        le=3650,
        description="Default validity of issued certificates, in days (never past the CA's expiry).",
    )

    host: str = Field(
        default="127.0.0.1", description="Address `serve` binds (`0.0.0.0` for every interface)."
    )
    port: int = Field(default=8080, ge=0, le=65535, description="Port `serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes.")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach csscert at (behind a proxy); goes into the Keystone "
        "catalog. Default: the Host header clients send.",
    )
    tls: bool = Field(
        default=False,
        description="Serve HTTPS with a certificate csscert issues itself from its own CA for the "
        "listening host (kept in `<data_dir>/tls/`, renewed on start when due).",
    )
    tls_cert: Path | None = Field(
        default=None, description="Serve HTTPS with this PEM certificate chain (with `tls_key`)."
    )
    tls_key: Path | None = Field(default=None, description="The PEM private key of `tls_cert`.")

    token_ttl_seconds: int = Field(default=86400, ge=60, description="Lifetime of issued tokens, in seconds.")
    sdk_date_skew_seconds: int = Field(
        default=900,
        ge=1,
        description="How far an AK/SK request's `X-Sdk-Date` may be from the server's clock, in seconds.",
    )
    revision_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often each server checks the database for changes made on other hosts, in seconds.",
    )
    truststore_default_password: SecretStr = Field(
        default=SecretStr("changeit"),
        description="Password of `jks`/`p12` downloads without `?password=` (Java's default).",
    )
    log_level: str = Field(default="INFO", description="Server log level (DEBUG, INFO, WARNING, ERROR).")

    @property
    def serves_tls(self) -> bool:
        return self.tls or self.tls_cert is not None

    # The database being away has defined behaviour (StoreUnavailable, a 503) instead of a hang.
    db_connect_timeout_seconds: float = Field(
        default=1.0, ge=0.1, le=300, description="PostgreSQL connect timeout (libpq waits at least 2 s)."
    )
    db_statement_timeout_seconds: float = Field(
        default=1.0, ge=0, le=3600, description="PostgreSQL statement_timeout for reads; 0 turns it off."
    )
    db_read_deadline_seconds: float = Field(
        default=1.0, ge=0.05, le=3600, description="Client-side bound on one read, even on a frozen server."
    )
    db_read_threads: int = Field(default=4, ge=1, le=64, description="Threads that run bounded reads.")
    change_log_keep_seconds: int = Field(
        default=86400, ge=60, le=366 * 86400, description="How long the change log keeps its rows."
    )

    # -- limits on the server (docs: README "Limits"; the defaults no normal client meets) --
    http: HttpMode = Field(
        default="1",
        description="HTTP/1.1 only; `2` or `auto` opt into HTTP/2 (cleartext; behind a proxy only).",
    )
    header_read_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A request head must arrive within this; idle keep-alive ends too.",
    )
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="A request body must arrive within this (total), else 408."
    )
    max_connections: int = Field(
        default=8192,
        ge=16,
        le=1_000_000,
        description="Open connections per worker (raises `ulimit -n` to fit).",
    )
    backlog: int = Field(
        default=4096,
        ge=128,
        le=65535,
        description="Connections the kernel queues before a worker accepts them.",
    )
    max_header_bytes: int = Field(
        default=32 * 1024, ge=16 * 1024, le=1024 * 1024, description="Largest request head (431 past it)."
    )
    truststore_builders: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Truststores (jks/p12) built at once per worker, off the event loop.",
    )

    # -- throttling (csscert.limits): N requests per S seconds ------------------------------
    rate_limits: OnOff = Field(
        default="on", description="`off` turns every throttle off (behind a gateway that throttles already)."
    )
    rate_limit_credential: str = Field(
        default="1000/10", description="Requests per credential (token or access key): N/seconds, then 429."
    )
    rate_limit_login_user: str = Field(
        default="10/300", description="Password logins per user name: N/seconds, checked before argon2 runs."
    )
    rate_limit_login_address: str = Field(
        default="60/60", description="Password logins per source address: N/seconds (looser than per user)."
    )
    trusted_proxies: str = Field(
        default="", description="Comma-separated addresses/networks whose X-Forwarded-For is believed."
    )

    # -- what operators see ---------------------------------------------------------------
    access_log: OnOff = Field(default="on", description="One JSON line per request on standard error.")
    metrics: MetricsAccess = Field(
        default="loopback", description="Who may read `/metrics`: `loopback`, `on` (anyone), or `off`."
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="A bearer token that also opens `/metrics` (from anywhere)."
    )
    master_key_previous: SecretStr | None = Field(
        default=None,
        description="During a master-key rotation on hosts that take `CSSCERT_MASTER_KEY`: the key being "
        "replaced. Secrets sealed under either key open; new ones are sealed under the key the database is "
        "at. Drop it once `csscert master-key rotate` has run.",
    )
    ca_key_store: Literal["sealed", "pkcs11"] = Field(
        default="sealed",
        description="Where new CA keys live: `sealed` (in the database, sealed under the master key) or "
        "`pkcs11` (generated inside a PKCS#11 token, never extractable; the database keeps a reference).",
    )
    pkcs11_module: Path | None = Field(
        default=None,
        description="With `ca_key_store=pkcs11`: the PKCS#11 library, "
        "e.g. `/usr/lib/softhsm/libsofthsm2.so`.",
    )
    pkcs11_token_label: str | None = Field(
        default=None, description="With `ca_key_store=pkcs11`: the token's label."
    )
    pkcs11_pin_file: Path | None = Field(
        default=None,
        description="A file holding the token's user PIN (preferred over `pkcs11_pin`; never logged).",
    )
    pkcs11_pin: SecretStr | None = Field(default=None, description="The token's user PIN (never logged).")

    # -- issuance over the API (issue 12) ---------------------------------------------------
    crl_validity_hours: int = Field(
        default=24,
        ge=2,
        le=24 * 31,
        description="Hours from a CRL's thisUpdate to its nextUpdate; each CA's CRL is re-signed every "
        "half of it, and at once after a revocation.",
    )
    signing_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Certificate requests signed at once per worker over the API, off the event loop.",
    )

    # -- ACME (RFC 8555) ------------------------------------------------------------------
    acme_http_port: int = Field(
        default=80, ge=1, le=65535, description="Port ACME `http-01` validation connects to (RFC 8555: 80)."
    )
    acme_tls_port: int = Field(
        default=443,
        ge=1,
        le=65535,
        description="Port ACME `tls-alpn-01` validation connects to (RFC 8737: 443).",
    )
    acme_validation_networks: str = Field(
        default="10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7",
        description=(
            "Comma-separated networks ACME validation may connect to (redirects included). The "
            "default is the private ranges where search nodes live; loopback (csscert's own host), "
            "link-local (cloud metadata) and public addresses are left out unless listed."
        ),
    )
    acme_validation_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of each connection an ACME validation makes."
    )
    acme_nonce_lifetime_seconds: int = Field(
        default=3600, ge=10, le=86400, description="How long an unused ACME nonce stays valid."
    )
    acme_order_lifetime_seconds: int = Field(
        default=86400,
        ge=60,
        le=30 * 86400,
        description="How long an ACME order and its authorizations may stay unfinished before they expire.",
    )

    @field_validator("region")
    @classmethod
    def _region_is_a_name(cls, value: str) -> str:
        if not _REGION_RE.match(value):
            raise ValueError("region must be lower-case letters, digits and '-', e.g. 'eu-de'")
        return value

    @field_validator("rate_limit_credential", "rate_limit_login_user", "rate_limit_login_address")
    @classmethod
    def _rate_is_a_rate(cls, value: str) -> str:
        from csscert.limits import parse_rate

        parse_rate(value)
        return value

    @field_validator("trusted_proxies", "acme_validation_networks")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"{item!r} is not an IP address or network, e.g. 127.0.0.1 or 10.0.0.0/8"
                ) from exc
        return value

    @field_validator("ca_subject")
    @classmethod
    def _subject_is_a_name(cls, value: str) -> str:
        from cryptography import x509

        try:
            name = x509.Name.from_rfc4514_string(value)
        except ValueError:
            name = None
        if name is None or not list(name):
            raise ValueError("CA subject must be an RFC 4514 name such as 'CN=CloudSearchService,O=Example'")
        return value

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'csscert.db').resolve()}"

    @property
    def uses_embedded_database(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    def public_base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.serves_tls else 'http'}://{host}:{self.port}"

    def to_environ(self) -> dict[str, str]:
        """Environment that recreates these settings in a child process (worker)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"CSSCERT_{name.upper()}"] = str(value)
        return env
