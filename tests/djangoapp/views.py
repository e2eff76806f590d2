import asyncio
import time

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from .models import Book


def spin(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def rank_books(books):
    """CPU work of the book view (its own frame in the report)."""
    spin(0.03)
    return sorted(books, key=lambda b: -b.score)


def query_books():
    """ORM queries against SQLite (many small ones: their time shows)."""
    books = []
    for _ in range(200):
        books = list(Book.objects.filter(score__gte=0).order_by("id")[:20])
    return books


def book_detail(request, pk):
    books = rank_books(query_books())
    return JsonResponse({"book": pk, "count": len(books)})


async def abook_detail(request, pk):
    await asyncio.sleep(0.05)
    book = await Book.objects.filter(pk=pk).afirst()
    return JsonResponse({"book": pk, "title": book.title if book else None})


def stream(request):
    def chunks():
        for i in range(20):
            yield f"chunk {i}\n".encode()
    return StreamingHttpResponse(chunks(), content_type="text/plain")


def fail(request):
    spin(0.02)
    raise RuntimeError("boom from the view")


def headers(request):
    return JsonResponse({"headers": sorted(request.headers.keys())})


def conc_0(): spin(0.05)
def conc_1(): spin(0.05)
def conc_2(): spin(0.05)
def conc_3(): spin(0.05)
def conc_4(): spin(0.05)
def conc_5(): spin(0.05)
def conc_6(): spin(0.05)
def conc_7(): spin(0.05)


CONC = {f.__name__: f for f in (conc_0, conc_1, conc_2, conc_3, conc_4, conc_5, conc_6, conc_7)}


def conc(request, name):
    CONC[name]()
    return HttpResponse(name)
