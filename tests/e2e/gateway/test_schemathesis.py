"""schemathesis against the OpenAPI document the binary serves (GET /api/openapi.json): every
endpoint, generated valid and invalid bodies, every check (no 5xx, each answer's status, content
type and body as the document says, invalid bodies refused, the key required, methods other
than POST refused with Allow). Bounded: SCHEMATHESIS_MAX_EXAMPLES per endpoint (default 100) and a
fixed seed (SCHEMATHESIS_SEED, default 1), so that CI runs the same cases every time; the report
is written to tests/e2e/.artifacts/gateway-schemathesis.txt.

Sockets of users are connected first (through the backend's connect hook), so that
fetch_sockets, rooms and acks answer with real data; the generated calls may disconnect them.
"""

import os
import subprocess
import sys
from pathlib import Path


from conftest import API_KEY, Gateway
from e2e import ARTIFACTS_DIR

MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "100")
SEED = os.environ.get("SCHEMATHESIS_SEED", "1")
#: The whole run's limit, in seconds.
LIMIT_S = 240


def schemathesis_cli():
    for name in ("schemathesis", "st"):
        path = Path(sys.executable).parent / name
        if path.exists():
            return path
    raise AssertionError(f"schemathesis is not installed next to {sys.executable} (requirements.txt)")


def test_the_api_matches_its_openapi_document(tmp_path):
    gateway = Gateway(nodes=1)
    try:
        for i in range(3):
            client, _ = gateway.connect(token=f"token-schema{i}")
            gateway.api().join(["lobby", f"team{i % 2}"], sids=client.get_sid())
        assert len(gateway.api().fetch_sockets()) == 3
        url = gateway.nodes[0].url
        command = [
            schemathesis_cli(),
            "run",
            f"{url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {API_KEY}",
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--workers",
            "1",
            "--no-color",
        ]
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # In a temporary directory: nothing of schemathesis's (reports, caches) lands in the repo.
        proc = subprocess.run(
            [str(c) for c in command],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LIMIT_S,
        )
        report = ARTIFACTS_DIR / "gateway-schemathesis.txt"
        report.write_text(f"$ {' '.join(map(str, command))}\n{proc.stdout}\n{proc.stderr}")
        summary = proc.stdout[-6000:]
        assert proc.returncode == 0, (
            f"schemathesis found disagreements (exit {proc.returncode}); full report: {report}\n"
            f"{summary}\n{proc.stderr[-2000:]}"
        )
        assert "7/7" in proc.stdout, f"not every endpoint was tested:\n{summary}"
        # The server answered throughout (no crash).
        assert gateway.nodes[0].proc.poll() is None
    finally:
        gateway.close()
