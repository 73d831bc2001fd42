from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, worker_init

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
