"""`workstation review status` on a real encrypted store: per series and run, states, who, comments, pending, sign-off."""

from __future__ import annotations

import json

import keyring.core
import pytest

from workstation.cli import main
from workstation.core.audit import AuditEvent
from workstation.core.findings import Finding, InferenceResult, ModelRef
from workstation.core.roles import Role, User
from workstation.demo import write_demo_study
from workstation.dicom.scan import scan_paths
from workstation.services.review import ReviewSession, SeriesKey
from workstation.store.database import Identity, Store

MODEL = ModelRef("nodule-detector", "1.0.0", "ab" * 32)


@pytest.fixture
def site(tmp_path, monkeypatch):
    config = tmp_path / "site.toml"
    config.write_text(f"""
[workstation]
id = "ws-status"
[store]
path = "{tmp_path / 'store.sqlite'}"
[users]
login_variable = "WS_LOGIN"
roles = {{ carol = "radiologist", it = "admin" }}
""", encoding="utf-8")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WS_LOGIN", "it")
    return config


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_demo_study(tmp_path_factory.mktemp("status-study"), seed=5, slices=12, size=64)


def reviewed(site, study, sign: bool) -> tuple[str, str]:
    display_set = scan_paths([str(study.directory)]).display_sets[0]
    series = display_set.series
    sops = tuple(f.instance.sop_instance_uid for f in display_set.frames)
    findings = [Finding(fid, "nodule", score, 5, (10.0, 10.0, 20.0, 20.0), ((0, 0, 0), (1, 1, 1)), (0, 0, 0), (5, 5),
                        sops[5]) for fid, score in (("x", 0.8), ("y", 0.4))]
    result = InferenceResult(MODEL, "cpu", series.study.study_instance_uid, series.series_instance_uid, findings,
                             None, 1.0, "2026-12-01T09:00:00+00:00")
    with Store.open(site.parent / "store.sqlite", Identity(User("carol", Role.RADIOLOGIST), "ws-status"),
                    keyring.core.load_env()) as store:
        store.record_inference(result, AuditEvent("inference.run", result.started_utc, {}))
        review = ReviewSession(store, SeriesKey(series.study.study_instance_uid, series.series_instance_uid, sops),
                               MODEL, findings)
        review.accept("x", comment="solid, 6 mm")
        if sign:
            review.reject("y", comment="vessel")
            review.sign_off()
    return series.study.study_instance_uid, series.series_instance_uid


def test_status_by_path_lists_states_who_comments_and_pending(site, study, capsys):
    study_uid, series_uid = reviewed(site, study, sign=False)
    assert main(["review", "status", str(study.directory), "--json", "--config", str(site)]) == 1  # not signed off
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "workstation.review-status/1"
    (series,) = document["series"]
    assert (series["study_instance_uid"], series["series_instance_uid"]) == (study_uid, series_uid)
    (run,) = series["runs"]
    assert (run["pending"], run["total"], run["signoff"]) == (1, 2, None)
    x, y = run["findings"]
    assert (x["number"], x["state"], x["by"], x["role"], x["comments"]) == (1, "accepted", "carol", "radiologist",
                                                                           ["solid, 6 mm"])
    assert (y["number"], y["state"], y["by"]) == (2, "pending", "")
    assert main(["review", "status", str(study.directory), "--config", str(site)]) == 1
    text = capsys.readouterr().out
    assert "1 of 2 pending, not signed off" in text and "comment: solid, 6 mm" in text


def test_status_by_study_uid_shows_the_sign_off_and_exits_0(site, study, capsys):
    study_uid, _series = reviewed(site, study, sign=True)
    assert main(["review", "status", "--study", study_uid, "--json", "--config", str(site)]) == 0
    (run,) = json.loads(capsys.readouterr().out)["series"][0]["runs"]
    assert run["pending"] == 0 and run["signoff"]["by"] == "carol" and run["signoff"]["role"] == "radiologist"
    assert main(["review", "status", "--study", "1.2.3.unknown", "--config", str(site)]) == 1
    assert "No AI runs stored" in capsys.readouterr().out


def test_usage_errors_exit_2(site, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["review", "status", "--config", str(site)])
    assert exit_.value.code == 2 and "either PATH" in capsys.readouterr().err
