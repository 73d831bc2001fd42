from decimal import Decimal

from django.db import migrations, models
from django.db.models import F


def backfill(apps, schema_editor):
    # Records written before the column: what was billed plus what was above the hold (an owner's own
    # calls were billed less the cut; their full use is not known any more).
    UsageRecord = apps.get_model("billing", "UsageRecord")
    UsageRecord.objects.update(upstream_usd=F("cost_usd") + F("excess_usd"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_usage_by_channel")]

    operations = [
        migrations.AddField(
            model_name="usagerecord",
            name="upstream_usd",
            field=models.DecimalField(
                decimal_places=8,
                default=Decimal("0"),
                help_text="What the call used of the channel's upstream at the catalog's prices (the owner's spend limits).",
                max_digits=20,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
