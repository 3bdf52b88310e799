"""Peak resident memory of a server worker under 8 concurrent maximum-size requests, per contract.

Part of ``make bench``; alone: ``python -m tests.bench.run memory``. For each contract a fresh gateway (the
default settings: 2 workers of 8 threads, SQLite, soap.max_large_requests per worker, no delivery) is warmed
with small requests; the idle RSS of each worker is the baseline. Then 8 clients send the largest request
the contract allows at once (RegisterCase: 5 attachments of 20 MiB; UpdateCase: 10, each to a case of its
own) and the figure is the highest VmHWM of a worker (its peak resident set, reset after the warm-up through
/proc/PID/clear_refs), with every answer counted (OK, or VP009 when a request found no free slot in time).
A last run gives RegisterCase as many slots as clients: what the memory would be without the bound.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from contracts import load_registry
from gateway.certs import ExamplePki
from gateway.config import SoapConfig
from gateway.soap.limits import BodyLimits
from tests.bench.proc import cmdline, tree
from tests.integration.harness import ROOT, GatewayProcess
from tests.large_requests import MiB, Request, base64_text, pdf_content, register_case, update_case

CLIENTS = 8
PATH = "/complaintsandfeedback/RegisterCase/1/rivtabp21"
FAULT_CODE = "{urn:riv-application:supportprocess:logistics:complaintsandfeedback:gateway:fault:1}code"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _server_workers(supervisor: int) -> list[int]:
    """The gunicorn workers of a gateway: under ``serve`` (the supervisor), the gunicorn master and its
    workers run ``-m gateway.server``; the workers are those without such a child."""
    serving = [p for p in tree(supervisor) if " -m gateway.server " in f"{cmdline(p)} "]
    workers = [p for p in serving if not any(c in serving for c in tree(p)[1:])]
    if not workers:
        raise RuntimeError(f"no gunicorn worker under process {supervisor}")
    return workers


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux 4.0+)
        return True
    except OSError:
        return False


class _Sized:
    def __init__(self, request: Request) -> None:
        self._stream = request.stream()
        self._length = request.length

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)


def _session(pki: ExamplePki, who: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_cert)
    identity = pki.clients[who]
    session.cert = (str(identity.cert), str(identity.key))
    return session


def _outcome(response: requests.Response) -> str:
    root = etree.fromstring(response.content)
    code = root.findtext(f".//{FAULT_CODE}")
    return code or (root.findtext(".//{*}resultCode") or f"HTTP {response.status_code}")


def _post(pki: ExamplePki, url: str, who: str, request: Request) -> tuple[str, float]:
    started = time.perf_counter()
    with _session(pki, who) as session:
        response = session.post(url, data=_Sized(request), headers={"Content-Type": "text/xml"}, timeout=600)
    return _outcome(response), time.perf_counter() - started


def _concurrently(jobs: list[Callable[[], tuple[str, float]]]) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = [("not answered", 0.0)] * len(jobs)

    def run(index: int) -> None:
        started = time.perf_counter()
        try:
            results[index] = jobs[index]()
        except Exception as exc:  # noqa: BLE001 - counted as an outcome
            results[index] = (type(exc).__name__, time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def bench_memory(
    pki: ExamplePki, work: Path, figures: list[dict[str, Any]], resources: dict[str, Any]
) -> None:
    soap = SoapConfig()
    limits = BodyLimits.from_config(soap, load_registry())
    resources["request_limits"] = {
        "largest_body_bytes": limits.describe(),
        "max_envelope_bytes": soap.max_envelope_bytes,
        "max_attachment_bytes": soap.max_attachment_bytes,
        "max_large_requests_per_worker": soap.max_large_requests,
        "large_request_wait_ms": soap.large_request_wait_ms,
    }
    text = base64_text(pdf_content(soap.max_attachment_bytes))
    # (contract, attachments, large-request slots per worker): the defaults, then RegisterCase with as many
    # slots as clients, to show what the bound saves (UpdateCase unbounded would need ~8 GiB in one worker)
    runs = [
        ("RegisterCase", 5, soap.max_large_requests),
        ("UpdateCase", 10, soap.max_large_requests),
        ("RegisterCase", 5, CLIENTS),
    ]
    for operation, attachments, slots in runs:
        workdir = work / f"memory-{operation}-{slots}"
        workdir.mkdir()
        gateway = GatewayProcess(
            pki,
            f"sqlite:///{workdir / 'gateway.db'}",
            workdir,
            threads=8,
            catalogue=ROOT / "examples" / "routing.yaml",
            extra={"outbox": {"run_in_serve": False}, "soap": {"max_large_requests": slots}},
        )
        with gateway:
            assert gateway.process is not None
            url = gateway.url + PATH
            # warm-up: every thread builds its parser and validators; UpdateCase needs cases to update
            cases = [f"MEM-{operation[:3]}-{n}" for n in range(4 * CLIENTS)]
            warm = _concurrently([partial(_post, pki, url, "1177", register_case(case_id=c)) for c in cases])
            assert all(outcome == "OK" for outcome, _ in warm), warm
            time.sleep(1)
            workers = _server_workers(gateway.process.pid)
            idle = {p: _status_kib(p, "VmRSS") / 1024 for p in workers}
            exact = all(_reset_peak(p) for p in workers)
            if operation == "RegisterCase":
                largest = [
                    register_case(attachments=attachments, text=text, case_id=f"MEM-MAX-{n}")
                    for n in range(CLIENTS)
                ]
                jobs = [partial(_post, pki, url, "1177", r) for r in largest]
            else:
                largest = [update_case(c, attachments=attachments, text=text) for c in cases[:CLIENTS]]
                jobs = [partial(_post, pki, url, "deviation-a", r) for r in largest]
            request_bytes = largest[0].length
            started = time.perf_counter()
            answers = _concurrently(jobs)
            seconds = time.perf_counter() - started
            peaks = {p: _status_kib(p, "VmHWM") / 1024 for p in workers}
        peak = max(peaks.values())
        baseline = max(idle.values())
        counted = Counter(outcome for outcome, _ in answers)
        bound = "" if slots == soap.max_large_requests else f", {slots} slots"
        log(
            f"memory {operation}{bound}: {CLIENTS} x {request_bytes / MiB:.0f} MiB at once, worker peak "
            f"{peak:.0f} MiB (idle {baseline:.0f} MiB), answers {dict(counted)}, {seconds:.1f} s"
        )
        figures.append(
            {
                "name": f"worker peak RSS, {CLIENTS} x largest {operation}{bound}",
                "large_request_slots_per_worker": slots,
                "value": round(peak, 1),
                "baseline": round(baseline, 1),
                "ratio": round(peak / baseline, 2),
                "unit": "MiB",
                "request_bytes": request_bytes,
                "attachments": attachments,
                "per_worker_peak_mib": {str(p): round(v, 1) for p, v in peaks.items()},
                "per_worker_idle_mib": {str(p): round(v, 1) for p, v in idle.items()},
                "peak_reset_after_warm_up": exact,
                "answers": dict(counted),
                "answers_in_order": sorted([round(s, 1), outcome] for outcome, s in answers),
                "wall_seconds": round(seconds, 1),
            }
        )
