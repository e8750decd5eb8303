"""``python -m search`` lists the verbs."""

VERBS = {
    "run": "create or resume a study and run trials",
    "worker": "join a running study from any machine (shared storage)",
    "report": "HTML report of a study (plotly)",
    "ensemble": "select a diverse soft-voting ensemble, with an honest score",
    "export": "write the best ensemble as a bundle (safetensors + ONNX)",
    "predict": "predict an eval folder with a bundle -> submission.csv",
    "synth": "generate the synthetic bench",
}

if __name__ == "__main__":
    print("usage: python -m search.<verb> --help\n")
    for verb, text in VERBS.items():
        print(f"  {verb:<9} {text}")
