"""Training code for LDLM (issue 4): the Trainer subclass, schedules, data pipeline and the `run.py` entry point.

`train/` imports `modeling_ldlm`; the package never imports `train/`.
"""
