"""Atomic checkpoints and EMA-weighted final saves: the one place LDLM's training code overrides private methods of
`transformers.Trainer`.

Why private methods: the Trainer writes a checkpoint straight into `checkpoint-N`, so a run killed mid-write leaves
a half-written folder that `--resume_from_checkpoint` then picks; and it saves the live weights everywhere, while
the final folder must hold the EMA weights. No public hook runs before the writes, so:

- `_get_output_dir(trial)`: redirected to a staging folder while a checkpoint is written;
- `_save_checkpoint(model, trial)`: writes into `<output_dir>/_checkpoint-staging/checkpoint-N`, adds the extra state
  (`checkpoint_extras`), flushes it to disk and renames it into place; rotation runs after the rename;
- `_save(output_dir, state_dict)`: the weights are the EMA weights except inside checkpoints.

`TRAINER_INTERNALS` lists these methods with the parameters this code relies on; a test compares them with the
installed transformers and names what changed, so an upgrade fails loudly instead of silently writing non-atomic
checkpoints. Everything else in `LDLMTrainer` uses public hooks (`compute_loss`, `evaluation_loop`, `log`, `train`,
callbacks).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

STAGING_DIR = "_checkpoint-staging"  # written here, then renamed into place; "_*" is never pushed to the Hub

# method -> the parameters (after self) that the overrides below take and pass on
TRAINER_INTERNALS: dict[str, tuple[str, ...]] = {
    "_get_output_dir": ("trial",),
    "_save_checkpoint": ("model", "trial"),
    "_save": ("output_dir", "state_dict"),
}


class AtomicCheckpointsMixin:
    """Put before `transformers.Trainer` in the bases. The subclass provides `checkpoint_extras(folder)` (write its
    own state into a checkpoint) and `final_weights()` (a context manager that puts the weights of the final save in
    the model, e.g. the EMA)."""

    _staging_root: str | None = None
    _saving_checkpoint = False

    def checkpoint_extras(self, folder: str) -> None:
        """Write extra training state into the checkpoint folder being staged (main process only)."""

    def final_weights(self) -> Any:
        """A context manager that puts the final save's weights in the model, or None for the live weights."""
        return None

    def _get_output_dir(self, trial) -> str:
        return self._staging_root or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING_DIR)
        staging, final = os.path.join(staging_root, name), os.path.join(run_dir, name)
        if self.args.should_save and os.path.isdir(staging_root):
            shutil.rmtree(staging_root)  # half-written leftovers of a killed run
        self.accelerator.wait_for_everyone()
        self._staging_root, self._saving_checkpoint = staging_root, True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root, self._saving_checkpoint = None, False
        if self.args.should_save:
            self.checkpoint_extras(staging)
            if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(staging_root):
                self.state.best_model_checkpoint = os.path.join(run_dir, os.path.basename(staging))
                self.state.save_to_json(os.path.join(staging, "trainer_state.json"))
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state
        if self.args.should_save:
            _fsync_tree(staging)
            if os.path.isdir(final):  # the same step saved again (e.g. after a resume)
                shutil.rmtree(final)
            os.replace(staging, final)
            os.rmdir(staging_root)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        context = None if self._saving_checkpoint else self.final_weights()
        if context is None:
            return super()._save(output_dir, state_dict)
        with context:
            return super()._save(output_dir, None)


def _fsync_tree(folder: str) -> None:
    """Flush every file of a folder to disk before it is renamed into place."""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
