"""The one model app of the test project: notes with tags, and an attachment in MEDIA_ROOT."""

from django.db import models


class Tag(models.Model):
    """A label for notes."""

    name = models.CharField(max_length=50, unique=True)


class Note(models.Model):
    """A note; ``attachment`` names a file under MEDIA_ROOT."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True)
    attachment = models.FileField(upload_to="attachments/", blank=True)
