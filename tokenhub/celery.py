from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenhub.settings")

app = Celery("tokenhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The worker's and beat's lines go through Django's LOGGING (LOG_FORMAT=json included), not Celery's own.
app.conf.worker_hijack_root_logger = False
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def refuse_without_secrets(**kwargs) -> None:
    from tokenhub.checks import exit_if_secrets_missing

    exit_if_secrets_missing()


# The audit log names the task that made a change (accounts/audit.py): set for the task's run only.
_audit_tokens: dict[str, object] = {}


@task_prerun.connect
def name_the_task_in_the_audit_log(task_id=None, task=None, **kwargs) -> None:
    from accounts import audit

    _audit_tokens[task_id] = audit.set_origin(audit.task_origin(task.name))


@task_postrun.connect
def forget_the_tasks_audit_name(task_id=None, **kwargs) -> None:
    from accounts import audit

    token = _audit_tokens.pop(task_id, None)
    if token is not None:
        audit.reset_origin(token)
