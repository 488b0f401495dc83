#!/usr/bin/env python3
"""Synthetic request-rate traces for bench/run-policy.sh: shapes unlike
the Twitter trace, so that the defaults are not judged on one trace.
Deterministic (fixed seed). Usage: gen-traces.py OUTDIR"""
import math
import os
import random
import sys


def noisy(rng, lam):
    """Poisson-like count around lam (normal approximation above 30)."""
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p < limit:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


def write(path, values):
    with open(path, "w") as f:
        f.write("".join("%d\n" % v for v in values))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(1)
    # diurnal: 7 days, smooth daily cycle 50..400 req/s
    write(os.path.join(out, "diurnal.txt"),
          [noisy(rng, 225 - 175 * math.cos(2 * math.pi * t / 86400))
           for t in range(7 * 86400)])
    # steps: a new level every 30 minutes, 20..600 req/s, 3 days
    vals, lvl = [], 100
    for t in range(3 * 86400):
        if t % 1800 == 0:
            lvl = rng.choice([20, 50, 100, 200, 400, 600])
        vals.append(noisy(rng, lvl))
    write(os.path.join(out, "steps.txt"), vals)
    # spikes: 80 req/s with 3x spikes of 2-10 minutes, about every 40 min
    vals, until = [], -1
    for t in range(3 * 86400):
        if t > until and rng.random() < 1 / 2400:
            until = t + rng.randint(120, 600)
        vals.append(noisy(rng, 240 if t <= until else 80))
    write(os.path.join(out, "spikes.txt"), vals)
    # flash crowds: 60 req/s; once a day demand climbs to 10x in 5 minutes
    # and decays over an hour, 4 days
    vals = []
    for t in range(4 * 86400):
        s = (t - 43200) % 86400
        if s < 300:
            lam = 60 + 540 * s / 300
        elif s < 300 + 3600:
            lam = 60 + 540 * math.exp(-(s - 300) / 900)
        else:
            lam = 60
        vals.append(noisy(rng, lam))
    write(os.path.join(out, "flash.txt"), vals)
    # weekly: 21 days from a Monday; weekdays a daily cycle 40..300 req/s
    # peaking at 14:00, weekends 40..120; from day 15 on every level is
    # 1.5x (a level shift the history has not seen); Poisson noise.
    # Added for predictive scaling (issue 14); nothing was tuned on it.
    vals = []
    for t in range(21 * 86400):
        day, s = divmod(t, 86400)
        top = 120 if day % 7 >= 5 else 300
        lam = 40 + (top - 40) * 0.5 * (1 - math.cos(2 * math.pi *
                                                     (s - 7200) / 86400))
        if day >= 15:
            lam *= 1.5
        vals.append(noisy(rng, lam))
    write(os.path.join(out, "weekly.txt"), vals)


if __name__ == "__main__":
    main()
