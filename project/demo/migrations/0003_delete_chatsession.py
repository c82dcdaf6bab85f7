"""Presence comes from the layer (issue 13): no table of chat sessions any more."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("demo", "0002_room_creator_and_activity"),
    ]

    operations = [
        migrations.DeleteModel(
            name="ChatSession",
        ),
    ]
