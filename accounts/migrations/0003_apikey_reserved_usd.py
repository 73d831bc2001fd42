"""ApiKey.reserved_usd: the key's open holds, so a spend cap counts calls in flight.

It starts as the sum of the key's holds open at migration time; from then on every hold adds to it
and every settlement or release takes its hold back off, in the same transaction.
"""

from decimal import Decimal

from django.db import migrations, models

RECOMPUTE = """
UPDATE accounts_apikey SET reserved_usd = coalesce(
    (SELECT sum(h.amount) FROM billing_hold h WHERE h.api_key_id = accounts_apikey.id AND h.status = 'open'), 0)
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_apikey_scope"), ("billing", "0005_drop_pattern_indexes")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="reserved_usd",
            field=models.DecimalField(decimal_places=8, default=Decimal("0"), editable=False, max_digits=20),
        ),
        migrations.RunSQL(RECOMPUTE, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="apikey",
            constraint=models.CheckConstraint(
                condition=models.Q(("reserved_usd__gte", 0)), name="apikey_reserved_not_negative"
            ),
        ),
    ]
