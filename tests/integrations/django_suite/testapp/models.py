from __future__ import annotations

from django.db import models


class Author(models.Model):
    name = models.TextField()
    country = models.TextField()
    extra = models.JSONField(default=dict)


class Book(models.Model):
    title = models.TextField()
    year = models.IntegerField()
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
