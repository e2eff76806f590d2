"""Creates the books table in REQPROF_TEST_DB (once) with a few rows."""
from django.db import connection

from .models import Book


def ensure_books():
    if Book._meta.db_table in connection.introspection.table_names():
        return
    with connection.schema_editor() as editor:
        editor.create_model(Book)
    Book.objects.bulk_create(Book(title=f"Book {i}", score=i * 7 % 13) for i in range(50))
