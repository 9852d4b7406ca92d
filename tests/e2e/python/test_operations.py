"""Operating the binary: Prometheus metrics scraped and parsed by the Prometheus Python client's
OpenMetrics parser, and the health endpoints, Redis readiness included (a redis-server of the
test's own, stopped mid-test).
"""

import queue
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import socketio
from e2e import start_socketlet
from prometheus_client.openmetrics.parser import text_string_to_metric_families

WAIT_S = 15.0


def http_get(url):
    """GET ``url``: (status, body text); error statuses are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=WAIT_S) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def scrape(url):
    """GETs ``url``/metrics and parses it: {(sample name, frozenset of labels): value}."""
    status, body = http_get(f"{url}/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what):
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_metrics_count_clients_packets_and_jobs():
    binary = start_socketlet(
        "python",
        label="metrics",
        args=("--metrics", "--vm-time-scale", "0.02", "--vm-failure-rate", "0"),
    )
    clients = []
    try:
        responses = queue.Queue()
        for transports in (["websocket"], ["polling"]):
            client = socketio.Client(reconnection=False)
            client.on("vm_response", responses.put)
            client.connect(binary.url, transports=transports, wait_timeout=WAIT_S)
            clients.append(client)
        catalog = clients[0].call("list_vms", timeout=WAIT_S)
        web = next(vm for vm in catalog["vms"] if vm["name"] == "web-1")
        clients[0].call("open_vms", [web], timeout=WAIT_S)
        responses.get(timeout=WAIT_S)

        # The client that opened a VM is disconnected by the server once it has the result.
        samples = wait_until(
            lambda: (
                s
                if value(s := scrape(binary.url), "socketlet_connections", transport="websocket", protocol="4") == 0
                else None
            ),
            "the server to disconnect the client that had its result",
        )
        assert value(samples, "socketlet_connections", transport="polling", protocol="4") == 1
        assert value(samples, "socketlet_handshakes_total") == 2
        assert value(samples, "socketlet_sockets", namespace="/") == 1
        assert value(samples, "socketlet_socket_disconnects_total", reason="server namespace disconnect") == 1
        assert value(samples, "socketlet_packets_received_total") >= 2  # list_vms, open_vms
        assert value(samples, "socketlet_received_bytes_total") > 0
        assert value(samples, "socketlet_packets_sent_total") >= 4
        assert value(samples, "socketlet_jobs_done_total") == 1
        assert value(samples, "socketlet_jobs_running") == 0
        assert value(samples, "socketlet_jobs_failed_total") == 0

        clients[1].disconnect()
        samples = wait_until(
            lambda: (
                s
                if value(s := scrape(binary.url), "socketlet_connections", transport="polling", protocol="4") == 0
                else None
            ),
            "the polling client to be counted out",
        )
        closes = {
            dict(labels)["reason"]: v
            for (name, labels), v in samples.items()
            if name == "socketlet_connection_closes_total"
        }
        assert sum(closes.values()) == 2, closes

        status, body = http_get(f"{binary.url}/health/live")
        assert (status, body) == (200, "ok\n")
        status, body = http_get(f"{binary.url}/health/ready")
        assert (status, body) == (200, "ready\n")
    finally:
        for client in clients:
            if client.connected:
                client.disconnect()
        assert binary.terminate() == 0


def test_metrics_are_private_with_an_api_address_and_off_by_default():
    api_port = free_port()
    binary = start_socketlet(
        "python",
        label="metrics-private",
        args=("--metrics", "--api-key", "k", "--api-addr", f"127.0.0.1:{api_port}"),
    )
    try:
        assert http_get(f"{binary.url}/metrics")[0] == 404
        samples = scrape(f"http://127.0.0.1:{api_port}")
        assert value(samples, "socketlet_handshakes_total") == 0
        assert http_get(f"http://127.0.0.1:{api_port}/health/ready")[0] == 200
    finally:
        binary.stop()
    binary = start_socketlet("python", label="metrics-off")
    try:
        assert http_get(f"{binary.url}/metrics")[0] == 404
        assert http_get(f"{binary.url}/health/live")[0] == 200
    finally:
        binary.stop()


@pytest.fixture
def redis_server(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, "redis-server to listen")
    yield proc, f"redis://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


def test_ready_follows_redis(redis_server):
    proc, url = redis_server
    binary = start_socketlet("python", label="ready-redis", args=("--redis", url, "--metrics"))
    try:
        assert http_get(f"{binary.url}/health/ready") == (200, "ready\n")
        samples = wait_until(
            lambda: s if value(s := scrape(binary.url), "socketlet_redis_subscribed") == 1 else None,
            "the Redis subscription",
        )
        assert value(samples, "socketlet_redis_publishing") == 1
        assert value(samples, "socketlet_redis_publish_queue") == 0
        proc.kill()
        proc.wait(timeout=5)
        status, body = wait_until(
            lambda: (r if (r := http_get(f"{binary.url}/health/ready"))[0] == 503 else None),
            "readiness to fail with Redis gone",
        )
        assert body.startswith("not ready: redis: "), body
        wait_until(
            lambda: value(scrape(binary.url), "socketlet_redis_subscribed") == 0,
            "the metrics to see the subscription lost",
        )
        # Alive all the same: a restart would not bring Redis back.
        assert http_get(f"{binary.url}/health/live")[0] == 200
    finally:
        assert binary.terminate() == 0
