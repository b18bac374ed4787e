"""A real two-node Ray cluster on loopback addresses, for tests (see DEVELOPERS.md).

Ray rewrites 127.0.0.1 to the machine's network address, so the head runs on 127.0.0.2 and the
second node on 127.0.0.3. Both run `ray start --block` in their own process group, so stopping
the cluster never touches another Ray instance (`ray stop` would kill every Ray on the machine).
Every port is chosen explicitly: two nodes on one machine would otherwise both want the defaults.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port(host: str, low: int = 20000, high: int = 40000) -> int:
    """A free TCP port outside Ray's worker range (10002-19999)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if low <= port < high:
            return port
    import random

    return random.randrange(low, high)


def _node_ports(ip: str) -> list[str]:
    names = [
        "--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
    ]
    args = []
    for name in names:
        args += [name, str(free_port(ip))]
    return args


def _wait_nodes(address: str, n: int, env: dict, procs: list, timeout: float = 90) -> list[dict]:
    """Poll the cluster from a separate process until n nodes are alive."""
    code = (
        "import ray, json, logging; ray.init(address=%r, _node_ip_address='127.0.0.2', logging_level=logging.ERROR);"
        "print(json.dumps([{'id': x['NodeID'], 'ip': x['NodeManagerAddress'], 'alive': x['Alive'], 'res': x['Resources']} for x in ray.nodes()]))"
    ) % address
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"`{' '.join(dead[0].args[:3])}` exited with {dead[0].returncode}; see the ray-*.log files")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        if res.returncode == 0:
            nodes = [x for x in json.loads(res.stdout.strip().splitlines()[-1]) if x["alive"]]
            if len(nodes) >= n:
                return nodes
        last = res.stderr[-1500:]
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not get {n} nodes: {last}")


def _stop(procs: list, logs: list) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    for p in procs:
        try:  # anything the node left in its process group (raylet, gcs, workers)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for log in logs:
        log.close()


def _start(tmp: Path, token: str, attempt: int, procs: list, logs: list) -> tuple[str, list[dict]]:
    port = free_port("127.0.0.2")
    address = f"127.0.0.2:{port}"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    head_cmd = [
        RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.2", f"--port={port}",
        "--num-cpus=1", '--resources={"head_node": 1}', "--include-dashboard=false", "--disable-usage-stats",
        *_node_ports("127.0.0.2"),
    ]
    worker_cmd = [
        RAY, "start", "--block", f"--address={address}", "--node-ip-address=127.0.0.3",
        "--num-cpus=1", '--resources={"second_node": 1}', *_node_ports("127.0.0.3"),
    ]
    for name, cmd in (("head", head_cmd), ("worker", worker_cmd)):
        log = open(tmp / f"ray-{name}-{attempt}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        if name == "head":
            _wait_nodes(address, 1, env, procs)
    return address, _wait_nodes(address, 2, env, procs)


@contextmanager
def two_node_cluster(tmp: Path, token: str, attempts: int = 2):
    """Yield (address, nodes) of a head on 127.0.0.2 and a worker node on 127.0.0.3, one CPU each,
    with Ray's token authentication on (the token is given, so no file in ~/.ray is involved).

    Starting is tried again with fresh ports when a node exits during start-up: on a loaded
    machine a port chosen free can be taken before Ray binds it (the ray-*-N.log files say)."""
    for attempt in range(1, attempts + 1):
        procs: list = []
        logs: list = []
        try:
            address, nodes = _start(tmp, token, attempt, procs, logs)
        except RuntimeError:
            _stop(procs, logs)
            if attempt == attempts:
                raise
            continue
        try:
            yield address, nodes
        finally:
            _stop(procs, logs)
        return
