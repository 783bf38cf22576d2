"""Exact k nearest neighbours by squared Euclidean distance, without the full distance matrix.

The engine behind :func:`pose2id.centralization.nfc`. Instead of the N x N distance matrix (about
1 GB for a Market-1501 gallery, 27 GB for MSMT17) it computes the matrix in panels of rows: first
each panel against itself, which gives every row an exact top-k list within its panel, then each
panel against the rows after it, each such block read both ways (the matrix is symmetric), so
every pair is measured once. Worker threads, one per core, each compute a block with
single-threaded BLAS and compare it with its rows' and columns' current k-th distances; only the
few entries under them are merged, by the calling thread, into the running lists. The result is
exact: ties are broken by the lower row index, as a stable sort of the full distance row would.

numpy arrays run on the CPU with the threads above (:class:`_NumpyOps`); torch tensors run on
their own device, one block at a time (:class:`_TorchOps`).
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

from ._checks import is_tensor
from ._threads import available_cores as _cpu_count

__all__ = ["DEFAULT_BLOCK_SIZE", "nearest_neighbors"]

# Rows per block (blocks are up to 16x as wide). Large enough for the matrix product to run at
# full speed (single-threaded, 512 x 8192 runs as fast as 2048 x 8192), small enough that the
# part of the product computed twice (the squares on the diagonal: 1.6% of the full product for
# a Market-1501 gallery) stays small and a block of float32 distances (16 MiB) keeps peak memory
# low.
DEFAULT_BLOCK_SIZE = 512
# Blocks off the diagonal are 4 panels tall (single-threaded sgemm runs ~5% faster on 2048
# rows than on 512) and at most 16 panels wide.
_PANELS_PER_BLOCK = 4
_WIDTH_FACTOR = 16
# Most worker threads for the block scans (each holds a block and its mask: 80 MiB at the
# default size).
_MAX_WORKERS = 4
# Rows from which the row-wise passes (normalizing, centralizing) run in worker threads.
_THREADED_ROWS = 4096
# Bytes of distances compared per step of a block scan: the chunk and its two masks fit in L2.
_SCAN_BYTES = 1 << 20


def _by_rows(fn, n):
    """Call ``fn(rows)`` on row ranges covering ``range(n)``, in parallel threads (the numpy
    passes inside release the GIL, so the cores share the work); fewer than
    :data:`_THREADED_ROWS` rows in the calling thread, where starting threads would cost more
    than they save. ``fn`` must treat every row on its own, so the split changes nothing."""
    workers = min(_cpu_count(), _MAX_WORKERS)
    if n < _THREADED_ROWS or workers == 1:
        fn(slice(0, n))
        return
    edges = np.linspace(0, n, workers + 1).round().astype(int)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]))


def nearest_neighbors(x, k, block_size=DEFAULT_BLOCK_SIZE):
    """Indices of the ``k`` nearest other rows of every row, nearest first.

    Exact, with ties broken by the lower index. Each pair of rows is measured once (the panel
    squares on the diagonal excepted), in blocks of at most ``4 * block_size`` rows by
    ``16 * block_size`` columns; memory is O(N * D + N * k + workers * block_size**2).

    Parameters
    ----------
    x : (N, D) float32 array or torch.Tensor (any device), N > k.
    k : int
    block_size : int

    Returns
    -------
    (N, k) int64 array, or a torch.Tensor on ``x``'s device.
    """
    ops = _TorchOps(x) if is_tensor(x) else _NumpyOps(x)
    n = x.shape[0]
    # Each row's running list as sorted uint64 keys (distance bits << 32 | column): one integer
    # sort orders by distance, then by the lower index. Empty slots hold (inf, n).
    best = np.full((n, k), _EMPTY_KEY | np.uint64(n), dtype=np.uint64)
    panels = [slice(a0, min(a0 + block_size, n)) for a0 in range(0, n, block_size)]

    # 1. Every panel of rows against itself: exact top-k lists within the panel. Their k-th
    #    distances are the thresholds that let the second pass skip nearly every entry.
    # 2. Every panel against the columns after it, read both ways (the matrix is symmetric):
    #    entries under a row's current k-th distance are merged into its list. These blocks
    #    are _PANELS_PER_BLOCK panels tall.
    pairs = [(a, a) for a in panels if a.stop - a.start > 1]
    tall = _PANELS_PER_BLOCK * block_size
    for s0 in range(0, n, tall):
        s1 = min(s0 + tall, n)
        # Within a group of panels, each panel against the rest of the group; then the whole
        # group against the columns after it, in equal-width blocks (a narrow last block would
        # run the product slowly).
        pairs += [(a, slice(a.stop, s1)) for a in panels if s0 <= a.start and a.stop < s1]
        n_blocks = -(-(n - s1) // (_WIDTH_FACTOR * block_size))
        edges = np.linspace(s1, n, n_blocks + 1).round().astype(int)
        pairs += [(slice(s0, s1), slice(c0, c1)) for c0, c1 in zip(edges[:-1], edges[1:])]
    def thresholds(a, c):
        # Read when a block is scanned, possibly while other blocks are being merged: lists
        # only ever improve, so a threshold read early is merely looser, never wrong.
        return _key_distance(best[a, -1]), _key_distance(best[c, -1])

    for (a, c), (rows, cols, vals, row_thr, col_thr) in ops.scan(pairs, thresholds, k):
        if a == c:
            _merge(best, rows, cols, a.start, a.start, vals)
            continue
        for_rows = vals <= row_thr[rows]
        _merge(best, rows[for_rows], cols[for_rows], a.start, c.start, vals[for_rows])
        for_cols = vals <= col_thr[cols]
        _merge(best, cols[for_cols], rows[for_cols], c.start, a.start, vals[for_cols])
    return ops.result((best & np.uint64(0xFFFFFFFF)).astype(np.int64))


_EMPTY_KEY = np.uint64(0xFF800000) << np.uint64(32)  # _sortable_bits(inf) << 32


def _scan(ops, dist, a, c, thresholds, k):
    """Candidates of the block ``dist`` = rows ``a`` x columns ``c``: (rows, cols, values,
    row thresholds, column thresholds), rows and cols local to the block."""
    if a == c:
        ops.fill_diagonal_inf(dist)
        # The k-th smallest of the first few columns bounds the k-th of the whole row from
        # above; every entry under it is a candidate. Cheaper than a full selection.
        sub = min(a.stop - a.start, max(128, 4 * k))
        bound = ops.kth_smallest(dist[:, :sub], min(k, sub - 1))
        return (*ops.candidates(dist, bound), None, None)
    row_thr, col_thr = thresholds(a, c)
    return (*ops.candidates(dist, row_thr, col_thr), row_thr, col_thr)


@contextlib.contextmanager
def _scan_threads():
    """(workers, BLAS threads per product) for the block scans, BLAS limited meanwhile.

    Each worker computes a block's product with single- (or few-) threaded BLAS and scans it
    itself: the cores stay busy with no BLAS thread waiting on another, which matters most
    when the machine is shared. Without threadpoolctl (to set the BLAS threads) one worker;
    where :func:`pose2id._threads.fix_threads` set the BLAS count (the app does), it is kept and
    the workers are as many as fit the cores.
    """
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        yield 1
        return
    from pose2id._threads import fixed_threads, limited_threads

    cores = _cpu_count()
    fixed = fixed_threads("blas")
    if fixed is not None:  # a server's count, the same for every request: workers to fit it
        yield max(1, min(_MAX_WORKERS, cores // fixed))
        return
    workers = min(cores, _MAX_WORKERS)
    with limited_threads(max(1, cores // workers), user_api="blas"):
        yield workers


def _sortable_bits(values):
    """uint64 keys in [0, 2**32) of float32 values that sort as the values do (-0.0 as 0.0)."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0)).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    bits = np.where(negative, ~bits, bits | np.uint32(0x80000000))
    return bits.astype(np.uint64)


