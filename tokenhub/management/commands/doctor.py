from __future__ import annotations

from tokenhub import doctor
from tokenhub.lib.commands import OperatorCommand

MARKS = {doctor.ERROR: "ERROR", doctor.WARNING: "WARN ", doctor.OK: "ok   "}


class Command(OperatorCommand):
    help = (
        "Check settings, secrets, the database and its migrations, Redis, the Celery broker, worker and beat, "
        "the encryption keys, the catalog and the channels; print each finding with its fix. Exits 1 on any "
        "error, 0 when there are only warnings."
    )

    def handle(self, *args, **options):
        findings = doctor.run()
        for finding in findings:
            line = f"{MARKS[finding.level]} {finding.check}: {finding.message}"
            if finding.fix:
                line += f" — fix: {finding.fix}"
            self.stdout.write(line)
        errors = sum(f.level == doctor.ERROR for f in findings)
        warnings = sum(f.level == doctor.WARNING for f in findings)
        self.stdout.write(f"{errors} error(s), {warnings} warning(s)")
        if errors:
            raise SystemExit(1)
