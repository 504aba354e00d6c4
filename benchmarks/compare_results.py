"""Check that two replay results.csv files agree exactly on mean_score and mean_cost, cell by cell.

Usage: python benchmarks/compare_results.py BEFORE.csv AFTER.csv [POLICY,...]   (default: linucb,thompson,hierlin)
Exit status 1 when a (policy, dial, seed) cell differs or is missing; used to show a refactor changed no number.
"""
import csv
import sys


def cells(path: str, policies: set[str]) -> dict[tuple[str, str, str], tuple[str, str]]:
    with open(path, newline="") as f:
        return {(r["policy"], r["dial"], r["seed"]): (r["mean_score"], r["mean_cost"])
                for r in csv.DictReader(f) if r["policy"] in policies}


if __name__ == "__main__":
    policies = set((sys.argv[3] if len(sys.argv) > 3 else "linucb,thompson,hierlin").split(","))
    before, after = cells(sys.argv[1], policies), cells(sys.argv[2], policies)
    differ = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    for key in differ:
        print("differs", key, "before", before.get(key), "after", after.get(key))
    print(f"{len(before)} cells before, {len(after)} after, {len(differ)} differ")
    sys.exit(1 if differ else 0)
