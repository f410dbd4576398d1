"""A local Apache Kafka in KRaft mode, run from the official jars that Maven resolves.

Each node is broker and controller at once. Broker ``i`` (0-based) listens for clients on
``port + i`` and for its controller quorum on ``port + 100 + i``; storage is formatted on first start.
With ``kafka_security="sasl_ssl"`` the client port speaks TLS with SCRAM-SHA-512 only, and the brokers
talk to each other on a plaintext listener at ``port + 200 + i`` bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..._errors import ServiceError, ServiceNotRunning
from ..settings import ServiceSettings
from ._credentials import Credentials
from ._process import ManagedProcess
from ._tls import ensure_tls

CONTROLLER_PORT_OFFSET = 100
INTERNAL_PORT_OFFSET = 200  # plaintext listener between brokers when clients must use SASL_SSL

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
"""


def _pom() -> Path:
    """The pom.xml that names the Kafka version and its logging backend."""
    with resources.as_file(resources.files("streamnlp.dev.services") / "kafka-pom.xml") as path:
        return Path(path)


def kafka_version() -> str:
    """The Apache Kafka version the pom pins."""
    text = _pom().read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def resolve_jars(cache_dir: Path) -> Path:
    """Resolve the broker's jars with Maven into ``cache_dir`` once; return the folder of jars."""
    pom = _pom()
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    libs = cache_dir / f"kafka-{kafka_version()}-{digest}" / "libs"
    stamp = libs.parent / "resolved"
    if stamp.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is needed to resolve the Kafka jars: apt-get install -y maven")
    if shutil.which("java") is None:
        raise ServiceError("Java is needed to run Kafka: apt-get install -y openjdk-17-jre-headless")
    print(f"resolving Apache Kafka {kafka_version()} jars with Maven into {libs} ...", flush=True)
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [
        mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"Maven could not resolve the Kafka jars:\n{result.stdout}\n{result.stderr}")
    stamp.write_text(f"{kafka_version()}\n")
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, as Kafka writes them."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    root: Path

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            name=f"kafka-{self.node_id}",
            pid_file=self.root / "kafka.pid",
            log_file=self.root / "kafka.out",
            marker=str(self.root / "server.properties"),
        )


