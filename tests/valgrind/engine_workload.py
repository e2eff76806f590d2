"""A short run of every engine path, for valgrind memcheck (make
test-valgrind): sync and async sessions, a worker thread, awaits, node and
depth caps, every writer."""
import asyncio, threading, time
from reqprof import Profiler
def fib(n): return n if n < 2 else fib(n-1) + fib(n-2)
async def job():
    async with Profiler(interval=0.002) as p:
        fib(16)
        await asyncio.sleep(0.02)
        await asyncio.to_thread(fib, 15)
    return p.report
r = asyncio.run(job())
r.to_json(); r.to_text(); r.to_collapsed(); r.to_html(); r.top_functions()
with Profiler(max_nodes=20, max_depth=10) as p:
    fib(17)
p.report.to_json()
print("ok", r.samples)
