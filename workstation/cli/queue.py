"""`workstation queue [--json] [--cancel JOB] [--config F]`: the AI triage queue in the encrypted store.

Each job: series, model, rule, priority and state (queued / running k% / done / failed: reason / not applicable:
reason / cancelled). `--cancel` cancels a queued job at once and asks a running one to stop (by the job id or
its first 8 characters). `--json` prints `workstation.queue/1`. Exit 0, 2 on a usage error or unknown job,
3 when the store cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import sys

FORMAT = "workstation.queue/1"


def queue_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="workstation queue", description="The AI triage queue.")
    parser.add_argument("--json", action="store_true", help=f"print the {FORMAT} JSON document")
    parser.add_argument("--cancel", metavar="JOB", help="cancel a job (its id or the first 8 characters)")
    parser.add_argument("--config", metavar="FILE")
    args = parser.parse_args(argv)
    from workstation.cli.worklist import open_store_or_exit
    from workstation.store.triage_queue import TriageQueue

    opened = open_store_or_exit(args.config)
    if isinstance(opened, int):
        return opened
    config, store = opened
    try:
        queue = TriageQueue(store)
        if args.cancel:
            matches = [j for j in queue.jobs() if j.job_id.startswith(args.cancel)] if len(args.cancel) >= 8 else []
            if len(matches) != 1:
                print(f"error: no single job {args.cancel!r} (give its id or at least its first 8 characters)", file=sys.stderr)
                return 2
            job = queue.cancel(matches[0].job_id)
            print(f"job {job.job_id[:8]}: {job.state_text}" + (" (stop asked)" if job.cancel_requested else ""))
            return 0
        jobs = queue.jobs()
        if args.json:
            print(json.dumps({"format": FORMAT, "jobs": [_job_json(j) for j in jobs]}, indent=2))
        else:
            print("\n".join(f"{j.job_id[:8]}  {j.created_utc[:19].replace('T', ' ')}  p{j.priority}  {j.model:<22.22} "
                            f"{j.rule:<14.14} {j.series_instance_uid:<40.40}  {j.state_text}" for j in jobs)
                  or "The queue is empty.")
        return 0
    finally:
        store.close()


def _job_json(job) -> dict:
    return {"job_id": job.job_id, "study_instance_uid": job.study_instance_uid,
            "series_instance_uid": job.series_instance_uid, "model": job.model, "rule": job.rule,
            "priority": job.priority, "state": job.state, "state_text": job.state_text,
            "progress": round(job.progress, 3), "reason": job.reason, "calling_ae": job.calling_ae,
            "instances": job.instances, "created_utc": job.created_utc, "started_utc": job.started_utc,
            "finished_utc": job.finished_utc, "attempts": job.attempts, "run_id": job.run_id}
