from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import optuna
import pytest

from search.studyfile.pruners import make_pruner
from search.studyfile.parse import STUDIES_DIR, StudyFileError, cache_sizes, list_studies, load_study_spec
from spaces import Categorical, IntRange

REQUIRED = {"age_cutoff", "backbone", "finetune", "augment", "full", "smoke"}


def test_required_studies_ship() -> None:
    assert REQUIRED <= set(list_studies())


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_study_file_parses(name: str, profile: str) -> None:
    spec = load_study_spec(name, profile=profile)
    config = spec.base_config()
    assert spec.n_trials >= 1 and config.epochs >= 1
    assert spec.params, "a study searches something"


def test_age_cutoff_study_searches_the_cutoffs() -> None:
    for profile in ("cpu", "gpu"):
        spec = load_study_spec("age_cutoff", profile=profile)
        assert spec.params["age_cutoff"] == Categorical((58, 59, 60))
        assert "focal_gamma" in spec.params and "unfrozen_depth" in spec.params
    assert len(load_study_spec("age_cutoff", profile="gpu").choices("backbone")) >= 2


def test_age_cutoff_study_searches_the_ordinal_age_head_on_both_profiles() -> None:
    cpu, gpu = (load_study_spec("age_cutoff", profile=p) for p in ("cpu", "gpu"))
    assert cpu.params["head"] == Categorical(("single", "ordinal"))
    assert gpu.params["head"] == Categorical(("single", "multi", "ordinal"))
    assert "age_loss_weight" in gpu.params and "age_loss_weight" not in cpu.params  # CPU: weight 1


def test_age_cutoff_starts_its_cpu_profile_from_the_known_good_cpu_trial() -> None:
    (trial,) = load_study_spec("age_cutoff", profile="cpu").enqueue
    assert trial["backbone"] == "tf_efficientnet_lite2" and trial["head"] == "single"
    assert trial["unfrozen_depth.tf_efficientnet_lite2"] == 7  # a stage count, checked against lite2's


@pytest.mark.parametrize("name", sorted(REQUIRED - {"smoke"}))
def test_shipped_studies_prune_from_epoch_2_on_the_validation_loss(name: str) -> None:
    pruner = load_study_spec(name).pruner
    assert (pruner.name, pruner.min_resource, pruner.signal) == ("hyperband", 2, "val_loss")


def test_gpu_profile_uses_real_backbones() -> None:
    gpu = load_study_spec("full", profile="gpu").choices("backbone")
    assert "resnext50_32x4d" in gpu and any(b.startswith("efficientnet_b") for b in gpu)
    cpu = load_study_spec("full", profile="cpu").choices("backbone")
    assert "resnext50_32x4d" not in cpu


def _write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[study]\nn_trial = 3\n", ["bad.toml", "study.n_trial"]),
        ("[fixed]\nlearning_rate = 0.1\n", ["bad.toml", "fixed.learning_rate"]),
        ("[params]\nbackbone = 'x'\n", ["bad.toml", "params.backbone"]),
        ("[pruner]\nname = 'asha'\n", ["bad.toml", "pruner.name"]),
        ("[profiles.tpu]\nn_trials = 1\n", ["bad.toml", "profiles.tpu"]),
        ("[fixed]\nhead = 'two'\n", ["bad.toml", "head"]),
        ("[study]\nn_trials = 0\n", ["bad.toml", "n_trials"]),
        ("[pruner]\nmin_resource = 0\n", ["bad.toml", "pruner.min_resource"]),
        ("[pruner]\nreduction_factor = 1\n", ["bad.toml", "pruner.reduction_factor"]),
        ("[pruner]\nname = 'median'\nn_startup_trials = -1\n", ["bad.toml", "pruner.n_startup_trials"]),
        ("[pruner]\nname = 'percentile'\npercentile = 100\n", ["bad.toml", "pruner.percentile"]),
        ("[pruner]\nname = 'percentile'\npercentile = '50'\n", ["bad.toml", "pruner.percentile"]),
        ("[pruner]\nsignal = 'loss'\n", ["bad.toml", "pruner.signal", "val_loss"]),
        ("[study\n", ["bad.toml", "TOML"]),
    ],
)
def test_malformed_study_file_names_the_key(tmp_path: Path, text: str, names: list[str]) -> None:
    with pytest.raises(StudyFileError) as info:
        load_study_spec(_write(tmp_path, text + "[params]\nlr = [0.1]\n" if "[params]" not in text else text))
    for name in names:
        assert name in str(info.value)


