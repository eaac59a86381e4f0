"""The test project's only migration (as makemigrations wrote it, with tuples)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    """Create Tag and Note."""

    initial = True
    dependencies = ()
    operations = (
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=50, unique=True)),
            ],
        ),
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=200)),
                ("body", models.TextField(blank=True)),
                ("attachment", models.FileField(blank=True, upload_to="attachments/")),
                ("tags", models.ManyToManyField(blank=True, to="notes.tag")),
            ],
        ),
    )
