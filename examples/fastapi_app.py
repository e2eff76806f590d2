"""A small bookshop API to try reqprof on.

    ENABLE_PROFILING=true uvicorn examples.fastapi_app:app
    curl 'http://127.0.0.1:8000/books/7?profile=1' -o report.html

Its endpoints do what real ones do: an ``async def`` endpoint that awaits a
(simulated) database and an HTTP call in parallel, a ``def`` endpoint that
does CPU work (FastAPI runs it in a worker thread), a JSON endpoint, a
streaming CSV export and an endpoint that fails.
"""
from __future__ import annotations

import asyncio
import csv
import difflib
import io
import random
import statistics
from typing import AsyncIterator

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from reqprof import ProfilingMiddleware

app = FastAPI(title="bookshop")
# Outermost, configured from the environment / .env (ENABLE_PROFILING, ...).
app.add_middleware(ProfilingMiddleware)

_rng = random.Random(42)
_WORDS = ("river", "night", "garden", "silent", "stone", "winter", "paper", "city",
          "orchard", "harbour", "glass", "summer", "lantern", "island", "iron", "salt")
BOOKS = [
    {
        "id": i,
        "title": " ".join(_rng.choice(_WORDS).title() for _ in range(3)),
        "author": f"{_rng.choice(_WORDS).title()} {_rng.choice(_WORDS).title()}son",
        "price": round(_rng.uniform(5, 60), 2),
        "year": _rng.randint(1900, 2024),
    }
    for i in range(5000)
]


# -- a pretend database and a pretend HTTP service -----------------------------

async def db_fetch_book(book_id: int) -> dict:
    await asyncio.sleep(0.02)          # the query's round trip
    if not 0 <= book_id < len(BOOKS):
        raise HTTPException(404, "no such book")
    return dict(BOOKS[book_id])


async def fetch_reviews(book_id: int) -> list[dict]:
    await asyncio.sleep(0.035)         # a call to the reviews service
    rng = random.Random(book_id)
    return [{"stars": rng.randint(1, 5), "text": " ".join(rng.choices(_WORDS, k=40))}
            for _ in range(200)]


def score_reviews(reviews: list[dict]) -> dict:
    """CPU work on the event loop: the kind of thing that blocks other requests."""
    words: dict[str, int] = {}
    for review in reviews:
        for word in review["text"].split():
            words[word] = words.get(word, 0) + review["stars"]
    stars = [r["stars"] for r in reviews]
    return {"mean": statistics.mean(stars), "stdev": statistics.pstdev(stars),
            "keywords": sorted(words, key=words.__getitem__, reverse=True)[:5]}


# -- endpoints -----------------------------------------------------------------

@app.get("/")
async def index() -> dict:
    return {"try": ["/books/7", "/search?q=silent garden", "/stats", "/export.csv",
                    "/checkout"],
            "profile": "add ?profile=1 to any of them"}


@app.get("/books/{book_id}")
async def get_book(book_id: int) -> dict:
    """async def: two awaits in parallel (child tasks), then CPU work."""
    book, reviews = await asyncio.gather(db_fetch_book(book_id), fetch_reviews(book_id))
    book["reviews"] = score_reviews(reviews)
    return book


@app.get("/search")
def search(q: str = "silent garden", limit: int = 10) -> dict:
    """def: FastAPI runs it in a worker thread; reqprof shows its frames."""
    titles = [b["title"].lower() for b in BOOKS]
    matches = difflib.get_close_matches(q.lower(), titles, n=limit, cutoff=0.3)
    ranked = sorted(matches, key=lambda t: difflib.SequenceMatcher(None, q, t).ratio(),
                    reverse=True)
    return {"query": q, "results": ranked}


@app.get("/stats")
async def stats() -> dict:
    """A JSON endpoint with a little computation."""
    prices = [b["price"] for b in BOOKS]
    by_decade: dict[int, int] = {}
    for book in BOOKS:
        decade = book["year"] // 10 * 10
        by_decade[decade] = by_decade.get(decade, 0) + 1
    return {"books": len(BOOKS), "median_price": statistics.median(prices),
            "mean_price": round(statistics.fmean(prices), 2),
            "by_decade": dict(sorted(by_decade.items()))}


@app.get("/export.csv")
async def export_csv() -> StreamingResponse:
    """A streaming response: the CSV is sent in chunks as it is written."""
    async def rows() -> AsyncIterator[str]:
        for start in range(0, len(BOOKS), 500):
            out = io.StringIO()
            writer = csv.writer(out)
            if start == 0:
                writer.writerow(["id", "title", "author", "price", "year"])
            for book in BOOKS[start:start + 500]:
                writer.writerow([book["id"], book["title"], book["author"], book["price"],
                                 book["year"]])
            yield out.getvalue()
            await asyncio.sleep(0.005)   # as if reading the next page from the database

    return StreamingResponse(rows(), media_type="text/csv")


@app.get("/checkout")
async def checkout() -> dict:
    """Fails, like an endpoint whose payment provider is down."""
    await asyncio.sleep(0.01)
    raise RuntimeError("payment gateway unavailable")