def test_profile_overrides_base(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[fixed]\nepochs = 2\n[params]\nlr = [0.1]\n[profiles.gpu]\nn_trials = 50\n[profiles.gpu.fixed]\nepochs = 6\n",
    )
    assert load_study_spec(path, "cpu").base_config().epochs == 2
    gpu = load_study_spec(path, "gpu")
    assert gpu.base_config().epochs == 6 and gpu.n_trials == 50


def test_unknown_study_lists_available() -> None:
    with pytest.raises(StudyFileError, match="smoke"):
        load_study_spec("does_not_exist")


def _decisions(tmp_path: Path, pruner: str, values: list[float]) -> list[bool]:
    """should_prune after epoch 1 for trials reporting ``values`` in turn, each then completed."""
    spec = load_study_spec(_write(tmp_path, f"[pruner]\n{pruner}\n[fixed]\nepochs = 4\n[params]\nlr = [0.1]\n"))
    study = optuna.create_study(direction="maximize", pruner=make_pruner(spec.pruner, spec.base_config().epochs))
    decisions = []
    for value in values:
        trial = study.ask()
        trial.report(value, 1)
        decisions.append(bool(trial.should_prune()))
        study.tell(trial, value)
    return decisions


@pytest.mark.parametrize("startup", [0, 3])
def test_median_pruner_waits_for_its_startup_trials(tmp_path: Path, startup: int) -> None:
    decisions = _decisions(tmp_path, f"name = 'median'\nn_startup_trials = {startup}", [0.9, 0.8, 0.7, 0.1])
    assert decisions == [False] * max(startup, 1) + [True] * (4 - max(startup, 1))


def test_percentile_pruner_keeps_only_the_top_share(tmp_path: Path) -> None:
    # Complete trials at 0.1 .. 0.9; the last trial scores 0.6, in the top 50 % but not the top 25 %.
    values = [0.1 * k for k in range(1, 10)] + [0.6]
    assert not _decisions(tmp_path, "name = 'percentile'\npercentile = 50.0\nn_startup_trials = 9", values)[-1]
    assert _decisions(tmp_path, "name = 'percentile'\npercentile = 25.0\nn_startup_trials = 9", values)[-1]


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("val_fraction = 0.25", 'val_fraction = "0.25"', ["split.val_fraction", "a number", "remove the quotes"]),
        ("seed = 0\nn_startup_trials", 'seed = "abc"\nn_startup_trials', ["sampler.seed", "a whole number"]),
        ("n_trials = 8", 'n_trials = 8\ntimeout_s = "soon"', ["study.timeout_s", "a number"]),
        ("n_trials = 8", "n_trials = 8\ntimeout_s = -5", ["study.timeout_s", "> 0", "remove it"]),
        ("epochs = 3", "epochs = 2.5", ["fixed.epochs", "a whole number such as 2"]),
        ("val_fraction = 0.25\nseed = 0", 'val_fraction = 0.25\nseed = "abc"', ["split.seed", "a whole number"]),
        ("seed = 0\nn_startup_trials", "seed = -1\nn_startup_trials", ["sampler.seed", "at least 0"]),
        ('"test_resnet"', '"test_resnett"', ["params.backbone", "timm's registry", "did you mean test_resnet"]),
        ("age_cutoff = [58, 59, 60]", "age_cutoff = [10]", ["params.age_cutoff", "from 55 to 65"]),
        ("age_cutoff = [58, 59, 60]", "age_cutoff = [200]", ["params.age_cutoff", "from 55 to 65"]),
        ("age_cutoff = [58, 59, 60]", "age_cutoff = [70]", ["params.age_cutoff", "from 55 to 65"]),
        ("age_cutoff = [58, 59, 60]", "age_cutoff = { low = 50, high = 60 }", ["params.age_cutoff", "got 50"]),
        ('crop = "face"', 'crop = "head"', ["fixed.crop", "use one of face, face_detect, full, tight"]),
        ('augment = ["none", "flip"]', 'augment = ["none", "flipp"]', ["params.augment", "flip, gray_sharp"]),
        ("pretrained = false", 'pretrained = "no"', ["fixed.pretrained", "true or false"]),
        ("batch_size = 32", "batch_size = 0", ["fixed.batch_size", "batch_size must be at least 1"]),
    ],
)
def test_every_value_is_checked_when_the_file_loads(tmp_path: Path, old: str, new: str, names: list[str]) -> None:
    text = (Path(__file__).resolve().parents[3] / "studies" / "smoke.toml").read_text()
    assert old in text
    with pytest.raises(StudyFileError) as info:
        load_study_spec(_write(tmp_path, text.replace(old, new, 1)))
    message = str(info.value)
    assert "\n" not in message and "bad.toml" in message
    for name in names:
        assert name in message


