"""The Flask app of the WSGI benchmark (under gunicorn, gthread workers).
``BENCH_MIDDLEWARE`` picks what wraps it:

- ``none``: the bare app;
- ``reqprof``: ``reqprof.flask.init_app``, configured from the environment;
- ``pyinstrument``: the recipe from pyinstrument's documentation ("Profile
  a web request in Flask"): ``before_request`` starts a
  ``pyinstrument.Profiler()`` when the request has ``?profile``, and
  ``after_request`` replaces the response with its HTML report.

The endpoint does what ``http_app.py``'s does: a filter and a sort over
in-memory records, a JSON response.
"""
from __future__ import annotations

import os
import random

from flask import Flask, g, jsonify, make_response, request

MIDDLEWARE = os.environ.get("BENCH_MIDDLEWARE", "none")

app = Flask(__name__)

_rng = random.Random(7)
CATALOG = [
    {"id": i, "name": "".join(_rng.choice("abcdefghijklmnop") for _ in range(10)),
     "price": round(_rng.uniform(1, 500), 2), "tags": _rng.sample(["new", "sale", "eco", "top"], 2)}
    for i in range(2000)
]


@app.route("/items")
def list_items():
    q = request.args.get("q", "a")
    limit = int(request.args.get("limit", 20))
    matches = [item for item in CATALOG if q in item["name"]]
    matches.sort(key=lambda item: (item["price"], item["id"]))
    return jsonify(matches[:limit])


if MIDDLEWARE == "reqprof":
    from reqprof.flask import init_app

    init_app(app)
elif MIDDLEWARE == "pyinstrument":
    from pyinstrument import Profiler

    @app.before_request
    def before_request():
        if "profile" in request.args:
            g.profiler = Profiler()
            g.profiler.start()

    @app.after_request
    def after_request(response):
        if not hasattr(g, "profiler"):
            return response
        g.profiler.stop()
        output_html = g.profiler.output_html()
        return make_response(output_html)