class KafkaCluster:
    """One or more local KRaft nodes that together form one cluster."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.root = (settings.state_dir / "kafka").resolve()
        self.nodes = [
            KafkaNode(
                node_id=i + 1,
                port=settings.kafka_port + i,
                controller_port=settings.kafka_port + CONTROLLER_PORT_OFFSET + i,
                root=self.root / f"node-{i + 1}",
            )
            for i in range(settings.kafka_brokers)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    @property
    def secure(self) -> bool:
        return self.settings.kafka_security.lower() == "sasl_ssl"

    def probe_port(self, node: KafkaNode) -> int:
        """A plaintext port of ``node`` to ask for metadata: the client port, or the internal one."""
        return node.port + INTERNAL_PORT_OFFSET if self.secure else node.port

    def _listeners(self, node: KafkaNode) -> dict[str, object]:
        if not self.secure:
            return {
                "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        tls = ensure_tls(self.root / "tls")
        internal = node.port + INTERNAL_PORT_OFFSET
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{internal},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{internal}",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": tls.keystore,
            "ssl.keystore.password": tls.keystore_password,
            "ssl.key.password": tls.keystore_password,
        }  # fmt: skip

    @property
    def ca_file(self) -> Path:
        """The CA that signed the brokers' certificate (sasl_ssl only)."""
        return self.root / "tls" / "ca.crt"

    def _write_config(self, node: KafkaNode) -> Path:
        n = len(self.nodes)
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.nodes)
        replication = min(3, n)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            **self._listeners(node),
            "log.dirs": node.root / "data",
            "num.partitions": 4,
            "default.replication.factor": replication,
            "min.insync.replicas": 2 if n >= 3 else 1,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": 2 if n >= 3 else 1,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": 2 if n >= 3 else 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            "log.retention.hours": 24,
        }
        path = node.root / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (node.root / "log4j2.properties").write_text(_LOG4J2.format(log=node.root / "server.log"))
        return path

    def _java(self, node: KafkaNode, libs: Path, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.settings.kafka_heap}",
            f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.root / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.root}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, libs: Path) -> None:
        """Format every node's storage with one cluster id (first start only)."""
        cluster_id_file = self.root / "cluster.id"
        layout_file = self.root / "brokers"
        if layout_file.exists() and int(layout_file.read_text()) != len(self.nodes):
            raise ServiceError(
                f"{self.root} holds a {layout_file.read_text().strip()}-broker cluster, not "
                f"{len(self.nodes)}: run `streamnlp services down`, then delete {self.root} "
                "or choose another STREAMNLP_STATE_DIR"
            )
        if not cluster_id_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            cluster_id_file.write_text(new_cluster_id())
            layout_file.write_text(f"{len(self.nodes)}\n")
        cluster_id = cluster_id_file.read_text().strip()
        for node in self.nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            config = self._write_config(node)
            if (node.root / "data" / "meta.properties").exists():
                continue
            # one argument with "=": a random id may start with "-", which a separate argument would
            # make look like an option (seen: "argument --cluster-id/-t: expected one argument")
            cmd = self._java(
                node, libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                "-c", str(config), "--ignore-formatted",
            )  # fmt: skip
            if self.secure:
                creds = Credentials.load_or_create(self.settings.state_dir)
                scram = f"SCRAM-SHA-512=[name={creds.kafka_username},password={creds.kafka_password}]"
                cmd += ["--add-scram", scram]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> bool:
        """Start every node that is not running; False when all were already up (a no-op)."""
        if all(node.process.is_alive() for node in self.nodes):
            return False
        libs = resolve_jars(self.settings.cache_dir)
        self._format(libs)
        started = {node.node_id: self.start_node(node.node_id, libs=libs, wait=False) for node in self.nodes}
        self.wait_ready({node_id: proc for node_id, proc in started.items() if proc is not None})
        return True

    def start_node(
        self, node_id: int, *, libs: Path | None = None, wait: bool = True
    ) -> subprocess.Popen[bytes] | None:
        """Start one node unless it runs (failover tests bring a killed broker back with it)."""
        node = self.nodes[node_id - 1]
        if node.process.is_alive():
            return None
        libs = libs or resolve_jars(self.settings.cache_dir)
        config = self._write_config(node)
        proc = node.process.start(self._java(node, libs, "kafka.Kafka", str(config)))
        if wait:
            self.wait_ready({node_id: proc})
        return proc

    def stop(self) -> list[int]:
        """Stop every node of ours, however many were started; the ids of those that were running."""
        on_disk = {int(path.name.split("-", 1)[1]) for path in self.root.glob("node-*")}
        nodes = [self.node(node_id) for node_id in sorted(on_disk | {node.node_id for node in self.nodes})]
        # Signal all first: stopped one by one, the last nodes lose their controller quorum and wait
        # for it until they are killed.
        running = [node for node in nodes if node.process.signal(signal.SIGTERM)]
        for node in nodes:
            node.process.stop(timeout=60)
        return [node.node_id for node in running]

    def node(self, node_id: int) -> KafkaNode:
        """Node ``node_id`` (1-based), also one beyond the configured count found on disk."""
        if node_id <= len(self.nodes):
            return self.nodes[node_id - 1]
        port = self.settings.kafka_port + node_id - 1
        return KafkaNode(node_id, port, port + CONTROLLER_PORT_OFFSET, self.root / f"node-{node_id}")

    def running_nodes(self) -> list[int]:
        return [node.node_id for node in self.nodes if node.process.is_alive()]

    def wait_ready(self, started: dict[int, subprocess.Popen[bytes]] | None = None) -> None:
        """Block until each running node answers a metadata request on its own port, naming itself.

        Asking each node directly matters after a restart: the others keep listing a node for a while
        after it died. ``started`` are the processes just launched: if one dies, waiting is pointless.
        """
        deadline = time.monotonic() + self.settings.start_timeout
        # A process just started may not show its command line yet: count it as running regardless.
        waiting = [node for node in self.nodes if node.node_id in (started or {}) or node.process.is_alive()]
        last_error: Exception | None = None
        while waiting and time.monotonic() < deadline:
            for node_id, proc in (started or {}).items():
                if proc.poll() is not None:
                    node = self.nodes[node_id - 1]
                    raise ServiceError(
                        f"Kafka node {node_id} exited during start-up; see {node.root / 'server.log'}. "
                        f"Its output ends with:\n{node.process.log_tail()}"
                    )
            node = waiting[0]
            try:
                if node.node_id in asyncio.run(describe_brokers(f"127.0.0.1:{self.probe_port(node)}")):
                    waiting.pop(0)
                    continue
                last_error = ServiceNotRunning(f"node {node.node_id} is not registered yet")
            except Exception as exc:
                last_error = exc
            time.sleep(0.5)
        if waiting:
            raise ServiceError(
                f"Kafka node {waiting[0].node_id} did not answer within "
                f"{self.settings.start_timeout:.0f}s: {last_error}"
            )

    def version_from_log(self) -> str | None:
        """The version the running broker reports about itself in its log."""
        for node in self.nodes:
            try:
                for line in (node.root / "server.log").read_text(errors="replace").splitlines():
                    if "Kafka version:" in line:
                        return line.split("Kafka version:", 1)[1].split()[0]
            except OSError:
                continue
        return None


async def describe_brokers(bootstrap_servers: str, *, timeout_ms: int = 5000) -> set[int]:
    """The ids of the brokers that a metadata request to ``bootstrap_servers`` returns."""
    from aiokafka import AIOKafkaClient  # imported here: `services status` should not pay for it

    # While a broker starts, refused connections are expected: keep the client's error log quiet.
    log = logging.getLogger("aiokafka")
    level = log.level
    log.setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return {broker.nodeId for broker in metadata.brokers()}
    finally:
        await client.close()
        log.setLevel(level)


_HOW_TO_START = "start it with `streamnlp services up` (or run `make test`, which starts and stops it)"


def require_kafka(bootstrap_servers: str) -> set[int]:
    """The broker ids behind ``bootstrap_servers``; :class:`ServiceNotRunning` saying how to start one."""
    try:
        return asyncio.run(describe_brokers(bootstrap_servers, timeout_ms=3000))
    except Exception as exc:
        raise ServiceNotRunning(
            f"no Kafka broker answers at {bootstrap_servers} ({exc}): {_HOW_TO_START}"
        ) from exc
