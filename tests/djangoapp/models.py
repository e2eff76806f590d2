from django.db import models


class Book(models.Model):
    title = models.CharField(max_length=200)
    score = models.IntegerField(default=0)

    class Meta:
        app_label = "djangoapp"
