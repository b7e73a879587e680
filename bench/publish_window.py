"""How long a publisher is inside the duplicate window (issue 15, docs/multi-region-runtime.md).

Two regions' publishers race on one stream (146 events, as test_publish_once does) on moto; the
window of a batch runs from its first successful PutEvents to its claims marked published: a
region dying inside it leaves published-but-unmarked claims that the other region takes over and
publishes again. Prints the windows' mean and their share of the publishers' busy time.

    PYTHONPATH=. python bench/publish_window.py
"""

import os
import threading
import time

from events._moto import SerialMotoServer

with SerialMotoServer() as server:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": server.url,
            "AWS_ACCESS_KEY_ID": "t",
            "AWS_SECRET_ACCESS_KEY": "t",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    for k in ("AWS_CA_BUNDLE", "AWS_PROFILE"):
        os.environ.pop(k, None)
    import tests.integration.test_publish_once as t
    from events import publications as p

    w = t.World()
    w.append_history(jobs=6)
    records = t.stream_records(w.events_table)
    # time in the window: from the first PutEvents return of a batch to its marks' return
    spans = []
    orig_mark = p.Publications.mark_published
    last_put = {}

    class Timed:
        def __init__(self, c):
            self.c = c

        def put_events(self, **kw):
            r = self.c.put_events(**kw)
            last_put.setdefault(threading.get_ident(), time.perf_counter())
            return r

    def mark(self, claims, missed=()):
        orig_mark(self, claims, missed)
        start = last_put.pop(threading.get_ident(), None)
        if start is not None:
            spans.append(time.perf_counter() - start)

    p.Publications.mark_published = mark
    from events import publisher

    total = {}

    def run(region, batch):
        t0 = time.perf_counter()
        pos = 0
        while pos < len(records):
            chunk = records[pos : pos + batch]
            failed = publisher.publish_records(
                chunk,
                events_client=Timed(w.events),
                bus_name=w.names[region].bus,
                publications=w.publications(region),
                peer_buses=[w.bus_arn[t.B if region == t.A else t.A]],
                peer_client=lambda arn: Timed(w.events),
            )
            ids = [r["dynamodb"]["SequenceNumber"] for r in chunk]
            pos += min(ids.index(f) for f in failed) if failed else len(chunk)
            if failed:
                time.sleep(0.05)
        total[region] = time.perf_counter() - t0

    ths = [
        threading.Thread(target=run, args=(t.A, 10)),
        threading.Thread(target=run, args=(t.B, 10)),
    ]
    [x.start() for x in ths]
    [x.join() for x in ths]
    n = t._published_event_count(records)
    print(
        f"events {n}; publish time A {total[t.A]:.2f}s B {total[t.B]:.2f}s; windows {len(spans)}, "
        f"sum {sum(spans):.3f}s, mean {1000 * sum(spans) / max(1, len(spans)):.1f} ms; "
        f"fraction of the publishers' busy time in a window: {sum(spans) / (total[t.A] + total[t.B]):.1%}"
    )
