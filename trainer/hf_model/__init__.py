"""Template files copied into every exported model folder (see `trainer/export.py`).

`configuration_mdlm.py` imports only transformers; `modeling_mdlm.py` imports torch,
transformers and, relatively, `mdlm_model.py`: the export writes `trainer/model.py` under that
name beside it, so that transformers can load the folder alone. `modeling_mdlm.py` therefore
cannot be imported from this package; nothing here imports it (transformers is an optional
dependency: `pip install -e '.[hf]'`).
"""
