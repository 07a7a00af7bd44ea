"""Training code for LDLM: the entry points `run.py` (joint training) and `distill.py` (progressive distillation),
their two trainers on one base (`base_trainer.py`), their arguments, the warmup and the data pipeline.

`train/` imports `modeling_ldlm`; the package never imports `train/`.
"""
