"""Settings: one object, read from the environment and flags, built once in the CLI."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class _DocumentedEnv(EnvSettingsSource):
    """Reads each setting from its documented variable only (`PORT`, `PARLEY_HOST`…), never
    from its Python name: `populate_by_name` would otherwise make `HOST` set the host."""

    def _extract_field_info(
        self, field: FieldInfo, field_name: str, model_config: Mapping[str, Any] | None = None
    ) -> list[tuple[str, str, bool]]:
        found = super()._extract_field_info(field, field_name, model_config)
        if field.alias:
            found = [entry for entry in found if entry[0] == field.alias]
        return found


# Who may read /service/metrics and the gateway's /metrics: loopback and private ranges.
METRICS_ALLOW = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)
MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT = 12
# Words of the placeholders example files ship ("REPLACE_WITH_…", "change-me"): a secret
# holding one was copied from documentation, so anyone who read it can forge tokens.
PLACEHOLDER_WORDS = ("replace", "change", "example")
MAKE_SECRET = "make one with: openssl rand -hex 32"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Everything configurable. Unset backends fall back to the embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _DocumentedEnv(settings_cls), dotenv_settings, file_secret_settings

    # The gateway's interface (`--host`). The server binds `server_host` whatever this says,
    # so `--host 0.0.0.0` never exposes the server's /docs and /service/metrics.
    host: str = Field("127.0.0.1", alias="PARLEY_HOST")
    server_host: str = Field("127.0.0.1", alias="PARLEY_SERVER_HOST")
    port: int = Field(5000, alias="PORT")
    gateway_port: int = Field(8080, alias="GATEWAY_PORT")
    data_dir: Path = Field(Path("./data"), alias="PARLEY_DATA_DIR")
    upstreams: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PARLEY_UPSTREAMS"
    )
    workers: int | None = Field(None, alias="PARLEY_WORKERS", ge=1, le=64)
    # Gateway processes `parley serve` starts on the one gateway port (SO_REUSEPORT).
    gateways: int = Field(1, alias="PARLEY_GATEWAYS", ge=1, le=64)
    gateway_reuse_port: bool = Field(False, alias="PARLEY_GATEWAY_REUSE_PORT")

    database_url: str | None = Field(None, alias="DATABASE_URL")
    db_host: str | None = Field(None, alias="DB_HOST")
    db_port: int = Field(5432, alias="DB_PORT")
    db_user: str = Field("postgres", alias="DB_USER")
    db_password: str = Field("", alias="DB_PASSWORD")
    db_name: str = Field("parley", alias="DB_NAME")
    db_pool_size: int = Field(10, alias="PARLEY_DB_POOL_SIZE")
    # Seconds a request waits for a pooled database connection (None: 30 on SQLite, 10 on
    # PostgreSQL); past it the request is answered 503 `unavailable`.
    db_pool_timeout: float | None = Field(None, gt=0, alias="PARLEY_DB_POOL_TIMEOUT")

    redis_url: str | None = Field(None, alias="REDIS_URL")
    redis_host: str | None = Field(None, alias="REDIS_HOST")
    redis_port: int = Field(6379, alias="REDIS_PORT")
    redis_prefix: str = Field("parley:", alias="PARLEY_REDIS_PREFIX")

    s3_endpoint: str | None = Field(None, alias="S3_ENDPOINT")
    s3_access_key: str | None = Field(None, alias="S3_ACCESS_KEY")
    s3_secret_key: str | None = Field(None, alias="S3_SECRET_KEY")
    s3_bucket: str = Field("parley", alias="S3_BUCKET")
    s3_region: str = Field("us-east-1", alias="S3_REGION")

    jwt_secret: str | None = Field(None, alias="JWT_SECRET")
    log_level: str = Field("info", alias="LOG_LEVEL")
    max_connections: int = Field(10000, alias="MAX_CONNECTIONS")
    # WebSocket handshakes one server process serves at once; past it: 503 `overloaded`.
    max_handshakes: int = Field(64, ge=1, alias="PARLEY_MAX_HANDSHAKES")
    # Collections of Python's middle generation between two full ones (Python: 10); see
    # freeze_startup_heap in parley/wsserver.py.
    gc_full_every: int = Field(1000, ge=1, alias="PARLEY_GC_FULL_EVERY")
    max_chats_per_user: int = Field(5000, ge=1, alias="PARLEY_MAX_CHATS_PER_USER")
    max_sockets_per_user: int = Field(20, ge=1, alias="PARLEY_MAX_SOCKETS_PER_USER")
    max_reactions: int = Field(20, ge=1, alias="PARLEY_MAX_REACTIONS")  # distinct emoji per message

    worker_interval: float = Field(10.0, alias="PARLEY_WORKER_INTERVAL")
    presence_timeout: float = Field(75.0, alias="PARLEY_PRESENCE_TIMEOUT")
    presence_max_group: int = Field(100, alias="PARLEY_PRESENCE_MAX_GROUP")
    # Chats larger than this hear nobody typing (Zulip stops at 100 members).
    typing_max_members: int = Field(1000, ge=2, alias="PARLEY_TYPING_MAX_MEMBERS")
    # With Redis: a process whose heartbeat is this many seconds old is gone (SIGKILL, a
    # lost host), and the others take its users offline (docs/operations.md).
    presence_process_ttl: float = Field(15.0, ge=0.5, alias="PARLEY_PRESENCE_PROCESS_TTL")
    # With Redis: seconds between PINGs on the event subscription; one unanswered by the
    # next means a dead link: subscribe again, then resync (docs/operations.md).
    broker_keepalive: float = Field(5.0, gt=0, le=5, alias="PARLEY_BROKER_KEEPALIVE")
    send_queue: int = Field(2000, alias="PARLEY_SEND_QUEUE")
    access_ttl: int = Field(900, alias="PARLEY_ACCESS_TTL")
    refresh_ttl: int = Field(30 * 24 * 3600, alias="PARLEY_REFRESH_TTL")
    session_check_interval: float = Field(2.0, alias="PARLEY_SESSION_CHECK_INTERVAL")

    rate_public: str = Field("10/second", alias="PARLEY_RATE_PUBLIC")
    rate_user: str = Field("20/second", alias="PARLEY_RATE_USER")
    rate_send: str = Field("10/second", alias="PARLEY_RATE_SEND")
    rate_typing: str = Field("2/second", alias="PARLEY_RATE_TYPING")
    rate_login: str = Field("5/minute", alias="PARLEY_RATE_LOGIN")
    rate_login_ip: str = Field("30/minute", alias="PARLEY_RATE_LOGIN_IP")
    # Overrides of the WebSocket frame budgets declared with each frame type
    # (parley/server/realtime/protocol.py): "edit=2/second,sync=10/minute".
    rate_frames: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, alias="PARLEY_RATE_FRAMES"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PARLEY_TRUSTED_PROXIES"
    )
    # Networks the server may call out to although they are not public (previews, push,
    # bot events): e.g. "10.1.2.0/24" for an internal bot; empty by default.
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PARLEY_OUTBOUND_ALLOW"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="PARLEY_CORS_ORIGINS"
    )
    metrics_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(METRICS_ALLOW), alias="PARLEY_METRICS_ALLOW"
    )
    metrics_user_labels: int = Field(100, alias="PARLEY_METRICS_USER_LABELS")

    max_attachment_bytes: int = Field(25 * 1024 * 1024, alias="PARLEY_MAX_ATTACHMENT_BYTES")
    upload_quota_bytes: int = Field(1024**3, ge=0, alias="PARLEY_UPLOAD_QUOTA_BYTES")
    upload_orphan_seconds: float = Field(3600.0, gt=0, alias="PARLEY_UPLOAD_ORPHAN_SECONDS")
    max_avatar_bytes: int = Field(5 * 1024 * 1024, alias="PARLEY_MAX_AVATAR_BYTES")
    ws_max_frame: int = Field(64 * 1024, alias="PARLEY_WS_MAX_FRAME")
    body_timeout: float = Field(30.0, gt=0, alias="PARLEY_BODY_TIMEOUT")
    max_inflight_per_ip: int = Field(50, ge=1, alias="PARLEY_MAX_INFLIGHT_PER_IP")
    ws_send_queue: int = Field(256, alias="PARLEY_WS_SEND_QUEUE")
    cookie_secure: bool = Field(False, alias="PARLEY_COOKIE_SECURE")
    shutdown_timeout: float = Field(20.0, gt=0, alias="PARLEY_SHUTDOWN_TIMEOUT")
    shutdown_drain: float = Field(0.0, ge=0, alias="PARLEY_SHUTDOWN_DRAIN")
    # Link previews: the server fetches the first URL of a new message (on | off).
    link_previews: bool = Field(True, alias="PARLEY_LINK_PREVIEWS")

    # Reach: registration modes, e-mail (docs/operations.md, "E-mail" and "Registration").
    # The mode here is the default; an admin's PATCH /service/api/admin/settings overrides it.
    registration: Literal["open", "invite", "closed"] = Field("open", alias="PARLEY_REGISTRATION")
    public_url: str | None = Field(None, alias="PARLEY_PUBLIC_URL")  # where links in e-mails lead
    smtp_host: str | None = Field(None, alias="SMTP_HOST")  # unset: e-mail is off
    smtp_port: int | None = Field(None, ge=1, le=65535, alias="SMTP_PORT")
    smtp_user: str | None = Field(None, alias="SMTP_USER")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    smtp_from: str = Field("Parley <parley@localhost>", alias="SMTP_FROM")
    smtp_tls: Literal["starttls", "tls", "none"] = Field("starttls", alias="SMTP_TLS")
    # missed direct messages and mentions are e-mailed once unread this long (fractions allowed)
    email_digest_minutes: float = Field(15.0, gt=0, alias="PARLEY_EMAIL_DIGEST_MINUTES")
    rate_forgot: str = Field("3/hour", alias="PARLEY_RATE_FORGOT")  # per address
    rate_forgot_ip: str = Field("10/hour", alias="PARLEY_RATE_FORGOT_IP")  # per client IP
    # Web Push (docs/operations.md, "Web Push"): the VAPID key (base64url raw or DER;
    # unset: generated once in the data dir), the idle window, whether content is shown.
    vapid_private_key: str | None = Field(None, alias="PARLEY_VAPID_PRIVATE_KEY")
    push_idle_seconds: float = Field(60.0, ge=0, alias="PARLEY_PUSH_IDLE_SECONDS")
    push_content: Literal["on", "off"] = Field("on", alias="PARLEY_PUSH_CONTENT")
    push_queue: int = Field(1000, ge=1, alias="PARLEY_PUSH_QUEUE")
    # trust: who must use two-factor sign-in, and how long messages are kept (0: forever)
    require_2fa: Literal["none", "admins", "all"] = Field("none", alias="PARLEY_REQUIRE_2FA")
    retention_days: float = Field(0.0, ge=0, le=36500, alias="PARLEY_RETENTION_DAYS")
    # integrations: posts per incoming webhook (1 a second on average, bursts of 10)
    rate_webhook: str = Field("10/10 seconds", alias="PARLEY_RATE_WEBHOOK")

    @field_validator(
        "upstreams",
        "trusted_proxies",
        "cors_origins",
        "metrics_allow",
        "outbound_allow",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        """ "a,b" from the environment, and each of a repeated flag ("a,b", "c") split too."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return [p.strip() for item in value for p in str(item).split(",") if p.strip()]
        return value

    @field_validator("outbound_allow", "metrics_allow")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # a bad entry stops the start
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: str | None) -> str | None:
        return None if value is None else check_jwt_secret(value)

    @field_validator("db_password", "s3_secret_key")
    @classmethod
    def _real_password(cls, value: str | None) -> str | None:
        return None if value is None else check_not_placeholder(value)

    @field_validator("database_url", "redis_url")
    @classmethod
    def _real_url_password(cls, value: str | None) -> str | None:
        try:
            password = urlsplit(value).password if value else None
        except ValueError:
            return value  # not a URL: whoever uses it says so
        if password:
            check_not_placeholder(password, what="its password")
        return value

    @property
    def metrics_networks(self) -> list[Network]:
        return [ipaddress.ip_network(entry, strict=False) for entry in self.metrics_allow]

    def may_read_metrics(self, *addresses: str | None) -> bool:
        """True when every address (the peer, each forwarded hop) is in PARLEY_METRICS_ALLOW."""
        networks = self.metrics_networks
        for address in addresses:
            try:
                ip = ipaddress.ip_address((address or "").strip())
            except ValueError:
                return False
            if not any(ip in network for network in networks):
                return False
        return True

    @field_validator("rate_frames", mode="before")
    @classmethod
    def _frame_rates(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        rates = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            kind, _, rate = part.partition("=")
            if not kind.strip() or not rate.strip():
                raise ValueError("expected type=rate pairs, e.g. edit=2/second,sync=10/minute")
            rates[kind.strip()] = rate.strip()
        return rates

    @field_validator("upstreams")
    @classmethod
    def _check_upstreams(cls, value: list[str]) -> list[str]:
        return [check_upstream(url) for url in value]

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL: DATABASE_URL, else the seed's DB_* variables, else SQLite."""
        if self.database_url:
            return _async_driver(self.database_url)
        if self.db_host:
            auth = quote(self.db_user, safe="")
            if self.db_password:
                auth += ":" + quote(self.db_password, safe="")
            return f"postgresql+asyncpg://{auth}@{self.db_host}:{self.db_port}/{self.db_name}"
        return f"sqlite+aiosqlite:///{(self.data_dir / 'parley.db').resolve()}"

    @property
    def redis_dsn(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            return f"redis://{self.redis_host}:{self.redis_port}/0"
        return None

    @property
    def upstream_urls(self) -> list[str]:
        return self.upstreams or [f"http://{url_host(connect_host(self.server_host))}:{self.port}"]

    def jwt_key(self) -> str:
        """JWT_SECRET, else a secret generated once and kept in the data dir (0600)."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            # Written aside then linked: several processes starting at once agree on one.
            self.make_data_dir()
            tmp = path.with_name(f".jwt_secret.{os.getpid()}.{secrets.token_hex(4)}")
            write_private(tmp, secrets.token_urlsafe(48).encode())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        return path.read_text().strip()

    @property
    def public_base(self) -> str:
        """The site's address for links sent out (e-mails, invites): PARLEY_PUBLIC_URL, else
        the gateway on this machine."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{url_host(connect_host(self.host))}:{self.gateway_port}"

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.smtp_host)

    def make_data_dir(self) -> Path:
        """The data directory, created private (0700) when missing."""
        make_private_dir(self.data_dir)
        return self.data_dir


def make_private_dir(path: Path) -> None:
    """`path` and each missing parent created 0700 (`mkdir(parents=True)` gives the
    parents 0777 minus the umask, 0755 usually); existing directories are left as they are."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process (or a file: refused)
            if not directory.is_dir():
                raise


def check_jwt_secret(value: str) -> str:
    """A signing key nobody could have read or guessed: long, varied, not a placeholder."""
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes ({MAKE_SECRET}),"
            " or unset it to have one generated"
        )
    check_not_placeholder(value)
    distinct = len(set(value))
    if distinct < MIN_SECRET_DISTINCT:
        raise ValueError(
            f"only {distinct} distinct characters (at least {MIN_SECRET_DISTINCT} are needed):"
            f" not a random secret; {MAKE_SECRET}"
        )
    return value


def check_not_placeholder(value: str, *, what: str = "the value") -> str:
    """Refuses a secret that holds a placeholder word (any case); the message never shows it."""
    found = next((word for word in PLACEHOLDER_WORDS if word in value.lower()), None)
    if found is not None:
        raise ValueError(f"{what} is a placeholder (it contains {found!r}); {MAKE_SECRET}")
    return value


def write_private(path: Path, data: bytes) -> None:
    """A new file readable by its owner only from the start (never written then chmod-ed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


MAX_JSON_BODY = 64 * 1024  # request bodies other than uploads (API.md "Abuse limits")
UPLOAD_SLACK = 64 * 1024  # multipart framing and form fields beside an upload's file
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def connect_host(host: str) -> str:
    """Where to reach a process bound to `host` from this machine (a wildcard: loopback)."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_upstream(url: str) -> str:
    """An upstream is a base URL, http(s)://host[:port]; anything else fails at start."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"upstream {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"upstream {url!r} must look like http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"upstream {url!r}: give only scheme, host and port (no path or query)")
    if port == 0:
        raise ValueError(f"upstream {url!r}: port 0 is not a port")
    return url.rstrip("/")


def _async_driver(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and "+aiosqlite" not in url:
        return url.replace("sqlite://", "sqlite+aiosqlite://", 1)
    return url