def test_a_profile_value_names_the_profile_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "[params]\nlr = [0.1]\n[profiles.cpu.fixed]\nage_cutoff = 70\n")
    with pytest.raises(StudyFileError, match="profiles.cpu.fixed.age_cutoff must be an age from 55 to 65"):
        load_study_spec(path, "cpu")
    assert load_study_spec(path, "gpu").base_config().age_cutoff == 60


@pytest.mark.parametrize("name", sorted(REQUIRED - {"age_cutoff"}))
def test_other_cpu_profiles_enqueue_nothing(name: str) -> None:
    assert load_study_spec(name, profile="cpu").enqueue == ()


@pytest.mark.parametrize(("name", "backbones"), [("full", ["efficientnet_b0", "resnext50_32x4d"]),
                                                  ("age_cutoff", ["resnext50_32x4d"])])
def test_gpu_profiles_start_with_the_2nd_place_recipe(name: str, backbones: list[str]) -> None:
    spec = load_study_spec(name, profile="gpu")
    assert [t["backbone"] for t in spec.enqueue] == backbones
    for trial in spec.enqueue:
        recipe = {"optimizer": "adam", "lr": 3e-5, "batch_size": 16, "schedule": "plateau", "head": "multi",
                  "age_cutoff": 58, "focal_gamma": 0.0, "oversample": "old", "augment_scope": "oversampled"}
        assert {k: trial[k] for k in recipe} == recipe
    if name == "full":
        assert spec.base_config().epochs == 12
        for key in ("optimizer", "schedule", "batch_size", "head_type", "drop_rate"):
            assert len(spec.choices(key)) >= 2, key
        assert {"tiny_vit_21m_224", "efficientnet_b5"} <= set(spec.choices("backbone"))
    assert spec.params["lr"].values()[0] == 1e-5


_GOOD = (
    "[fixed]\nepochs = 2\n[params]\nbackbone = ['test_resnet', 'test_efficientnet']\n"
    "lr = { low = 1e-4, high = 1e-2, log = true }\nschedule = ['cosine', 'plateau']\nplateau_patience = [1, 2]\n"
    "unfrozen_depth = { low = 1, high = 'all' }\n"
)


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ("backbone = 'test_resnet'\nlr = 1e-3\nschedule = 'cosine'\nunfrozen_depth = 2\nlearning_rate = 1",
         ["learning_rate", "not a TrialConfig field"]),
        ("backbone = 'test_resnet'\nlr = 1e-1\nschedule = 'cosine'\nunfrozen_depth = 2", ["enqueue[0].lr", "range"]),
        ("backbone = 'test_vit'\nlr = 1e-3\nschedule = 'cosine'\nunfrozen_depth = 2", ["enqueue[0].backbone", "choices"]),
        ("backbone = 'test_resnet'\nlr = 1e-3\nschedule = 'cosine'\nunfrozen_depth = 9", ["unfrozen_depth", "5 stages"]),
        ("backbone = 'test_resnet'\nlr = 1e-3\nschedule = 'cosine'\nunfrozen_depth = 2\nepochs = 3",
         ["enqueue[0].epochs", "does not search"]),
        ("backbone = 'test_resnet'\nlr = 1e-3\nunfrozen_depth = 2", ["enqueue[0]", "'schedule'", "every searched"]),
        ("backbone = 'test_resnet'\nlr = 1e-3\nschedule = 'cosine'\nplateau_patience = 2\nunfrozen_depth = 2",
         ["enqueue[0]", "plateau_patience", "never asks"]),
        ("backbone = 'test_resnet'\nlr = 1e-3\nschedule = 'plateau'\nplateau_patience = 1.5\nunfrozen_depth = 2",
         ["enqueue[0].plateau_patience", "choices"]),
    ],
)
def test_a_bad_known_good_trial_names_the_file_and_key(tmp_path: Path, table: str, names: list[str]) -> None:
    path = _write(tmp_path, _GOOD + "[[profiles.gpu.enqueue]]\n" + table + "\n")
    for profile in ("cpu", "gpu"):  # checked whichever profile loads
        with pytest.raises(StudyFileError) as info:
            load_study_spec(path, profile)
        for name in ["bad.toml", "profiles.gpu.enqueue[0]", *names]:
            assert name in str(info.value), (name, str(info.value))


