"""A small Django project for the framework tests: books in a SQLite
database (REQPROF_TEST_DB), sync and async views, a stream, a failing view,
and views that overlap (``/conc/<name>/``)."""
