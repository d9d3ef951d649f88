#!/usr/bin/env python3
"""Writes replay-small.jsonl: a small, clearly synthetic corpus in the shape of
../shared/eval/cascade-replay/*.jsonl, for CI (the shared corpora are not part
of the repository). Deterministic: same seed, same file.

Two models: "sim-small" (the local tier) and "sim-large" (the cloud tier). The
small model's confidence_logprob is drawn first; it answers correctly with
probability close to exp(logprob), so the corpus is roughly calibrated but
noisy, like real data. One row has a null logprob (always escalates)."""
import json, math, random

random.seed(20250601)
SYSTEM = "Synthetic test corpus for edgecascade CI. Answer with one letter or a short name."
names = ["Ada", "Boole", "Curie", "Dirac", "Euler", "Fermi", "Gauss", "Hopper"]
rows = []
for i in range(96):
    mc = i % 3 != 2
    if mc:
        prompt = (f"Synthetic question {i}: which option is right for case {i * 7 % 31}?\n\n"
                  f"Choices:\nA: alpha\nB: beta\nC: gamma\nD: delta\n\nAnswer: ")
        right = "ABCD"[i % 4]
        wrong = "ABCD"[(i + 1) % 4]
    else:
        prompt = f"Synthetic question {i}: who is filed under index {i}?\n\nAnswer: "
        right = names[i % len(names)]
        wrong = names[(i + 3) % len(names)] + " " + names[(i + 5) % len(names)]
    lp = math.log(random.uniform(0.2, 0.999))
    small_ok = random.random() < math.exp(lp) * 0.95
    large_ok = random.random() < 0.93
    small = {"answer": right if small_ok else wrong, "correct": small_ok,
             "confidence_logprob": None if i == 17 else round(lp, 6),
             "cost_usd": 1.0e-05, "latency_ms": round(random.uniform(20, 80), 1),
             "tokens_in": 40 + i % 9, "tokens_out": 1 if mc else 3}
    large = {"answer": right if large_ok else wrong, "correct": large_ok,
             "confidence_logprob": round(math.log(random.uniform(0.7, 0.999)), 6),
             "cost_usd": 3.0e-04, "latency_ms": round(random.uniform(100, 300), 1),
             "tokens_in": 40 + i % 9, "tokens_out": 1 if mc else 3}
    rows.append({"id": f"synthetic-{i}", "dataset": "synthetic", "system": SYSTEM,
                 "prompt": prompt, "models": {"sim-small": small, "sim-large": large}})
with open("replay-small.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
