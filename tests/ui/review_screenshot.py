"""Picture of a study under review: a demo chest CT, the shipped model run once, findings decided.

Run: `.venv/bin/python tests/ui/review_screenshot.py /tmp/review.png` (offscreen; about 30 s, most
of it the model). Besides the window under review it saves `<name>-panel.png` (the AI panel: pending
count, comment column, the selected finding's history with an undone entry) and `<name>-signed.png`
(the window after sign-off: the mark in the study browser and the AI panel). The phantom is the demo generator with seed 2, whose three nodules share one
slice, so accepted, rejected and edited boxes appear together. A throw-away encrypted store and file
keyring in a temporary folder and the demo site configuration (every login a reviewer) are used:
nothing of the user's is touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
SEED = 2  # three nodules on slice 87


def wait(app, signal, timeout_ms: int = 300_000):
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []
    signal.connect(lambda *args: (got.append(args), loop.quit()))
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    if not got:
        raise SystemExit(f"timed out waiting for {signal}")
    return got[0]


def main(out: Path) -> int:
    data = Path(tempfile.mkdtemp(prefix="review-shot-"))
    os.environ["WORKSTATION_DATA_DIR"] = str(data)
    from keyrings.alt.file import PlaintextKeyring
    from PySide6.QtWidgets import QApplication

    from workstation.services.config import load_site_config
    from workstation.demo import write_demo_study
    from workstation.ui.app import open_work_session
    from workstation.ui.main_window import MainWindow

    keyring = PlaintextKeyring()
    keyring.file_path = str(data / "kr.cfg")
    app = QApplication.instance() or QApplication([])
    session, problem = open_work_session(load_site_config(ROOT / "resources" / "demo-site.toml"), keyring)
    if session is None:
        raise SystemExit(problem)
    win = MainWindow(config=session.config, session=session)
    win.resize(1600, 1000)
    win.show()
    win.open_paths([str(write_demo_study(data / "study", seed=SEED).directory)])
    wait(app, win.seriesLoaded)
    ref = next(m.ref for m, reason in win.inference.models_for(win.active.load.display_set) if reason is None)
    win.run_model(ref)
    (result,) = wait(app, win.inferenceFinished)
    if result is None or len(result.findings) < 3:
        raise SystemExit("the model found fewer than three findings")
    review = win.review
    spans = {f.finding_id: f.frames for f in result.findings}
    frame = max(range(len(win.viewer.display_set.frames)),  # the slice most findings reach, key slices first
                key=lambda k: sum(spans[s.finding_id][0] <= k <= spans[s.finding_id][1] + (s.geometry.frame_index == k) * 0.5
                                  for s in review.states()))
    here = [s for s in review.states() if spans[s.finding_id][0] <= frame <= spans[s.finding_id][1]]
    here.sort(key=lambda s: s.geometry.frame_index != frame)  # those whose key slice this is first
    if len(here) < 3:
        raise SystemExit(f"only {len(here)} findings reach slice {frame + 1}")
    review.select(here[0].finding_id)
    win.ai_panel.review.comment_edit.setText("solid, 17 mm")
    review.accept()
    c0, r0, c1, r1 = here[1].geometry.box_px
    review.edit_box(here[1].finding_id, (c0 - 3, r0 - 3, c1 + 4, r1 + 3))
    review.select(here[2].finding_id)
    review.reject()
    review.add_box(frame, (390.0, 300.0, 412.0, 320.0))  # a finding the model missed (orange)
    review.select(here[1].finding_id, jump=True)
    win.ai_panel.opacity.setValue(30)
    win.viewer.fit()
    app.processEvents()
    ok = win.grab().save(str(out))

    # the panel: a comment and a reject undone on the first finding, its history selected
    review.select(here[0].finding_id)
    review.panel.comment_edit.setText("compare with the prior CT")
    review.comment()
    review.select(here[0].finding_id)
    review.reject()
    review.undo()
    review.select(here[0].finding_id)
    app.processEvents()
    panel_out = out.with_name(out.stem + "-panel.png")
    ok &= win.ai_dock.grab().save(str(panel_out))

    # decide what is pending, then sign off
    for state in review.review.pending():
        review.select(state.finding_id)
        review.accept() if (state.score or 0) >= 0.5 else review.reject()
    review.sign_off()
    review.select(here[0].finding_id, jump=True)
    app.processEvents()
    signed_out = out.with_name(out.stem + "-signed.png")
    ok &= win.grab().save(str(signed_out))
    print(f"saved {out}, {panel_out}, {signed_out}" if ok else f"could not write {out}")
    win.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/review.png")))
