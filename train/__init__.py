"""Training code for LDLM: the Trainer subclass, the warmup, data pipeline and the `run.py` entry point.

`train/` imports `modeling_ldlm`; the package never imports `train/`.
"""
