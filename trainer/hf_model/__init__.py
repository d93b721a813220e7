"""Template files copied into every exported model folder (see `trainer/export.py`).

`configuration_mdlm.py` and `modeling_mdlm.py` import only torch and transformers, so that
transformers can load them from the folder alone; nothing here imports them, because
transformers is an optional dependency (`pip install -e '.[hf]'`).
"""
