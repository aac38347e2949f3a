"""Run every benchmark, print their tables and write them as Parquet under benchmarks/out/.

``make bench`` runs this. Each benchmark module has ``main(argv) -> rows`` (a list of dicts, or a
dict of such lists for several tables); the rows are written as ``out/<benchmark>[_<table>].parquet``
with the machine and the commit in the file metadata.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("bench_penalties", "bench_trial", "bench_tune")


def write(rows, path: Path, metadata) -> None:
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata}), path)
    print(f"wrote {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from korth_bench.provenance import provenance
    import torch

    info = provenance(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    metadata = {f"korth_bench.{k}": str(v) for k, v in info.items()}
    os.makedirs(args.out, exist_ok=True)
    for name in args.only:
        print(f"\n## {name}\n", flush=True)
        result = importlib.import_module(name).main([])
        tables = result if isinstance(result, dict) else {"": result}
        for table, rows in tables.items():
            if rows:
                write(rows, Path(args.out) / f"{name}{'_' + table if table else ''}.parquet", metadata)


if __name__ == "__main__":
    main()
