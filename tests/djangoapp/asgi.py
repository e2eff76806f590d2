import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

from .setup_db import ensure_books  # noqa: E402

ensure_books()