def _key_distance(keys):
    """The float32 distances stored in the high halves of list keys."""
    bits = (keys >> np.uint64(32)).astype(np.uint32)
    negative = bits < np.uint32(0x80000000)
    bits = np.where(negative, ~bits, bits & np.uint32(0x7FFFFFFF))
    return bits.view(np.float32)


def _merge(best, rows, cols, row0, col0, vals):
    """Merge candidate entries into the running lists ``best`` (see ``nearest_neighbors``).

    ``rows``/``cols`` are local to one block whose first row and column are ``row0``/``col0``.
    The candidates are sorted by (row, distance, column) as one packed integer, the first k of
    each row kept, and each (k old + k new) list re-sorted in one sort along the rows.
    """
    if rows.size == 0:
        return
    k = best.shape[1]
    dist_bits = _sortable_bits(vals)
    col_bits = max(int(cols.max()).bit_length(), 1)
    if int(rows.max()).bit_length() + col_bits <= 32:
        key = (rows.astype(np.uint64) << np.uint64(32 + col_bits)) | (
            dist_bits << np.uint64(col_bits)
        ) | cols.astype(np.uint64)
        key.sort()
        rows = (key >> np.uint64(32 + col_bits)).astype(np.int64)
        entry = ((key >> np.uint64(col_bits)) & np.uint64(0xFFFFFFFF)) << np.uint64(32)
        entry |= (key & np.uint64((1 << col_bits) - 1)) + np.uint64(col0)
    else:  # blocks of more than 2**32 entries
        order = np.lexsort((cols, vals, rows))
        rows = rows[order]
        entry = (dist_bits[order] << np.uint64(32)) | (cols[order] + col0).astype(np.uint64)
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    group = np.repeat(np.arange(starts.size), np.diff(np.append(starts, rows.size)))
    rank = np.arange(rows.size) - starts[group]
    keep = rank < k
    urows = rows[starts] + row0
    lists = np.empty((urows.size, 2 * k), dtype=np.uint64)
    lists[:, :k] = best[urows]
    lists[:, k:] = _EMPTY_KEY | np.uint64(best.shape[0])
    lists[group[keep], k + rank[keep]] = entry[keep]
    lists.sort(axis=1)
    best[urows] = lists[:, :k]