def test_a_good_known_good_trial_becomes_optuna_params(tmp_path: Path) -> None:
    table = ("backbone = 'test_resnet'\nlr = 1e-3\nschedule = 'plateau'\nplateau_patience = 2\n"
             "unfrozen_depth = 'all'\nepochs = 2\n")
    path = _write(tmp_path, _GOOD + "[[profiles.gpu.enqueue]]\n" + table)
    assert load_study_spec(path, "cpu").enqueue == ()
    assert load_study_spec(path, "gpu").enqueue == ({"backbone": "test_resnet", "lr": 1e-3, "schedule": "plateau",
                                               "plateau_patience": 2, "unfrozen_depth.test_resnet": 5},)
    with pytest.raises(StudyFileError, match=r"bad.toml.*unknown key 'enqueue'"):
        load_study_spec(_write(tmp_path, _GOOD + "[[enqueue]]\nlr = 1e-3\n"))


def test_cache_sizes_cover_every_resolution_a_trial_can_ask_for() -> None:
    spec = load_study_spec("smoke")
    assert cache_sizes(spec) == [(32, 24, "face")]
    two = dataclasses.replace(spec, params={**spec.params, "height": Categorical((32, 40))})
    assert cache_sizes(two) == [(32, 24, "face"), (40, 24, "face")]
    ranged = dataclasses.replace(spec, params={**spec.params, "height": IntRange(32, 64)})
    assert cache_sizes(ranged) == []


def _documented_keys() -> dict[str, set[str]]:
    """docs/studies.md's table of study-file tables: ``[table]`` -> the keys its row names."""
    import re

    text = (STUDIES_DIR.parent / "docs" / "studies.md").read_text()
    block = text.split("## Tables", 1)[1].split("```")[1]
    rows: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        head = re.match(r"^(\[\[?[\w.]+\]\]?)\s*(.*)$", line)
        if head:
            current = head[1]
            rows[current] = head[2]
        elif current and line.strip():
            rows[current] += " " + line.strip()
    keys = {}
    for table, row in rows.items():
        row = re.sub(r"\([^)]*\)", "", row)  # "(tpe | random)", "(merged over ...)": values, not keys
        keys[table] = {k.strip() for k in row.split(",") if re.fullmatch(r"[a-z_]+", k.strip())}
    return keys


def test_docs_studies_table_names_every_key_the_parser_takes() -> None:
    from search.studyfile.parse import PROFILES, TABLE_KEYS
    from search.studyfile.samplers import SAMPLERS
    from search.studyfile.pruners import PRUNING_SIGNALS, list_pruners

    documented = _documented_keys()
    assert {t.strip("[]") for t in documented} >= (set(TABLE_KEYS[""]) - {"profiles"}) | {f"profiles.{p}" for p in PROFILES}
    for table in ("study", "sampler", "pruner", "split", "refit"):
        assert documented[f"[{table}]"] == set(TABLE_KEYS[table]), f"docs/studies.md's [{table}] row"
    for profile in PROFILES:
        shown = documented[f"[profiles.{profile}]"] | {"enqueue"}  # enqueue has its own row
        assert shown == set(TABLE_KEYS["profiles.<profile>"]), f"docs/studies.md's [profiles.{profile}] row"
    text = (STUDIES_DIR.parent / "docs" / "studies.md").read_text()
    assert f"({' | '.join(SAMPLERS.names())})" in text and f"({' | '.join(PRUNING_SIGNALS)})" in text
    assert f"({' | '.join(list_pruners())})" in " ".join(text.split()), "the pruner names of docs/studies.md"


