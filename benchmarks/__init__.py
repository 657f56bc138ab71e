"""Speed and memory probes, run from the repository root as ``python -m benchmarks.<probe>`` (a package, so probes
share helpers without path edits)."""
