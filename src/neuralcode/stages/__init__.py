"""Glue between the workflow's rules and the package: paths and plain values in,
files out. Each rule's script calls one function of one module here (a
notebook can call the same functions), and each rule's jobs rerun when that
module, ``common`` or the modules it uses change, not when another stage's
glue does (see rules/common.smk).

Each job is a fresh process: the functions import torch, scikit-learn and
faiss only where they need them, so a metrics job does not pay for torch.
"""
