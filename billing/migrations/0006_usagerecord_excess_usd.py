"""`uncollected_usd` becomes `excess_usd`: the cost an upstream reported above the hold, never billed.

Before, a cost above the hold was taken from the balance and what the balance could not cover was
recorded as uncollected; now the hold is the maximum a call can cost, and the column records the rest.
"""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_drop_pattern_indexes")]

    operations = [
        migrations.RenameField(model_name="usagerecord", old_name="uncollected_usd", new_name="excess_usd"),
        migrations.AlterField(
            model_name="usagerecord",
            name="excess_usd",
            field=models.DecimalField(
                decimal_places=8,
                default=Decimal("0"),
                help_text="Cost reported above the hold: not billed (the hold is the maximum).",
                max_digits=20,
            ),
        ),
    ]
