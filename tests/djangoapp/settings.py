"""Settings of the test project. The database file comes from
REQPROF_TEST_DB; REQPROF comes from REQPROF_DJANGO_OVERRIDES (JSON) when
set, as a project would write it in its settings."""
import json
import os

SECRET_KEY = "reqprof-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoapp.urls"
INSTALLED_APPS = ["djangoapp"]
MIDDLEWARE = ["reqprof.django.ProfilingMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("REQPROF_TEST_DB", "books.sqlite3")}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING_CONFIG = None
if os.environ.get("REQPROF_DJANGO_OVERRIDES"):
    REQPROF = json.loads(os.environ["REQPROF_DJANGO_OVERRIDES"])
WSGI_APPLICATION = "djangoapp.wsgi.application"
