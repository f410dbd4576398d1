"""The files of a training state folder (``training-state/`` or a run's own subfolder), named once.

A state folder is what a build resumes from in a later session. It stays free of torch, so that commands
that only read or write state (``soup``) run without the train extra.
"""

from __future__ import annotations

LATEST = "latest.safetensors"  # the last checkpoint (fp16 compact weights): where a resumed run goes on
BEST = "best.safetensors"  # the best selection score so far: what ``ship`` exports and a soup averages
PROGRESS = "progress.json"  # steps done, selection scores per epoch, compute spent, the recipe
