"""One adapter per framework, the only places that import one: ``bnport.adapters.torch``, ``bnport.adapters.keras``.

Each imports its framework, bnport.core, bnport.io, bnport.onnxcheck and bnport.errors; never the other adapter.
"""
