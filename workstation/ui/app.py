"""Application start-up, including the offscreen screenshot mode used to check the UI without a screen."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SCREENSHOT_TIMEOUT_MS = 120_000


def open_work_session(config, backend=None):
    """(started WorkSession, "") or (None, why not): a locked store disables review, never the viewer.

    `backend` is a keyring backend (tests pass a file one); None means the OS keyring.
    """
    from workstation.services.session import StoreLocked, WorkSession

    try:
        session = WorkSession.open(config, backend)
    except StoreLocked as exc:
        log.error("review disabled: %s", exc)
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any store failure: view only, with the reason
        log.exception("the encrypted store could not be opened")
        return None, f"the encrypted store could not be opened ({exc})"
    try:
        session.start()
    except Exception as exc:  # noqa: BLE001
        log.exception("the work session could not start")
        session.store.close()
        return None, f"the audit trail could not be written ({exc})"
    return session, ""


def open_sync(config, session, backend=None):
    """(SyncWorker not started, "") when the site has a central server and the store is open; (None, why not)
    when a server is configured but sync cannot run; (None, "") when the site has no server."""
    if not config.server.configured:
        return None, ""
    from workstation.services.sync import SyncError, make_worker

    if session is None:
        return None, "the encrypted store is not open"
    try:
        return make_worker(config, session.store, backend), ""
    except SyncError as exc:
        log.error("sync disabled: %s", exc)
        return None, str(exc)


def run(paths: list[str], screenshot: Path | None = None, config_option: str | None = None, ai: bool = False,
        first_paint: bool = False) -> int:
    """`first_paint` (bench/cold_start.py): print the wall-clock time once a decoded slice is painted, then exit."""
    if screenshot is not None and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from workstation.ui.main_window import MainWindow
    from workstation.ui import theme

    from workstation.core.site import ConfigError, SiteConfig
    from workstation.services.config import load_site_config

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Radiology AI Workstation")
    try:
        config, problem = load_site_config(config_option), ""
    except ConfigError as exc:
        config, problem = SiteConfig(), str(exc)
        log.error("site configuration invalid: %s", exc)
    session, review_problem = open_work_session(config)
    sync, sync_problem = open_sync(config, session)
    window = MainWindow(config=config, config_problem=problem, session=session, review_problem=review_problem,
                        sync=sync, sync_problem=sync_problem)
    theme.install(window, app, dark=True)  # the dark reading theme by default (View > Dark theme)
    window.resize(*theme.PREFERRED_SIZE)  # a screenshot has this size; on a screen the window fits it (below)
    window.show()
    if screenshot is None:
        theme.fit_to_screen(window)  # the preferred size, or 95% of the screen at any scaling
    _report_unexpected_errors(window)
    if first_paint:
        _exit_after_first_paint(window, app)
    if screenshot is None:
        window.open_paths(paths)
        return app.exec()
    result = {"code": 1}

    def finish(timed_out: bool = False) -> None:
        app.processEvents()
        if timed_out:
            print("screenshot: timed out waiting for the series to load", file=sys.stderr)
        ok = window.grab().save(str(screenshot))
        print(f"screenshot saved to {screenshot}" if ok else f"screenshot: could not write {screenshot}",
              file=sys.stderr if not ok else sys.stdout)
        result["code"] = 0 if ok and not timed_out else 1
        window.close()
        app.quit()

    state = {"loaded": not paths, "thumbs": not paths}

    def maybe_finish() -> None:
        if state["loaded"] and state["thumbs"]:
            QTimer.singleShot(50, finish)

    def on_loaded(_key: str) -> None:
        models = [m for m, reason in window.inference.models_for(window.active.load.display_set) if reason is None] \
            if ai and window.active is not None else []
        if models and window.viewer.result is None:
            window.run_model(models[0].ref)  # the screenshot waits for the findings
            return
        state["loaded"] = True
        maybe_finish()

    def on_inference(result) -> None:
        if result is not None and result.findings:
            window.viewer.focus_finding(result.sorted_findings()[0])
        state["loaded"] = True
        maybe_finish()

    window.inferenceFinished.connect(on_inference)

    def on_thumbs() -> None:
        state["thumbs"] = True
        maybe_finish()

    def on_catalog(catalog, _problems) -> None:
        if not catalog.display_sets:  # nothing to load: show the problems instead
            state["loaded"] = True
            maybe_finish()

    window.seriesLoaded.connect(on_loaded)
    window.thumbnailsDone.connect(on_thumbs)
    window.library_signals.catalogChanged.connect(on_catalog)
    window.library_signals.scanFailed.connect(lambda _m: on_loaded(""))
    QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, lambda: finish(timed_out=True))
    window.open_paths(paths)
    if not paths:
        QTimer.singleShot(100, finish)
    app.exec()
    return result["code"]


def _report_unexpected_errors(window) -> None:
    """A bug in a slot is logged with its traceback and shown as one line; the window stays up."""

    def hook(exc_type, exc, tb) -> None:
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        window.statusBar().showMessage(f"Unexpected error: {exc_type.__name__}: {exc} (details in the log)", 15000)

    sys.excepthook = hook


def _exit_after_first_paint(window, app) -> None:
    """Print "first-paint <time.time()>" after the viewer first paints a decoded slice, then quit."""
    import time

    from PySide6.QtCore import QEvent, QObject, QTimer

    class Watch(QObject):
        done = False

        def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt naming
            if event.type() == QEvent.Type.Paint and not self.done and window.viewer._shown_frame is not None:  # noqa: SLF001
                self.done = True
                QTimer.singleShot(0, finish)  # after this paint event has been handled
            return False

    def finish() -> None:
        print(f"first-paint {time.time():.6f}", flush=True)
        window.close()
        app.quit()

    window._first_paint_watch = watch = Watch(window)  # noqa: SLF001 - kept alive with the window
    window.viewer.view.viewport().installEventFilter(watch)
