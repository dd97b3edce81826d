#!/usr/bin/env python3
"""Independent reference for quiet hours (docs/PREFERENCES.md), used by the differential test
functions/notify/tests/all/quiet_hours.rs.

A window starts on each listed day at local `start` and ends at local `end` (the next day
when `end` is not after `start`). A window edge at a local wall time W is the first instant
at which the zone's clocks show W or later: W's own instant when W exists (the earlier one
when it exists twice), the transition that skipped it when it falls in a gap. Computed here
from UTC offsets alone with zoneinfo and the pinned `tzdata` package (never the machine's
/usr/share/zoneinfo): no PEP 495 `fold`, no jiff.

Modes (JSON on stdin, JSON on stdout):
  quiet_ref.py                 [{"zone", "start", "end", "days", "at"}] -> [end instant or null]
  quiet_ref.py --transitions   {"zones", "from", "to"} -> {zone: [utc_seconds, ...]}
  quiet_ref.py --tzdata-version
"""

import json
import sys
import zoneinfo
from datetime import datetime, timedelta, timezone

zoneinfo.reset_tzpath(to=[])  # the pinned tzdata package only

import tzdata  # noqa: E402  (after reset_tzpath on purpose)

UTC = timezone.utc
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def offset(tz, u):
    """The UTC offset in force at UTC instant u (aware)."""
    return u.astimezone(tz).utcoffset()


def wall(tz, u):
    return u.astimezone(tz).replace(tzinfo=None)


def first_at_or_after(tz, w):
    """The first instant whose wall time in tz is w or later."""
    guess = w.replace(tzinfo=UTC)
    offsets = {offset(tz, guess + timedelta(hours=h)) for h in range(-30, 31, 3)}
    shown = [guess - o for o in offsets if wall(tz, guess - o) == w]
    if shown:
        return min(shown)
    # A gap: the offset changes from `lo` (before) to `hi` (after) between w - hi and w - lo.
    early, late = guess - max(offsets), guess - min(offsets)
    before = offset(tz, early)
    while late - early > timedelta(seconds=1):
        mid = early + (late - early) / 2
        if offset(tz, mid) == before:
            early = mid
        else:
            late = mid
    return late.replace(microsecond=0)


def local_time(text):
    h, m, *s = (int(x) for x in text.split(":"))
    return timedelta(hours=h, minutes=m, seconds=s[0] if s else 0)


def deferral(case):
    tz = zoneinfo.ZoneInfo(case["zone"])
    at = datetime.fromisoformat(case["at"].replace("Z", "+00:00"))
    start, end = local_time(case["start"]), local_time(case["end"])
    days = {DAYS.index(d) for d in case["days"].split(",")}
    today = wall(tz, at).date()
    for day in (today - timedelta(days=1), today):
        if day.weekday() not in days:
            continue
        midnight = datetime(day.year, day.month, day.day)
        opens = first_at_or_after(tz, midnight + start)
        closes = first_at_or_after(tz, midnight + end + (timedelta(days=1) if end <= start else timedelta(0)))
        if opens <= at < closes:
            return closes.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def transitions(q):
    lo = datetime.fromisoformat(q["from"]).replace(tzinfo=UTC)
    hi = datetime.fromisoformat(q["to"]).replace(tzinfo=UTC)
    out = {}
    for name in q["zones"]:
        tz, found, u = zoneinfo.ZoneInfo(name), [], lo
        while u < hi:
            nxt = u + timedelta(hours=1)
            if offset(tz, u) != offset(tz, nxt):
                a, b = u, nxt
                while b - a > timedelta(seconds=1):
                    mid = a + (b - a) / 2
                    a, b = (mid, b) if offset(tz, mid) == offset(tz, u) else (a, mid)
                found.append(int(b.timestamp()))
            u = nxt
        out[name] = found
    return out


def main():
    if sys.argv[1:] == ["--tzdata-version"]:
        print(tzdata.IANA_VERSION)
        return
    q = json.load(sys.stdin)
    if sys.argv[1:] == ["--transitions"]:
        json.dump(transitions(q), sys.stdout)
    else:
        json.dump([deferral(c) for c in q], sys.stdout)


main()
