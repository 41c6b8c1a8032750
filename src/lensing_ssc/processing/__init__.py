"""Running long jobs: the managers (:mod:`.managers`) and the resumable task runner."""