@pytest.mark.parametrize("cutoff", [58, 59, 60])
@pytest.mark.parametrize("head", ["single", "ordinal"])
def test_a_variant_of_age_cutoff_fixes_the_cutoff_and_the_head(tmp_path: Path, cutoff: int, head: str) -> None:
    # What a measurement of the cutoff runs: the shipped file with age_cutoff and head moved from the
    # searched params to [fixed] (a key left in params would still be searched), the enqueued trials
    # (the GPU's recipe at cutoff 58 with three heads, the CPU's at cutoff 59) taken out.
    text = (STUDIES_DIR / "age_cutoff.toml").read_text()
    text = text[: text.index("[[profiles.gpu.enqueue]]")] + text[text.index("# CPU: tf_efficientnet_lite2"):]
    text = text[: text.index("# The trial that ranked first")]
    assert "enqueue" not in text
    for old, new in (("age_cutoff = [58, 59, 60]\n", ""),
                     ('head = ["single", "multi", "ordinal"]\n', ""),
                     ('head = ["single", "ordinal"]\n', ""),
                     ('head = "single"\n', f'head = "{head}"\nage_cutoff = {cutoff}\n')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"cutoff{cutoff}_{head}.toml"
    path.write_text(text)
    for profile in ("cpu", "gpu"):
        spec = load_study_spec(str(path), profile=profile)
        assert (spec.fixed["age_cutoff"], spec.fixed["head"]) == (cutoff, head)
        assert "age_cutoff" not in spec.params and "head" not in spec.params
        assert ("age_loss_weight" in spec.params) == (profile == "gpu")


# ------------------------------------------------------------------------------------------------
# issue 23: what --study names is reported as given, and a file that says nothing is refused


def test_a_binary_study_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "photo.toml"
    path.write_bytes(b"\xff\xd8\xff\xe0JFIF\x00" + bytes(range(256)))
    with pytest.raises(StudyFileError, match=rf"{path}: not a text study file \(byte 0 is not UTF-8\)"):
        load_study_spec(path)


def test_a_missing_toml_path_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyFileError, match=r"No study file 'nope\.toml': .*/nope\.toml does not exist") as caught:
        load_study_spec("nope.toml")
    assert "nope.toml.toml" not in str(caught.value)
    assert load_study_spec("smoke.toml").name == "smoke"  # a shipped study's file name works from anywhere


@pytest.mark.parametrize("name", ["plain", "looks.toml"])
def test_a_folder_as_study_is_one_error(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    with pytest.raises(StudyFileError, match=rf"--study '{folder}' is a folder; name a study file"):
        load_study_spec(folder)


def test_an_empty_study_file_is_refused(tmp_path: Path) -> None:
    for text in ("", "# only a comment\n\n"):
        with pytest.raises(StudyFileError, match=r"empty\.toml is empty .*needs at least \[study\] and \[params\]"):
            load_study_spec(_write(tmp_path, text, "empty.toml"))


@pytest.mark.parametrize("where", ["", "profiles.cpu."])
def test_a_key_both_fixed_and_searched_in_one_table_is_refused(tmp_path: Path, where: str) -> None:
    """[params] silently replaced a [fixed] backbone of the same table."""
    text = (f"[{where}fixed]\nbackbone = 'test_resnet'\n[{where}params]\nbackbone = ['test_efficientnet']\n"
            + ("[params]\nlr = [0.1]\n" if where else ""))
    with pytest.raises(StudyFileError, match=rf"backbone is in both \[{re.escape(where)}fixed\] and \[{re.escape(where)}params\]"):
        load_study_spec(_write(tmp_path, text))


def test_a_profile_overrides_the_base_tables_either_way(tmp_path: Path) -> None:
    text = ("[fixed]\nbackbone = 'test_resnet'\n[params]\nlr = [0.1, 0.2]\n"
            "[profiles.gpu.params]\nbackbone = ['test_resnet', 'test_efficientnet']\n[profiles.gpu.fixed]\nlr = 0.3\n")
    path = _write(tmp_path, text)
    cpu, gpu = load_study_spec(path, "cpu"), load_study_spec(path, "gpu")
    assert cpu.fixed["backbone"] == "test_resnet" and "lr" in cpu.params
    assert "backbone" in gpu.params and "backbone" not in gpu.fixed
    assert gpu.fixed["lr"] == 0.3 and "lr" not in gpu.params
