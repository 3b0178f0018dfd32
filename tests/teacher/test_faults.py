import pytest

from teacher.backends.faults import FaultInjectingBackend
from teacher.backends.scripted import ScriptedBackend
from teacher.client import BACKEND_ERROR, MALFORMED_OUTPUT, Job, Teacher
from teacher.parse import parse_situations
from teacher.prompts import situation_request


def jobs(n: int) -> list[Job]:
    return [
        Job(
            situation_request(f"Passage {i}: he forgave the debt of his neighbour.", "C017", max_new_tokens=32),
            parse=parse_situations,
            ref=str(i),
        )
        for i in range(n)
    ]


def test_the_same_seed_injects_the_same_faults():
    runs = []
    for _ in range(2):
        backend = FaultInjectingBackend(ScriptedBackend(), share=0.3, seed=7, kinds=("timeout", "garbage"))
        responses = backend.generate([job.request for job in jobs(40)])
        runs.append([(r.error, r.text) for r in responses])
    assert runs[0] == runs[1]
    assert 0 < sum(1 for error, _ in runs[0] if error) < 40


def test_every_fault_is_retried_or_quarantined_and_the_counts_reconcile():
    faulty = FaultInjectingBackend(ScriptedBackend(), share=0.4, seed=3)
    teacher = Teacher(faulty, None, batch_size=4, max_retries=2)
    results = teacher.run(jobs(60))
    c = teacher.stats.counters
    quarantined = [r for r in results if not r.ok]
    assert {r.quarantine for r in quarantined} <= {MALFORMED_OUTPUT, BACKEND_ERROR}
    assert len(quarantined) == c.quarantined
    assert sum(1 for r in results if r.ok) + len(quarantined) == 60  # nothing lost
    assert faulty.requests_seen == c.backend_calls  # every call reached the fault wrapper once
    # timeouts are per request; an injected exception fails its whole batch (each request an error)
    assert c.backend_errors >= faulty.injected["timeout"] + faulty.injected["exception"]
    assert c.parse_failures == faulty.injected["garbage"]  # scripted answers always parse; no scoring jobs here
    assert all(r.attempts <= 3 for r in results)
    assert sum(faulty.injected.values()) > 10


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        FaultInjectingBackend(ScriptedBackend(), kinds=("meteor",))
    with pytest.raises(ValueError):
        FaultInjectingBackend(ScriptedBackend(), share=1.5)
