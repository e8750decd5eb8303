"""Point 5: user-editable fixes applied before labelling; unknown persons are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.data import DataError, load_train, read_relabel

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "studies" / "relabel_example.csv"


def write(path: Path, body: str) -> Path:
    path.write_text("# my fixes\nperson,field,value,note\n" + body)
    return path


def rows(data, person: str):
    return data.images[data.images["person"] == person].set_index("photo")


def test_fixes_change_labels_before_labelling(layout, tmp_path: Path) -> None:
    fixes = write(
        tmp_path / "fixes.csv",
        "000001,gender,male,by id\n"
        '000002_male_Asian_20,age,60,"by folder, with a comma in the note"\n'
        "000005,swap_incorrect_normal,,\n"
        "000005,mask:mask2,incorrect,\n"
        "000006,swap_incorrect_normal,yes,\n"
        "000006,mask:incorrect_mask,wear,explicit fix wins over the swap\n",
    )
    plain, fixed = load_train(layout.root), load_train(layout.root, relabel=fixes)
    p1 = rows(fixed, "000001_female_Asian_45")
    assert set(p1["gender"]) == {0} and p1.loc["normal", "label"] == 2 * 6 + 0 + 1
    assert rows(plain, "000001_female_Asian_45").loc["normal", "label"] == 2 * 6 + 3 + 1
    p2 = rows(fixed, "000002_male_Asian_20")
    assert p2.loc["mask1", "label"] == 2 and p2.loc["mask1", "age"] == 60
    p5 = rows(fixed, "000005_female_Asian_29")
    assert (p5.loc["incorrect_mask", "mask"], p5.loc["normal", "mask"], p5.loc["mask2", "mask"]) == (2, 1, 1)
    p6 = rows(fixed, "000006_male_Asian_30")
    assert (p6.loc["incorrect_mask", "mask"], p6.loc["normal", "mask"]) == (0, 1)
    assert fixed.people["relabeled"].sum() == 4
    changed = (plain.labels != fixed.labels).sum()
    assert changed == 7 + 7 + 3 + 2  # 000001 and 000002 all photos, 000005: 3 photos, 000006: 2
    assert fixed.fingerprint != plain.fingerprint
    assert fixed.image_fingerprint == plain.image_fingerprint  # the images did not change


def test_unknown_person_is_an_error_naming_file_and_line(layout, tmp_path: Path) -> None:
    fixes = write(tmp_path / "fixes.csv", "000001,gender,male,\n777777,gender,female,typo\n")
    with pytest.raises(DataError, match=r"fixes\.csv, line 4: unknown person '777777'"):
        load_train(layout.root, relabel=fixes)


def test_ambiguous_id_must_be_written_as_a_folder(layout, tmp_path: Path) -> None:
    fixes = write(tmp_path / "fixes.csv", "003397,age,60,\n")
    with pytest.raises(DataError, match="names several folders"):
        load_train(layout.root, relabel=fixes)
    fixes = write(tmp_path / "fixes.csv", "003397_female_Asian_25,age,60,\n")
    data = load_train(layout.root, relabel=fixes)
    assert rows(data, "003397_female_Asian_25")["age"].eq(60).all()
    assert rows(data, "003397_female_Asian_21")["age"].eq(21).all()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("000001,colour,red,\n", "unknown field 'colour'"),
        ("000001,gender,other,\n", "value 'other' is not valid for gender"),
        ("000001,age,sixty,\n", "value 'sixty' is not valid for age"),
        ("000001,mask:mask9,wear,\n", "unknown field 'mask:mask9'"),
        ("000001,mask:normal,maybe,\n", "value 'maybe' is not valid for mask:normal"),
        ("000001,swap_incorrect_normal,no,\n", "value .no. is not valid for swap_incorrect_normal"),
        ("000001,age,40,\n000001,age,41,\n", "a second age fix .* first is on line 3"),
        (",age,40,\n", "the person is empty"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    fixes = write(tmp_path / "fixes.csv", body)
    with pytest.raises(DataError, match=rf"fixes\.csv, line \d+: {message}"):
        read_relabel(fixes)


def test_same_person_by_id_and_folder_twice(layout, tmp_path: Path) -> None:
    fixes = write(tmp_path / "fixes.csv", "000001,age,40,\n000001_female_Asian_45,age,41,\n")
    with pytest.raises(DataError, match="line 4: a second age fix for '000001_female_Asian_45'"):
        load_train(layout.root, relabel=fixes)


def test_missing_file_and_header(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_relabel(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['person', 'field', 'value'\]"):
        read_relabel(bad)


def test_shipped_example_applies_to_the_real_ids(make_layout) -> None:
    people = [
        ("006359", "female", "Asian", 20),
        ("006364", "female", "Asian", 20),
        ("006360", "female", "Asian", 20),
        ("006361", "female", "Asian", 20),
        ("006362", "female", "Asian", 20),
        ("006363", "female", "Asian", 20),
        ("001498-1", "male", "Asian", 23),
        ("004432", "male", "Asian", 50),
        ("005223", "male", "Asian", 56),
        ("000020", "female", "Asian", 50),
        ("004418", "male", "Asian", 30),
        ("005227", "male", "Asian", 60),
        ("000645", "female", "Asian", 58),
        ("003574", "male", "Asian", 22),
        ("000001", "male", "Asian", 20),
    ]
    lay = make_layout(people=people, eval_images=1)
    fixes = read_relabel(EXAMPLE)
    assert len(fixes) == 14
    data = load_train(lay.root, relabel=EXAMPLE)
    by = data.people.set_index("id")
    assert by.loc[["006359", "006360", "006361", "006362", "006363", "006364"], "gender"].eq(0).all()
    assert by.loc[["001498-1", "004432", "005223"], "gender"].eq(1).all()
    for pid in ("000020", "004418", "005227"):
        r = rows(data, lay.folder(pid).name)
        assert (r.loc["incorrect_mask", "mask"], r.loc["normal", "mask"]) == (2, 1)
    for pid in ("000645", "003574"):
        assert rows(data, lay.folder(pid).name).loc["incorrect_mask", "mask"] == 0
    assert not by.loc["000001", "relabeled"]
