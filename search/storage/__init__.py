"""Where a study lives: storage URLs and their backends, the study's and its trials' records
(StudyAttrs, trial attributes, artifacts), the trial files on disk, and the reaper of dead
workers' trials."""
