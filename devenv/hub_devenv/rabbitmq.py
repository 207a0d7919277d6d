"""A private RabbitMQ node for tests and the demo, configured like the Hub Santé production broker.

AMQPS only (no plain listener), mutual TLS with ``verify_peer`` + ``fail_if_no_peer_cert``, the username taken
from the client certificate's CN, EXTERNAL as the only SASL mechanism, and the management API (basic auth) for
administration.  Everything lives under one folder with its own node name, ports, cookie and epmd, so it never
touches a system-wide broker and several nodes can run side by side.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from hub_operator.pki import CertificateAuthority, IssuedCertificate

from .processes import ComponentFailed, free_ports, log_tail, port_open, terminate, wait_until

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
PLUGINS = ("rabbitmq_management", "rabbitmq_auth_mechanism_ssl")


def ensure_installed() -> None:
    """Install Debian's rabbitmq-server when missing (the package does not start a broker)."""
    if (RABBITMQ_BIN / "rabbitmq-server").exists():
        return
    prefix: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rabbitmq-server"]):
        result = subprocess.run(prefix + command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ComponentFailed(
                f"could not install rabbitmq-server ({' '.join(command)} exited {result.returncode}):\n"
                f"{result.stderr[-2000:]}"
            )
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        raise ComponentFailed(f"rabbitmq-server installed but {RABBITMQ_BIN}/rabbitmq-server is missing")


@dataclass(frozen=True)
class ClientCredentials:
    """A client certificate on disk, as a hub client would hold it."""

    cn: str
    cert_path: Path
    key_path: Path
    ca_path: Path
    issued: IssuedCertificate


@dataclass
class BrokerPorts:
    amqps: int
    management: int
    distribution: int
    epmd: int
    ctl_dist_min: int

    @classmethod
    def allocate(cls) -> BrokerPorts:
        amqps, management, distribution, epmd, ctl = free_ports(5)
        return cls(amqps, management, distribution, epmd, ctl)


@dataclass
class LocalBroker:
    """One private RabbitMQ node rooted at ``base_dir``; ``start()`` / ``stop()`` keep its data."""

    base_dir: Path
    node_name: str = "hubtest"
    memory_limit: str = "1GB"
    disk_free_limit: str = "50MB"
    """Below this much free disk the node raises its disk alarm and blocks publishers (fault tests lift it over
    the free space with :meth:`set_disk_free_limit`, then set this back)."""
    host: str = "127.0.0.1"
    admin_user: str = "hub-admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    ports: BrokerPorts = field(default_factory=BrokerPorts.allocate)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    # -- layout -----------------------------------------------------------------------------------------
    @property
    def tls_dir(self) -> Path:
        return self.base_dir / "tls"

    @property
    def ca_pem_path(self) -> Path:
        return self.tls_dir / "ca.crt"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "log" / "node.log"

    @property
    def console_log_path(self) -> Path:
        return self.base_dir / "log" / "console.log"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.ports.management}"

    @property
    def amqps_port(self) -> int:
        return self.ports.amqps

    @property
    def full_node_name(self) -> str:
        return f"{self.node_name}@localhost"

    def amqps_url(self, vhost: str) -> str:
        """An AMQP URL for aio-pika/aiormq (pass ``ssl_context=`` from :meth:`ssl_context`)."""
        return f"amqps://{self.host}:{self.amqps_port}/{quote(vhost, safe='')}?auth=external"

    # -- PKI ----------------------------------------------------------------------------------------------
    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority.from_pem(self.ca_pem_path.read_bytes(), (self.tls_dir / "ca.key").read_bytes())

    def _ensure_tls(self) -> None:
        if self.ca_pem_path.exists():
            return
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority.generate(f"hub-operator test CA ({self.node_name})")
        server = ca.issue(
            "localhost", client=False, server=True, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        _write_private(self.tls_dir / "ca.key", ca.key_pem)
        self.ca_pem_path.write_bytes(ca.cert_pem)
        (self.tls_dir / "server.crt").write_bytes(server.cert_pem)
        _write_private(self.tls_dir / "server.key", server.key_pem)

    def mint_client_cert(
        self, cn: str, *, ca: CertificateAuthority | None = None, **issue_kwargs: object
    ) -> ClientCredentials:
        """Issue a client certificate for ``cn`` (from the broker's CA unless ``ca`` is given)."""
        authority = ca or self.ca
        issued = authority.issue(cn, **issue_kwargs)  # type: ignore[arg-type]
        folder = self.base_dir / "clients" / f"{cn}-{issued.certificate.serial_number:x}"
        folder.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = folder / "tls.crt", folder / "tls.key"
        cert_path.write_bytes(issued.cert_pem)
        _write_private(key_path, issued.key_pem)
        return ClientCredentials(cn, cert_path, key_path, self.ca_pem_path, issued)

    def ssl_context(self, credentials: ClientCredentials | None) -> ssl.SSLContext:
        """A client-side TLS context that verifies the broker and presents ``credentials`` (if any)."""
        context = ssl.create_default_context(cafile=str(self.ca_pem_path))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if credentials is not None:
            context.load_cert_chain(str(credentials.cert_path), str(credentials.key_path))
        return context

    def pika_parameters(self, credentials: ClientCredentials | None, vhost: str, **kwargs: object):  # noqa: ANN201
        import pika
        from pika.credentials import ExternalCredentials

        options = dict(connection_attempts=1, socket_timeout=5, blocked_connection_timeout=30, heartbeat=30)
        options.update(kwargs)
        return pika.ConnectionParameters(
            host=self.host,
            port=self.amqps_port,
            virtual_host=vhost,
            ssl_options=pika.SSLOptions(self.ssl_context(credentials), server_hostname="localhost"),
            credentials=ExternalCredentials(),
            **options,
        )

    # -- lifecycle ------------------------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        base = self.base_dir
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_")) and key not in {"HOME"}
        }
        env.update(
            HOME=str(base / "home"),
            RABBITMQ_NODENAME=self.full_node_name,
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_LOGS=str(self.log_path),
            RABBITMQ_PID_FILE=str(base / "node.pid"),
            RABBITMQ_DIST_PORT=str(self.ports.distribution),
            RABBITMQ_CTL_DIST_PORT_MIN=str(self.ports.ctl_dist_min),
            RABBITMQ_CTL_DIST_PORT_MAX=str(self.ports.ctl_dist_min),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_PORT=str(self.ports.epmd),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _write_config(self) -> None:
        base = self.base_dir
        for folder in ("home", "mnesia", "log"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        cookie = base / "home" / ".erlang.cookie"
        if not cookie.exists():
            _write_private(cookie, secrets.token_hex(20).encode())
        (base / "rabbitmq-env.conf").write_text("# intentionally empty: never read /etc/rabbitmq\n")
        (base / "advanced.config").write_text("[].\n")
        (base / "enabled_plugins").write_text("[" + ",".join(PLUGINS) + "].\n")
        tls = self.tls_dir
        config = f"""\
listeners.tcp = none
listeners.ssl.default = {self.host}:{self.ports.amqps}
ssl_options.cacertfile = {tls / 'ca.crt'}
ssl_options.certfile = {tls / 'server.crt'}
ssl_options.keyfile = {tls / 'server.key'}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
ssl_cert_login_from = common_name
auth_mechanisms.1 = EXTERNAL
management.tcp.ip = {self.host}
management.tcp.port = {self.ports.management}
default_user = {self.admin_user}
default_pass = {self.admin_password}
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
loopback_users = none
vm_memory_high_watermark.absolute = {self.memory_limit}
disk_free_limit.absolute = {self.disk_free_limit}
collect_statistics_interval = 1000
log.file.level = info
log.console = false
"""
        (base / "rabbitmq.conf").write_text(config)

    def start(self, timeout: float = 90.0) -> LocalBroker:
        ensure_installed()
        self._ensure_tls()
        self._write_config()
        self.console_log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.console_log_path, "ab") as console:
            self._process = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self._environment(),
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: self._management_ready() and port_open(self.amqps_port),
                timeout=timeout,
                what=f"RabbitMQ node {self.full_node_name}",
                process=self._process,
                log=self.console_log_path if not self.log_path.exists() else self.log_path,
            )
        except ComponentFailed as failure:
            self.stop()
            raise ComponentFailed(f"{failure}\n--- console ---\n{log_tail(self.console_log_path)}") from None
        return self

    def _management_ready(self) -> bool:
        return self.management_get("/api/overview") is not None

    def management_get(self, path: str) -> object | None:
        token = base64.b64encode(f"{self.admin_user}:{self.admin_password}".encode()).decode()
        request = urllib.request.Request(self.management_url + path, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl`` against this node (e.g. to raise a disk alarm in fault tests)."""
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.full_node_name, *args],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def set_disk_free_limit(self, limit: str | int) -> None:
        """Change the disk-free limit of the running node (bytes, or with a unit: ``50MB``); it applies at once."""
        self.ctl("set_disk_free_limit", str(limit))

    def restart(self, *, kill: bool = False, timeout: float = 90.0) -> LocalBroker:
        """Stop the node (SIGTERM, or SIGKILL to simulate a crash) and start it again on the same ports with the
        same data: durable queues and the persistent messages they held come back."""
        self.stop(kill=kill)
        return self.start(timeout=timeout)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the node; its data directory stays, so :meth:`start` brings back durable queues."""
        if kill and self._process is not None and self._process.poll() is None:
            from .processes import kill as kill_process

            kill_process(self._process)
        else:
            terminate(self._process, grace=30)
        self._process = None
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        """Stop this node's private epmd; it may still list the node for a moment after a hard kill."""
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        env = self._environment()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            for command in ([epmd, "-stop", self.node_name], [epmd, "-kill"]):
                subprocess.run(command, env=env, capture_output=True, timeout=10, check=False)


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, 0o400 if path.name == ".erlang.cookie" else 0o600)
