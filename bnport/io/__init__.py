"""Files and references, standard library only: checkpoint formats by name, atomic writes, model factories."""
