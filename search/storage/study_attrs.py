"""What a study records about itself when ``search.run`` creates it, as one dataclass.

``search.engine.prepare.open_study`` writes it into the study's user attributes at creation; every later
trial, resumed run, worker, report, ensemble, export and ``search.clean`` reads it back with
:meth:`StudyAttrs.read` (or :meth:`StudyAttrs.find`), never by string key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna

from search.data.errors import DataError
from search.data.split import PersonSplit

FINGERPRINT = "data_fingerprint"  # written last: a study that has it has all the others


class StudyAttrsError(ValueError):
    """A study's recorded attributes are missing or malformed: it was not made by this harness."""


@dataclass(frozen=True)
class StudyAttrs:
    data_fingerprint: str  # of the data the study was created on (search.data.layout)
    split: PersonSplit  # the validation people every trial of the study is scored on
    data_root: str | None = None  # where that data was, as given at creation
    relabel: str | None = None  # the relabel file applied, if any
    study_file: str | None = None  # the study TOML it was created from
    profile: str = "cpu"  # that file's profile
    workdir: str | None = None  # where its checkpoints and caches live (search.storage.trialstore)
    description: str = ""
    pruning_signal: str = "macro_f1"  # studies from before [pruner] signal existed reported macro-F1
    folds: int | None = None  # the study file's [split] folds at creation (None: a study from before the record)

    def write(self, study: optuna.Study) -> None:
        """Record every field in ``study``'s user attributes, the fingerprint last."""
        values = self.to_dict()
        for key, value in values.items():
            if key != FINGERPRINT:
                study.set_user_attr(key, value)
        study.set_user_attr(FINGERPRINT, values[FINGERPRINT])

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able user attributes, keyed by field name."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["split"] = self.split.to_dict()
        return out

    @classmethod
    def find(cls, study: optuna.Study) -> StudyAttrs | None:
        """The study's attributes, or None when it records none yet (a study still being created)."""
        if FINGERPRINT not in study.user_attrs:
            return None
        return cls.read(study)

    @classmethod
    def read(cls, study: optuna.Study) -> StudyAttrs:
        """The study's attributes, validated; a clear StudyAttrsError when they are missing or malformed."""
        attrs = study.user_attrs
        missing = [key for key in (FINGERPRINT, "split") if key not in attrs]
        if missing:
            raise StudyAttrsError(
                f"study {study.study_name!r} records no {' and no '.join(missing)}: it was not created by "
                "python -m search.run (or its creation was interrupted), so its data and validation people "
                "are unknown. Pass the name of a study that search.run created, or run this one with it."
            )
        fingerprint = attrs[FINGERPRINT]
        if not isinstance(fingerprint, str) or not fingerprint:
            raise _bad(study, FINGERPRINT, fingerprint, "a non-empty string")
        try:
            split = PersonSplit.from_dict(attrs["split"])
        except (DataError, KeyError, TypeError, ValueError) as exc:
            raise StudyAttrsError(
                f"study {study.study_name!r}: its recorded split cannot be read ({exc})."
            ) from exc
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {FINGERPRINT: fingerprint, "split": split}
        for name in ("data_root", "relabel", "study_file", "workdir"):
            value = attrs.get(name)
            if value is not None and not isinstance(value, str):
                raise _bad(study, name, value, "a path string or null")
            values[name] = value
        for name in ("profile", "description", "pruning_signal"):
            value = attrs.get(name, fields[name].default)
            if not isinstance(value, str):
                raise _bad(study, name, value, "a string")
            values[name] = value
        folds = attrs.get("folds")
        if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 0):
            raise _bad(study, "folds", folds, "a whole number >= 0 or null")
        values["folds"] = folds
        return cls(**values)


def _bad(study: optuna.Study, key: str, value: object, expected: str) -> StudyAttrsError:
    return StudyAttrsError(
        f"study {study.study_name!r} records {key} = {value!r}, where search.run writes {expected}; "
        "the study was not created by this harness or was edited."
    )
