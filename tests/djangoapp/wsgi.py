import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from .setup_db import ensure_books  # noqa: E402

ensure_books()
