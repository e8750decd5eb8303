"""The benches the harness runs on when the real data cannot ship: the synthetic faces (the
default data) and the real-face bench built from UTKFace photos."""