class _NumpyOps:
    """Distance blocks with numpy (its BLAS is the faster one on CPU)."""

    def __init__(self, x):
        n, d = x.shape
        # d_ij = |x_i|^2 + |x_j|^2 - 2 x_i.x_j as one matrix product of augmented rows,
        # so a block of distances costs a single GEMM and no extra passes over it.
        self.left = np.empty((n, d + 2), dtype=np.float32)
        self.right = np.empty_like(self.left)

        def fill(rows):
            part = x[rows]
            sqnorm = np.einsum("nd,nd->n", part, part, dtype=np.float32)
            self.left[rows, :d] = part
            self.left[rows, d], self.left[rows, d + 1] = sqnorm, 1.0
            np.multiply(part, -2.0, out=self.right[rows, :d])
            self.right[rows, d], self.right[rows, d + 1] = 1.0, sqnorm

        _by_rows(fill, n)
        self._local = threading.local()  # per-worker block and mask buffers

    @staticmethod
    def _view(buffer, shape):
        size = shape[0] * shape[1]
        if buffer.size < size:
            buffer = np.empty(size, dtype=buffer.dtype)
        return buffer, buffer[:size].reshape(shape)

    def _buffer(self, name, size, dtype):
        """This thread's reusable buffer ``name`` of at least ``size`` entries (a fresh 64 MiB
        array per block would cost page faults on every first touch)."""
        buffer = getattr(self._local, name, None)
        if buffer is None or buffer.size < size:
            buffer = np.empty(size, dtype=dtype)
            setattr(self._local, name, buffer)
        return buffer[:size]

    def _scan_pair(self, a, c, thresholds, k):
        left, right = self.left[a], self.right[c]
        shape = (left.shape[0], right.shape[0])
        dist = self._buffer("dist", shape[0] * shape[1], np.float32).reshape(shape)
        np.matmul(left, right.T, out=dist)
        return _scan(self, dist, a, c, thresholds, k)

    def scan(self, pairs, thresholds, k):
        """Yield ((rows, cols), ``_scan``'s candidates) for every pair, in the order the blocks
        are finished. Worker threads compute and scan the blocks (BLAS and the numpy passes
        release the GIL) while the caller merges the candidates of finished ones; merging in
        any order gives the same lists."""
        if len(pairs) == 1:  # one block (a small set): no thread to start
            (a, c), = pairs
            yield (a, c), self._scan_pair(a, c, thresholds, k)
            return
        with _scan_threads() as workers, ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(self._scan_pair, a, c, thresholds, k): (a, c) for a, c in pairs}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:  # on an error, do not compute the blocks still queued
                for future in futures:
                    future.cancel()

    @staticmethod
    def fill_diagonal_inf(dist):
        np.fill_diagonal(dist, np.inf)

    @staticmethod
    def kth_smallest(dist, k):
        return np.partition(dist, k - 1, axis=1)[:, k - 1]

    def candidates(self, dist, row_thr, col_thr=None):
        """Entries with dist[r, c] <= row_thr[r] or <= col_thr[c], as numpy arrays
        (rows, cols, values), in row-major order.

        The comparisons run over a few rows at a time, so that both masks of a chunk stay in
        the L2 cache; the mask is then searched 8 entries at a time (as uint64 words), since
        nearly all of it is False."""
        n_rows, n_cols = dist.shape
        packed = self._buffer("packed", -(-dist.size // 8), np.uint64)  # mask as 8-byte words
        packed[-1] = 0  # the padding bytes past the block must read as False
        mask = packed.view(bool)[: dist.size].reshape(dist.shape)
        step = max(1, _SCAN_BYTES // (4 * n_cols))
        if col_thr is not None:
            chunk_buffer = self._buffer("chunk", step * n_cols, bool)
            col_thr = col_thr[None, :]
        for r0 in range(0, n_rows, step):
            rows = slice(r0, min(r0 + step, n_rows))
            np.less_equal(dist[rows], row_thr[rows, None], out=mask[rows])
            if col_thr is not None:
                chunk = chunk_buffer[: mask[rows].size].reshape(mask[rows].shape)
                np.less_equal(dist[rows], col_thr, out=chunk)
                np.bitwise_or(mask[rows], chunk, out=mask[rows])
        words = np.flatnonzero(packed)
        hits = np.flatnonzero(packed.view(bool).reshape(-1, 8)[words])
        flat = words[hits >> 3] * 8 + (hits & 7)
        rows, cols = np.divmod(flat, n_cols)
        return rows, cols, dist.ravel()[flat]

    @staticmethod
    def result(idx):
        return idx


class _TorchOps:
    """Distance blocks with torch, on the tensor's device (the GPU path)."""

    def __init__(self, x):
        import torch

        self.torch = torch
        self.device = x.device
        sqnorm = (x * x).sum(1)
        ones = torch.ones_like(sqnorm)[:, None]
        self.left = torch.cat([x, sqnorm[:, None], ones], 1)
        self.right = torch.cat([-2.0 * x, ones, sqnorm[:, None]], 1)

    def scan(self, pairs, thresholds, k):
        for a, c in pairs:
            yield (a, c), _scan(self, self.left[a] @ self.right[c].T, a, c, thresholds, k)

    @staticmethod
    def fill_diagonal_inf(dist):
        dist.fill_diagonal_(float("inf"))

    def kth_smallest(self, dist, k):
        return dist.kthvalue(k, dim=1).values.cpu().numpy()

    def candidates(self, dist, row_thr, col_thr=None):
        mask = dist <= self.torch.from_numpy(row_thr).to(self.device)[:, None]
        if col_thr is not None:
            mask |= dist <= self.torch.from_numpy(col_thr).to(self.device)[None, :]
        rows, cols = self.torch.nonzero(mask, as_tuple=True)
        vals = dist[rows, cols]
        return rows.cpu().numpy(), cols.cpu().numpy(), vals.cpu().numpy()

    def result(self, idx):
        return self.torch.from_numpy(idx).to(self.device)
