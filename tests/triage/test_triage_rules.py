"""Routing rules validated with key and reason, matching with the reason a series is not routed, completion by
quiet time or expected count, the queue's order, cancel and recovery; and a corrupt instance failing only its
series' job."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pydicom
import pytest

from workstation.core.roles import Role, User
from workstation.core.site import ConfigError, parse_site_config
from workstation.routing.completion import CompletionTracker
from workstation.routing.matching import SeriesFacts, route
from workstation.routing.rules import parse_routing
from workstation.services.config import load_site_config
from workstation.services.triage import TriageService
from workstation.store.database import Identity, Store
from workstation.store.triage_queue import CANCELLED, DONE, FAILED, QUEUED, RUNNING, TriageQueue

RULE = {"name": "chest-ct", "modality": "CT", "models": ["nodule-detector"]}


@pytest.mark.parametrize(("routing", "key", "reason"), [
    ({"rules": [{**RULE, "models": []}]}, "routing.rules[0].models", "at least one model"),
    ({"rules": [{**RULE, "priority": 12}]}, "routing.rules[0].priority", "from 0 (lowest) to 9"),
    ({"rules": [{**RULE, "slices": [50, 10]}]}, "routing.rules[0].slices", "min <= max"),
    ({"rules": [{**RULE, "thickness_mm": "thin"}]}, "routing.rules[0].thickness_mm", "[min, max]"),
    ({"rules": [{**RULE, "calling_ae": ["A\\B"]}]}, "routing.rules[0].calling_ae", "not an AE title"),
    ({"rules": [RULE, RULE]}, "routing.rules[1].name", "duplicate"),
    ({"rules": [{**RULE, "colour": "red"}]}, "routing.rules[0].colour", "unknown setting"),
    ({"quiet_s": 0}, "routing.quiet_s", "above 0"),
    ({"rules": [{**RULE, "models": ["bad model"]}]}, "routing.rules[0].models", "NAME or NAME:VERSION"),
])
def test_a_bad_rule_is_refused_with_its_key_and_reason(routing, key, reason):
    with pytest.raises(ConfigError) as error:
        parse_routing(routing)
    assert error.value.key == key and reason in error.value.reason


def test_the_site_file_is_checked_at_start(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[alerts]\n"nodule-detector" = 1.5\n')
    with pytest.raises(ConfigError, match=r"site.toml: alerts.nodule-detector: must be a calibrated score"):
        load_site_config(site)
    site.write_text('[[routing.rules]]\nname = "x"\nmodality = "CT"\nmodels = ["nodule-detector"]\n'
                    '[worklist]\nshow_at_start = true\n')
    config = load_site_config(site)
    assert config.triage["worklist"] == {"show_at_start": True}


def test_matching_takes_the_first_rule_and_says_why_none_matched():
    rules = parse_routing({"rules": [
        {"name": "ct-from-er", "calling_ae": "ER_CT", "modality": ["CT"], "models": ["a"], "priority": 9},
        {"name": "thin-chest", "modality": "ct", "body_part": "chest", "series_description": "*lung*|*chest*",
         "study_description": "CT*", "slices": [10, 600], "thickness_mm": [0.5, 3], "models": ["nodule-detector"]},
    ]}).rules
    chest = SeriesFacts("CT01", "CT", "CHEST", "Chest CT phantom 2.5 mm", "CT CHEST", 120, 2.5)
    assert route(rules, chest).rule.name == "thin-chest"
    assert route(rules, SeriesFacts(**{**chest.__dict__, "calling_ae": "ER_CT"})).rule.name == "ct-from-er"
    thick = route(rules, SeriesFacts(**{**chest.__dict__, "thickness_mm": 5.0}))
    assert thick.rule is None and thick.why_not == ("no routing rule matches: ct-from-er: sender CT01 is not ER_CT; "
                                                     "thin-chest: slice thickness 5 mm outside 0.5-3 mm")
    assert "8 slices, outside 10-600" in route(rules, SeriesFacts(**{**chest.__dict__, "slices": 8})).why_not
    assert "series description does not match" in route(rules, SeriesFacts(**{**chest.__dict__, "series_description": "Abdomen"})).why_not
    assert route((), chest).why_not == "no routing rule is configured"


def test_a_series_is_complete_after_the_quiet_time_or_at_its_expected_count():
    now = [0.0]
    tracker = CompletionTracker(10.0, clock=lambda: now[0])
    for i in range(3):
        assert tracker.arrived("st", "se1", f"sop{i}") is None
        now[0] += 4
    tracker.arrived("st", "se1", "sop1")  # a resend counts once
    assert tracker.due() == []
    now[0] += 10
    [done] = tracker.due()
    assert done.count == 3 and done.reason == "no new instance for 10 s"
    assert tracker.arrived("st", "se2", "a", expected=2) is None
    finished = tracker.arrived("st", "se2", "b", expected=2)
    assert finished is not None and finished.reason == "expected count 2 reached" and tracker.pending() == []


def test_the_second_report_of_an_instance_after_its_series_completed_starts_nothing():
    now = [0.0]
    tracker = CompletionTracker(1.0, clock=lambda: now[0])
    assert tracker.arrived("st", "se", "a", expected=2) is None
    assert tracker.arrived("st", "se", "b", expected=2).reason == "expected count 2 reached"
    assert tracker.known_complete("se", "b") and tracker.arrived("st", "se", "b", expected=2) is None  # cache + receiver
    now[0] += 5
    assert tracker.due() == [] and tracker.pending() == []  # no second completion of a one-instance "series"
    assert not tracker.known_complete("se", "c")
    assert tracker.arrived("st", "se", "c") is None  # a genuinely new instance: the series starts anew
    assert [p.count for p in tracker.pending()] == [1]
    now[0] += 5
    [late] = tracker.due()
    assert late.instances == {"c"}


def test_a_series_complete_by_count_and_reported_twice_per_instance_gets_one_job(store, triage_studies):
    paths = sorted(Path(triage_studies["clean"]).iterdir())
    config = parse_site_config({"routing": {"quiet_s": 0.05, "rules": [{**RULE, "expected_instances": len(paths)}]}})
    triage = TriageService(config, store)
    routed = []
    triage.changed.connect(lambda text, job: routed.append(text) if text.startswith("routed") else None)
    for path in paths:  # as triage_intake reports them: the cache, then the receiver with its sender
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        triage.on_instance(*uids, path, calling_ae="CT01")
        triage.on_instance(*uids, path, calling_ae="CT01", source="received from CT01")
    time.sleep(0.2)
    assert triage.poll() == []  # the last instance's second report did not start the series anew
    assert len(routed) == 1 and len(triage.queue.jobs()) == 1, routed


@pytest.fixture
def store(tmp_path, backend):
    with Store.open(tmp_path / "store.sqlite", Identity(User("reader", Role.REVIEWER), "ws-q"), backend) as opened:
        yield opened


def test_queue_order_cancel_and_recovery(store):
    queue = TriageQueue(store)
    low = queue.add("st", "s1", "m", "r", 2)
    high = queue.add("st", "s2", "m", "r", 8)
    again = queue.add("st", "s1", "m", "r", 5, instances=40)  # the series grew before it ran: same job
    assert again.job_id == low.job_id and again.instances == 40 and again.priority == 5
    claimed = queue.claim("otherhost:1")
    assert claimed.job_id == high.job_id and claimed.state == RUNNING and claimed.state_text == "running 0%"
    assert queue.progress(high.job_id, 0.42) is False and queue.job(high.job_id).state_text == "running 42%"
    assert queue.cancel(low.job_id).state == CANCELLED
    assert queue.cancel(high.job_id).cancel_requested == 1 and queue.progress(high.job_id, 0.5) is True
    assert queue.recover(alive=lambda worker: True) == []  # its worker is alive: left alone
    [(job, what)] = queue.recover(alive=lambda worker: False)
    assert what == "cancelled" and queue.job(high.job_id).state == CANCELLED
    third = queue.add("st", "s3", "m", "r", 5)
    queue.claim("gone:1")
    [(_, what)] = queue.recover(alive=lambda worker: False)
    assert what == "queued again" and queue.job(third.job_id).state == QUEUED


def test_a_corrupt_instance_fails_only_its_series_job(tmp_path, store, triage_studies):
    cache = tmp_path / "cache"
    cache.mkdir()
    for key in ("clean", "nodules"):
        for path in sorted(Path(triage_studies[key]).iterdir()):
            shutil.copy(path, cache / f"{key}-{path.name}")
    victim = sorted(cache.glob("clean-*"))[3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated in its pixel data
    config = parse_site_config({"routing": {"quiet_s": 0.01, "rules": [RULE]}})
    triage = TriageService(config, store)
    triage.headers.start()  # the headers are read as the instances arrive (the job does not scan the folder)
    series = set()
    for path in sorted(cache.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        triage.on_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path, calling_ae="CT01")
        series.add(ds.SeriesInstanceUID)
    cached = {uid: triage.headers.get(uid) for uid in series}
    assert sorted((len(h), len(p)) for h, p in cached.values()) == [(11, 1), (12, 0)]
    jobs, deadline = [], time.monotonic() + 30
    while len(jobs) < 2 and time.monotonic() < deadline:  # quiet time 0.01 s
        jobs += triage.poll()
    assert len(jobs) == 2
    finished = [triage.run_next(), triage.run_next()]
    by_state = {job.state: job for job in finished}
    assert set(by_state) == {DONE, FAILED}, [j.state_text for j in finished]
    assert by_state[FAILED].state_text.startswith("failed: 1 of 12 instance(s) cannot be read")
    assert by_state[DONE].run_id and by_state[DONE].calling_ae == "CT01"
    assert all(triage.headers.get(uid) is None for uid in series)  # dropped once their jobs ran
    triage.headers.stop()


def test_a_run_recorded_before_a_crash_finishes_its_job_instead_of_running_again(store):
    import numpy as np

    from workstation.core.audit import AuditEvent
    from workstation.core.findings import InferenceResult, ModelRef

    queue = TriageQueue(store)
    job = queue.add("st", "se", "nodule-detector", "chest-ct", 5)
    queue.claim("gone:1")
    result = InferenceResult(ModelRef("nodule-detector", "1.1.0", "ab" * 32), "cpu", "st", "se", [],
                             np.zeros((1, 1, 1), np.uint8), 1.0, "2026-12-04T08:00:00+00:00")
    run_id = store.record_inference(result, AuditEvent("inference.run", result.started_utc,
                                                       {"triage_job_id": job.job_id, "model": "nodule-detector"}))
    [(_, what)] = queue.recover(alive=lambda worker: False)
    assert what.startswith("done") and queue.job(job.job_id).state == DONE and queue.job(job.job_id).run_id == run_id


def test_a_rule_naming_a_model_that_is_not_installed_stops_the_start(store):
    config = parse_site_config({"routing": {"rules": [RULE, {**RULE, "name": "other", "models": ["lung-cancer-x"]}]}})
    with pytest.raises(ConfigError) as error:
        TriageService(config, store).check_models()
    assert error.value.key == "routing.rules[1].models" and "lung-cancer-x" in str(error.value)


def test_the_sender_named_by_the_receiver_event_is_kept_whichever_report_comes_first(store, triage_studies):
    ds = pydicom.dcmread(triage_studies["mr"], stop_before_pixels=True)
    config = parse_site_config({"routing": {"quiet_s": 0.01, "rules": [{**RULE, "calling_ae": "MR01"}]}})
    triage = TriageService(config, store)
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    triage.on_instance(*uids, triage_studies["mr"])  # the cache's report: no sender
    assert [s.source for s in triage.queue.studies()] == ["retrieved"]
    triage.on_instance(*uids, triage_studies["mr"], calling_ae="MR01", source="received from MR01")
    assert [s.source for s in triage.queue.studies()] == ["received from MR01"]
    jobs, deadline = [], time.monotonic() + 30
    while not jobs and time.monotonic() < deadline:
        jobs = triage.poll()
    [job] = jobs
    assert job.calling_ae == "MR01" and job.reason == "no routing rule matches: chest-ct: modality MR is not CT"


def test_a_critical_label_ranks_first_and_a_site_threshold_silences_a_noisy_model(store):
    import numpy as np

    from workstation.core.audit import AuditEvent
    from workstation.core.findings import Finding, InferenceResult, ModelRef
    from workstation.services.worklist import WorklistService

    def run(study: str, findings: list[tuple[str, float]]) -> None:
        queue.note_study(study, patient_name="X", series_uid=study + ".1", modality="CT")
        found = [Finding(f"{study}-{i}", label, score, 0, (0.0, 0.0, 9.0, 9.0), ((0, 0, 0), (9, 9, 0)), (4, 4, 0), (0, 0), "")
                 for i, (label, score) in enumerate(findings)]
        result = InferenceResult(ModelRef("chest-triage", "1.0.0", "ab" * 32), "cpu", study, study + ".1", found,
                                 np.zeros((1, 1, 1), np.uint8), 1.0, "2026-12-04T08:00:00+00:00")
        store.record_inference(result, AuditEvent("inference.run", result.started_utc, {"model": "chest-triage"}))

    queue = TriageQueue(store)
    run("1.1", [("nodule", 0.99), ("nodule", 0.95)])
    run("1.2", [("pneumothorax", 0.71)])
    run("1.3", [("nodule", 0.55)])
    config = parse_site_config({"alerts": {"chest-triage": {"threshold": 0.6, "critical_labels": ["Pneumothorax"]}}})
    rows = WorklistService(config, store).rows()
    assert [r.study.study_instance_uid for r in rows] == ["1.2", "1.1", "1.3"]
    assert rows[0].critical == ("pneumothorax",) and "CRITICAL pneumothorax" in rows[0].priority_text
    assert [r.flagged for r in rows] == [True, True, False]  # 0.55 is under the site's 0.6
    assert rows[2].flags[0].threshold_source == "site threshold"


def test_a_running_job_is_cancelled_within_a_step_and_records_no_run(store, triage_studies):
    config = parse_site_config({"routing": {"quiet_s": 0.01, "rules": [RULE]}})
    triage = TriageService(config, store)
    asked = []

    def cancel_when_running(text, job):
        if job is not None and job.state == RUNNING and not asked:
            asked.append(job.job_id)
            triage.cancel(job.job_id)

    triage.changed.connect(cancel_when_running)
    for path in sorted(Path(triage_studies["clean"]).iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        triage.on_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, path)
    jobs, deadline = [], time.monotonic() + 30
    while not jobs and time.monotonic() < deadline:
        jobs = triage.poll()
    finished = triage.run_next()
    assert asked == [finished.job_id] and finished.state == CANCELLED, finished.state_text
    assert finished.state_text == "cancelled: while it ran"
    assert not [e for e in store.audit_entries() if e.kind == "inference.run"]


def test_the_readme_example_is_a_valid_site_file(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```toml", readme.index("## AI triage")) + len("```toml")
    example = readme[start:readme.index("```", start)]
    site = tmp_path / "site.toml"
    site.write_text('[pacs.MAIN]\nae_title = "PACS"\nhost = "pacs.example"\nport = 104\n' + example)
    from workstation.routing.rules import routing_settings

    settings = routing_settings(load_site_config(site))
    assert [r.name for r in settings.rules] == ["chest-ct"] and settings.prefetch[0].node == "MAIN"
    assert settings.critical_labels == {"chest-triage": ("pneumothorax",)} and settings.worklist_at_start


def test_receive_refuses_to_start_on_a_bad_rule_or_a_missing_model(tmp_path, monkeypatch, capsys):
    from workstation.cli import main

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    site = tmp_path / "site.toml"
    base = f'[store]\npath = "{tmp_path / "store.sqlite"}"\n[[routing.rules]]\nname = "ct"\nmodality = "CT"\n'
    site.write_text(base + 'models = ["nodule-detector"]\npriority = "high"\n')
    assert main(["receive", "--config", str(site)]) == 2
    assert "routing.rules[0].priority: must be an integer from 0 (lowest) to 9 (highest)" in capsys.readouterr().err
    site.write_text(base + 'models = ["no-such-model"]\n')
    assert main(["receive", "--config", str(site)]) == 2
    assert "routing.rules[0].models: " in capsys.readouterr().err
