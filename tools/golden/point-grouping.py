#!/usr/bin/env python3
"""FPS and kNN reference data for libs/preprocess/src/point (fps.ts, group.ts, torch-topk.ts), made by
real torch running Point-BERT's formulas (MODEL_SPEC §3.7; ImageBind-LLM
ImageBind/models/pointbert/misc.py `fps`, dvae.py `knn_point` / `square_distance`), with the FPS start
fixed at index 0 as in shared/golden (B10).

The clouds are built to make ties matter: a coarse grid with duplicated points, a cloud made of few
distinct points, coordinates on float16 steps, and 1-ulp jitter around a lattice. For each case it writes
  libs/preprocess/test-data/point-grouping/<case>.points.npy   float32 [N, 3]
  libs/preprocess/test-data/point-grouping/<case>.fps.npy      int64 [num_group] (selection order)
  libs/preprocess/test-data/point-grouping/<case>.groups.npy   int64 [groups, group_size], torch.topk's
                                                               own order (sorted=False), first `groups` centres
and cases.json describing them. Neither the product nor CI runs this; the spec reads the files.

Regenerate (Debian 12, the torch the golden set used; OpenBLAS as the BLAS, as for shared/golden: its
FMA GEMM kernels decide the rounding of c·p; the reference BLAS flips a boundary point of airplane_perm):
  apt-get install -y python3-torch python3-numpy
  apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb /tmp/openblas
  LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=1 \\
    /usr/bin/python3 tools/golden/point-grouping.py
(or install libopenblas0-pthread so that it provides libblas.so.3). The script refuses to run on
another BLAS.
"""

import json
import pathlib

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parents[2] / "libs/preprocess/test-data/point-grouping"


def fps(xyz, npoint):
    """misc.fps with the start index 0 (shared/golden's patch)."""
    b, n, _ = xyz.shape
    centroids = torch.zeros(b, npoint, dtype=torch.long)
    distance = torch.ones(b, n) * 1e10
    farthest = torch.zeros((b,), dtype=torch.long)
    batch_indices = torch.arange(b, dtype=torch.long)
    for i in range(npoint):
        centroids[:, i] = farthest
        centroid = xyz[batch_indices, farthest, :].view(b, 1, 3)
        dist = torch.sum((xyz - centroid) ** 2, -1)
        distance = torch.min(distance, dist)
        farthest = torch.max(distance, -1)[1]
    return centroids


def square_distance(src, dst):
    b, n, _ = src.shape
    _, m, _ = dst.shape
    dist = -2 * torch.matmul(src, dst.permute(0, 2, 1))
    dist += torch.sum(src**2, -1).view(b, n, 1)
    dist += torch.sum(dst**2, -1).view(b, 1, m)
    return dist


def knn_point(nsample, xyz, new_xyz):
    _, group_idx = torch.topk(square_distance(new_xyz, xyz), nsample, dim=-1, largest=False, sorted=False)
    return group_idx


def blas_library():
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line}
    return sorted(libs)


def clouds(rng):
    # 8192 points on a 1/8 grid; a quarter of them overwritten by copies of others.
    g = np.stack(np.meshgrid(np.arange(16), np.arange(16), np.arange(32), indexing="ij"), -1).reshape(-1, 3)
    grid = (g / 8.0 - 1.0).astype(np.float32)
    grid = grid[rng.permutation(len(grid))]
    dup = rng.choice(len(grid), 2048, replace=False)
    grid[dup] = grid[rng.integers(0, len(grid), 2048)]
    yield "grid-dups-8192", grid, 256, 32, 64

    # 2048 points, only 40 distinct: FPS runs out of distinct points and kNN ties everywhere.
    base = rng.integers(-4, 5, (40, 3)).astype(np.float32) / 4
    few = base[rng.integers(0, 40, 2048)]
    yield "forty-distinct-2048", few, 64, 32, 64

    # Same idea below k·64 > N: torch.topk switches from partial_sort to nth_element.
    yield "forty-distinct-1000", few[:1000], 48, 32, 48

    # Float16 steps in the unit ball: many near-equal distances.
    p = rng.standard_normal((4096, 3))
    p = p / np.linalg.norm(p, axis=1, keepdims=True) * rng.random((4096, 1)) ** (1 / 3)
    half = p.astype(np.float16).astype(np.float32)
    yield "float16-ball-4096", half, 128, 16, 128

    # A lattice with ±1 ulp jitter: distances equal but for the last bits of the float32 GEMM.
    lat = (np.stack(np.meshgrid(*[np.arange(12)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.1 - 0.55)
    lat = lat.astype(np.float32)[:1536]
    jitter = rng.integers(-1, 2, lat.shape)
    up = np.nextafter(lat, np.float32(np.inf))
    down = np.nextafter(lat, np.float32(-np.inf))
    lat = np.where(jitter > 0, up, np.where(jitter < 0, down, lat)).astype(np.float32)
    yield "jittered-lattice-1536", lat[rng.permutation(len(lat))], 96, 12, 96

    # Small groups from nth_element on float16 points.
    yield "float16-ball-600", half[:600], 40, 24, 40


def main():
    torch.set_num_threads(1)
    libs = blas_library()
    if not any("openblas" in lib for lib in libs):
        raise SystemExit(f"torch is using {libs}; run with OpenBLAS (see the header)")
    rng = np.random.default_rng(20240613)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, points, num_group, group_size, groups in clouds(rng):
        points = np.ascontiguousarray(points, dtype=np.float32)
        xyz = torch.from_numpy(points).unsqueeze(0)
        idx = fps(xyz, num_group)
        center = xyz[0, idx[0]].unsqueeze(0)
        knn = knn_point(group_size, xyz, center[:, :groups])
        np.save(OUT / f"{name}.points.npy", points)
        np.save(OUT / f"{name}.fps.npy", idx[0].numpy().astype(np.int64))
        np.save(OUT / f"{name}.groups.npy", knn[0].numpy().astype(np.int64))
        distinct = len(np.unique(points, axis=0))
        cases.append(
            {
                "name": name,
                "points": len(points),
                "distinct_points": distinct,
                "num_group": num_group,
                "group_size": group_size,
                "groups": groups,
                "topk_path": "partial_sort" if group_size * 64 <= len(points) else "nth_element",
            }
        )
        print(name, len(points), "points,", distinct, "distinct")
    meta = {
        "generator": "tools/golden/point-grouping.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "blas": [pathlib.Path(lib).name for lib in libs],
        "threads": 1,
        "fps_start_index": 0,
        "cases": cases,
    }
    (OUT / "cases.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
