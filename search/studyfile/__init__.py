"""The study file (studies/*.toml): parsed and validated once into a StudySpec; the pruner and
sampler registries; the known-good trials enqueued first."""
